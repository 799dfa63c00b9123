-- Enqueue jobs into their (pool, class, tenant) lanes, or return the job an idempotency key
-- names. One call carries every submit of one pool that an API process made in the same
-- event-loop turn (broker/coalescer.py): what they share (the pool's queued count, the tenants'
-- queued counts and weights, counters, the wake, the workers' slots) is read and written once per
-- call, not per job; each job sees the ones before it as if they had been queued alone (its
-- place, its tenant's limits). Each job is queued on its own (pcall): one job's error reaches
-- that job's caller only.
-- KEYS: 1 pool stats, 2 metrics:jobs
-- Keys derived per job (PREFIX carries the hash tag): the job hash, its lane stream, its class
-- ring and credits, and (the idempotency key, when given) PREFIX .. 'idem:' .. tenant .. ':' ..
-- digest.
-- The body travels in the lane entry (fields j = job id, b = body), which claim reads anyway: in
-- the hash it would exceed hash-max-listpack-value and turn the hash into a hashtable, and a key
-- of its own costs a keyspace entry per job. Only a job that leaves its lane unfinished
-- (redelivery, retry, fallback) gets a body key (keep_body in _lib.lua).
-- ARGV: 1 prefix, 2 pool, then per job: the number N of the job's arguments that follow, then
--       1 job id, 2 class, 3 tenant, 4 tenant weight, 5 idem digest or '', 6 idem ttl s,
--       7 body digest, 8 body, 9 the tenant's submit limits or '' (see below),
--       10..N field/value pairs of the job record (script_calls/enqueue.py's EnqueueArgs)
-- Submit limits: 'max_queued|daily_tokens|monthly_tokens|daily_usd|monthly_usd|day|month', an
-- empty part meaning no limit; usage is read from the hashes finish-5.lua adds to.
-- A job whose record names a provider-batch queue (field `pbq`: its deployment's key, with
-- `cutoff_ms`) is parked there instead of a lane: its body in its own key, its id in
-- pbq:<pool>:<queue> scored by the time it must go live, the queue named in pbqueues:<pool>
-- (script_calls/provider_batch.py).
-- Returns one reply per job, in order:
--   {job id, 'new'|'existing'|'conflict', place in lane, created ms, jobs queued in the pool,
--    mean service ms ('' when unknown), live worker slots}: all a 202 needs, in one trip;
--   or {'', 'queue_full', mean service ms, queued} / {'', 'insufficient_quota', 'day'|'month',
--    'tokens'|'usd'} when a limit refuses the job (nothing is written then);
--   or the job's error's text.
-- Shared with Python: script_calls/enqueue.py.
local OUTCOME = {NEW = 'new', EXISTING = 'existing', CONFLICT = 'conflict',
  QUEUE_FULL = 'queue_full', INSUFFICIENT_QUOTA = 'insufficient_quota'}
local PERIOD = {DAY = 'day', MONTH = 'month'}
local MEASURE = {TOKENS = 'tokens', USD = 'usd'}
local prefix, pool = ARGV[1], ARGV[2]
local st = redis.call('HMGET', KEYS[1], 'queued', 'ewma_ms')
local queued, ewma = tonumber(st[1] or '0') or 0, st[2] or ''
local tqueued_key, tweights = key_of(prefix, 'tqueued'), key_of(prefix, 'tweight', pool)
-- Read once per call, counted here, written once at its end (each job sees the ones before it).
local added = 0
local tq, tq_added = {}, {}        -- tenant -> queued jobs (read), jobs this call added
local places, place_added = {}, {} -- stats field q:<class>:<tenant> -> value (read), added
local submitted = {}                -- class|model -> {class, model, n}
local in_ring = {}                  -- credits key -> tenant -> true: in its class ring
local weights = {}                  -- tenant -> weight written or read this call

local function tenant_queued(tenant)
  if tq[tenant] == nil then
    tq[tenant] = tonumber(redis.call('HGET', tqueued_key, tenant) or '0') or 0
  end
  return tq[tenant] + (tq_added[tenant] or 0)
end

local function enqueue_one(a, n)
  local job_id, class, tenant, weight = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local idem, idem_ttl, digest = ARGV[a + 4], tonumber(ARGV[a + 5]), ARGV[a + 6]
  local body, limits = ARGV[a + 7], ARGV[a + 8]
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
  if limits ~= '' then
    local lim = {}
    for part in string.gmatch(limits .. '|', '([^|]*)|') do lim[#lim + 1] = part end
    local function over(limit, used)
      return limit ~= '' and tonumber(used or '0') >= tonumber(limit)
    end
    if lim[1] ~= '' then
      local tenant_q = tenant_queued(tenant)
      if over(lim[1], tenant_q) then
        return {'', OUTCOME.QUEUE_FULL, ewma, tenant_q}
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

  local fields, model, parked, cutoff = {}, nil, nil, nil
  for i = a + 9, a + n - 1 do
    fields[#fields + 1] = ARGV[i]
    if (i - a - 9) % 2 == 1 then
      local name = ARGV[i - 1]
      if name == 'model' then model = ARGV[i]
      elseif name == 'pbq' then parked = ARGV[i]
      elseif name == 'cutoff_ms' then cutoff = ARGV[i] end
    end
  end
  if idem ~= '' then fields[#fields + 1] = 'digest' ; fields[#fields + 1] = digest end

  local entry = ''
  if parked then
    redis.call('SET', key_of(prefix, 'body', job_id), body)
    redis.call('ZADD', key_of(prefix, 'pbq', pool, parked), cutoff, job_id)
    redis.call('SADD', key_of(prefix, 'pbqueues', pool), parked)
    fields[#fields + 1] = 'where' ; fields[#fields + 1] = 'pbq'
  else
    local lane = key_of(prefix, 'lane', pool, class, tenant)
    local credits = key_of(prefix, 'credit', pool, class)
    in_ring[credits] = in_ring[credits] or {}
    if not in_ring[credits][tenant] then
      if redis.call('HEXISTS', credits, tenant) == 0 then
        redis.call('RPUSH', key_of(prefix, 'ring', pool, class), tenant)
        redis.call('HSET', credits, tenant, weight)
        pcall(redis.call, 'XGROUP', 'CREATE', lane, 'g', '0', 'MKSTREAM')
      end
      in_ring[credits][tenant] = true
    end
    -- The tenant's weight as its latest job says (a config reload may change it): written only
    -- when it changed, a read being cheaper than a write (no AOF record, no keyspace change).
    if weights[tenant] == nil then weights[tenant] = redis.call('HGET', tweights, tenant) end
    if weights[tenant] ~= weight then
      redis.call('HSET', tweights, tenant, weight)
      weights[tenant] = weight
    end
    entry = redis.call('XADD', lane, '*', 'j', job_id, 'b', body)
  end
  -- No 'where' field for a job in its lane: absent means "in its lane", the common case (a
  -- smaller hash).
  redis.call('HSET', key_of(prefix, 'job', job_id), 'status', STATUS.QUEUED, 'attempts', 0,
    'ix', ix, 'entry', entry, unpack(fields))

  -- Counted last: a job whose writes failed part-way is not counted (as alone, where the
  -- counts came after the writes too). A parked job has no place in a lane.
  local place = 0
  if not parked then
    if places[qfield] == nil then
      places[qfield] = tonumber(redis.call('HGET', KEYS[1], qfield) or '0') or 0
    end
    place_added[qfield] = (place_added[qfield] or 0) + 1
    place = places[qfield] + place_added[qfield]
  end
  tenant_queued(tenant)
  tq_added[tenant] = (tq_added[tenant] or 0) + 1
  added = added + 1
  local sk = class .. '|' .. (model or '')
  if not submitted[sk] then submitted[sk] = {class, model, 0} end
  submitted[sk][3] = submitted[sk][3] + 1
  return {job_id, OUTCOME.NEW, place, now, queued + added, ewma, 0}
end

local out, new = {}, {}
local a = 3
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local ok, res = pcall(enqueue_one, a + 1, n)
  if ok then
    out[#out + 1] = res
    if res[2] == OUTCOME.NEW then new[#new + 1] = res end
  else
    out[#out + 1] = type(res) == 'table' and (res.err or 'ERR enqueue') or tostring(res)
  end
  a = a + 1 + n
end

if added > 0 then
  local args = {}
  for field, n in pairs(place_added) do
    args[#args + 1] = field
    args[#args + 1] = places[field] + n
  end
  args[#args + 1] = 'queued'
  args[#args + 1] = queued + added
  redis.call('HSET', KEYS[1], unpack(args))
  for tenant, n in pairs(tq_added) do redis.call('HINCRBY', tqueued_key, tenant, n) end
  for _, s in pairs(submitted) do count(KEYS[2], s[3], COUNTER.SUBMITTED, pool, s[1], s[2]) end
  wake(prefix, pool)
  local slots = 0
  for _, v in ipairs(redis.call('HVALS', key_of(prefix, 'workers', pool))) do
    slots = slots + (tonumber(string.match(v, '^%d+ (%d+)')) or 0)
  end
  for _, reply in ipairs(new) do reply[7] = slots end
end
return out
