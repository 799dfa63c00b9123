-- Enqueue one job into its (pool, class, tenant) lane, or return the job an idempotency key names.
-- KEYS: 1 job hash, 2 lane stream, 3 class ring, 4 class credits, 5 pool stats, 6 metrics:jobs
-- The body travels in the lane entry (fields j = job id, b = body), which claim reads anyway: in
-- the hash it would exceed hash-max-listpack-value and turn the hash into a hashtable, and a key
-- of its own costs a keyspace entry per job. Only a job that leaves its lane unfinished
-- (redelivery, retry, fallback) gets a body key (keep_body in _lib.lua).
--       (the idempotency key, when given, is derived: PREFIX .. 'idem:' .. tenant .. ':' .. digest)
-- ARGV: 1 prefix, 2 job id, 3 pool, 4 class, 5 tenant, 6 tenant weight, 7 idem digest or '',
--       8 idem ttl s, 9 body digest, 10 body, 11 the tenant's submit limits or '' (see below),
--       12.. field/value pairs of the job record
-- Submit limits: 'max_queued|daily_tokens|monthly_tokens|daily_usd|monthly_usd|day|month', an
-- empty part meaning no limit; usage is read from the hashes finish-5.lua adds to.
-- Returns {job id, 'new'|'existing'|'conflict', place in lane, created ms, jobs queued in the pool,
--          mean service ms ('' when unknown), live worker slots}: all a 202 needs, in one trip;
--         or {'', 'queue_full', mean service ms, queued} / {'', 'insufficient_quota', 'day'|'month',
--          'tokens'|'usd'} when a limit refuses the job (nothing is written then).
-- Shared with Python: script_calls/enqueue.py.
local OUTCOME = {NEW = 'new', EXISTING = 'existing', CONFLICT = 'conflict',
  QUEUE_FULL = 'queue_full', INSUFFICIENT_QUOTA = 'insufficient_quota'}
local PERIOD = {DAY = 'day', MONTH = 'month'}
local MEASURE = {TOKENS = 'tokens', USD = 'usd'}
local prefix, job_id, pool, class, tenant = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local weight, idem, idem_ttl, digest = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
local qfield = 'q:' .. class .. ':' .. tenant

local ikey = idem ~= '' and key_of(prefix, 'idem', tenant, idem)
if ikey then
  local prior = redis.call('GET', ikey)
  if prior then
    local prior_digest = redis.call('HGET', key_of(prefix, 'job', prior), 'digest')
    if prior_digest and prior_digest ~= digest then
      return {prior, OUTCOME.CONFLICT, 0, 0, 0, '', 0}
    end
    if prior_digest then
      return {prior, OUTCOME.EXISTING, 0, 0, 0, '', 0}
    end
  end
end

-- The tenant's limits, once the idempotency key named no earlier job: a refused job leaves no
-- trace, not even its idempotency key.
if ARGV[11] ~= '' then
  local lim = {}
  for part in string.gmatch(ARGV[11] .. '|', '([^|]*)|') do lim[#lim + 1] = part end
  local function over(limit, used)
    return limit ~= '' and tonumber(used or '0') >= tonumber(limit)
  end
  if lim[1] ~= '' then
    local queued = redis.call('HGET', key_of(prefix, 'tqueued'), tenant)
    if over(lim[1], queued) then
      return {'', OUTCOME.QUEUE_FULL, redis.call('HGET', KEYS[5], 'ewma_ms') or '', queued}
    end
  end
  if lim[2] ~= '' or lim[4] ~= '' then
    local used = redis.call('HMGET', key_of(prefix, 'usage', tenant, lim[6]), 'tokens',
      'cost_usd')
    if over(lim[2], used[1]) then return {'', OUTCOME.INSUFFICIENT_QUOTA, PERIOD.DAY, MEASURE.TOKENS} end
    if over(lim[4], used[2]) then return {'', OUTCOME.INSUFFICIENT_QUOTA, PERIOD.DAY, MEASURE.USD} end
  end
  if lim[3] ~= '' or lim[5] ~= '' then
    local used = redis.call('HMGET', key_of(prefix, 'usage', tenant, lim[7]), 'tokens',
      'cost_usd')
    if over(lim[3], used[1]) then return {'', OUTCOME.INSUFFICIENT_QUOTA, PERIOD.MONTH, MEASURE.TOKENS} end
    if over(lim[5], used[2]) then return {'', OUTCOME.INSUFFICIENT_QUOTA, PERIOD.MONTH, MEASURE.USD} end
  end
end

if ikey then redis.call('SET', ikey, job_id, 'EX', idem_ttl) end

-- The tenant's job index is a stream (compact, newest-first reads, cursor = the entry id); the
-- entry id's time is the job's creation time, so the hash needs no field of its own for it.
local ix = redis.call('XADD', key_of(prefix, 'tjobs', tenant), '*', 'j', job_id)
local now = tonumber(string.match(ix, '^(%d+)'))

if redis.call('HEXISTS', KEYS[4], tenant) == 0 then
  redis.call('RPUSH', KEYS[3], tenant)
  redis.call('HSET', KEYS[4], tenant, weight)
  pcall(redis.call, 'XGROUP', 'CREATE', KEYS[2], 'g', '0', 'MKSTREAM')
end
-- The tenant's weight as its latest job says (a config reload may change it): written only when
-- it changed, a read being cheaper than a write (no AOF record, no keyspace change).
local tweights = key_of(prefix, 'tweight', pool)
if redis.call('HGET', tweights, tenant) ~= weight then redis.call('HSET', tweights, tenant, weight) end
local entry = redis.call('XADD', KEYS[2], '*', 'j', job_id, 'b', ARGV[10])

local fields, model = {}, nil
for i = 12, #ARGV do
  fields[#fields + 1] = ARGV[i]
  if (i - 12) % 2 == 1 and ARGV[i - 1] == 'model' then model = ARGV[i] end
end
if idem ~= '' then fields[#fields + 1] = 'digest' ; fields[#fields + 1] = digest end
-- No 'where' field yet: absent means "in its lane", the common case (a smaller hash).
redis.call('HSET', KEYS[1], 'status', STATUS.QUEUED, 'attempts', 0, 'ix', ix, 'entry', entry,
  unpack(fields))
local place = redis.call('HINCRBY', KEYS[5], qfield, 1)
redis.call('HINCRBY', KEYS[5], 'queued', 1)
redis.call('HINCRBY', key_of(prefix, 'tqueued'), tenant, 1)
count(KEYS[6], 1, COUNTER.SUBMITTED, pool, class, model)
wake(prefix, pool)
local slots = 0
for _, v in ipairs(redis.call('HVALS', key_of(prefix, 'workers', pool))) do
  slots = slots + (tonumber(string.match(v, '^%d+ (%d+)')) or 0)
end
local st = redis.call('HMGET', KEYS[5], 'queued', 'ewma_ms')
return {job_id, OUTCOME.NEW, place, now, tonumber(st[1]), st[2] or '', slots}
