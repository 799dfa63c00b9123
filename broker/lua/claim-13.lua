-- Claim up to N jobs for one worker: redelivered jobs first, then weighted round-robin across
-- priority classes with work (smooth WRR, work-conserving), then deficit round-robin across the
-- tenants of the chosen class. Only the head tenant's lane is read, never every tenant's stream.
-- KEYS: 1-3 class rings (interactive, standard, batch), 4-6 class credits, 7 WRR state,
--       8 redeliver list, 9 delayed zset, 10 leases zset, 11 pool stats, 12 tenant weights,
--       13 metrics:jobs
-- ARGV: 1 prefix, 2 pool, 3 worker id, 4 lease ms, 5 max jobs, 6-8 class weights, 9 ttl s,
--       10 tenants' in-flight caps, 'tenant=cap,...' or '': a tenant at its cap is passed over
--          (its lane keeps its jobs; the tenants behind it are served), a redelivered job of
--          such a tenant waits a moment in the delayed set
--       11 claim token: a worker whose claim got no reply (Redis stalled or restarted; the call
--          may have run) sends the same call again with the same token, and gets the jobs the
--          first one took instead of taking more (remembered in claimed:<worker> for a minute)
-- Returns a flat list, 17 fields per job (CLAIM_FIELDS in broker/script_calls/claim.py):
--   id, attempt, tenant, endpoint, model, body, priority, stream, lane entry, plan, step,
--   attempt at which the current step began, times an upstream 429 sent it back, the client's
--   provider key (BYOK; encrypted) or '', the synchronous caller's reply channel or '', the
--   trace context the API stored (field tp, docs/tracing.md) or '',
--   tenant index entry (its time is the job's creation: queue wait and job duration metrics)
local prefix, pool, worker = ARGV[1], ARGV[2], ARGV[3]
local lease_ms, max_jobs = tonumber(ARGV[4]), tonumber(ARGV[5])
local weights = {tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])}
local token, claimed_key = ARGV[11] or '', key_of(prefix, 'claimed', worker)
local out = {}
local FIELDS = {'status', 'deadline_ms', 'tenant', 'endpoint', 'model', 'priority', 'stream',
  'entry', 'plan', 'step', 'step_at', 'cooled', 'pk', 'reply_to', 'worker', 'attempts', 'tp', 'ix'}

-- One job's fields of the reply; F is HMGET of FIELDS.
local function push_job(job_id, attempt, f, body)
  out[#out + 1] = job_id
  out[#out + 1] = attempt
  out[#out + 1] = f[3] or ''
  out[#out + 1] = f[4] or ''
  out[#out + 1] = f[5] or ''
  out[#out + 1] = body or redis.call('GET', key_of(prefix, 'body', job_id)) or ''
  for i = 6, 14 do out[#out + 1] = f[i] or '' end
  out[#out + 1] = f[17] or ''
  out[#out + 1] = f[18] or ''
end

if token ~= '' then
  local prev = redis.call('GET', claimed_key)
  local prev_token, ids = string.match(prev or '', '^(%S+) ?(.*)$')
  if prev_token == token then
    -- This claim already ran and its reply was lost: the same jobs again, those still ours.
    for job_id in string.gmatch(ids, '%S+') do
      local f = redis.call('HMGET', key_of(prefix, 'job', job_id), unpack(FIELDS))
      if f[1] == STATUS.RUNNING and f[15] == worker then
        local body = nil
        if f[8] and f[8] ~= '' then
          local found = redis.call('XRANGE', key_of(prefix, 'lane', pool, f[6], f[3]), f[8], f[8])
          if found[1] then
            local e = found[1][2]
            for i = 1, #e, 2 do if e[i] == 'b' then body = e[i + 1] end end
          end
        end
        push_job(job_id, f[16], f, body)
      end
    end
    return out
  end
end

-- A pool an operator paused (admin API) hands out nothing: queued jobs wait in their lanes.
if redis.call('EXISTS', key_of(prefix, 'paused', pool)) == 1 then return {} end
local now = now_ms()

local due = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', now, 'LIMIT', 0, 256)
if #due > 0 then
  redis.call('RPUSH', KEYS[8], unpack(due))
  redis.call('ZREM', KEYS[9], unpack(due))
end

local started, expired, leases, claimed = 0, 0, {}, {}  -- counters and leases are written once, at the end
local tenant_started, tenant_left = {}, {}  -- per tenant: jobs started, jobs that left the queue
local model_started, model_expired = {}, {}  -- per model: the cluster metrics' counts

local caps, inflight = {}, {}
for tenant, cap in string.gmatch(ARGV[10] or '', '([^=,]+)=(%d+)') do caps[tenant] = tonumber(cap) end
local function at_cap(tenant)
  local cap = caps[tenant]
  if not cap then return false end
  if inflight[tenant] == nil then
    inflight[tenant] = tonumber(redis.call('HGET', key_of(prefix, 'tinflight'), tenant) or '0')
  end
  return inflight[tenant] + (tenant_started[tenant] or 0) >= cap
end
local function left_queue(tenant)
  tenant_left[tenant] = (tenant_left[tenant] or 0) + 1
end

-- Move a job to running if it is still queued and not past its deadline. A job read from a lane
-- comes with its CLASS, TENANT, lane ENTRY and BODY; a redelivered job (no lane entry) has its
-- body in its body key.
local function start(job_id, class, tenant, entry, body)
  local jk = key_of(prefix, 'job', job_id)
  local f = redis.call('HMGET', jk, unpack(FIELDS))
  if f[1] ~= STATUS.QUEUED then
    drop_entry(prefix, pool, class, tenant, entry)
    return false
  end
  if f[2] and f[2] ~= '' and tonumber(f[2]) > 0 and now > tonumber(f[2]) then
    drop_entry(prefix, pool, class, tenant, entry)
    redis.call('HSET', jk, 'status', STATUS.EXPIRED, 'finished_ms', now, 'where', '',
      'error', cjson.encode({message = 'the job was not started before its deadline',
                             type = 'expired', code = 'deadline_exceeded'}))
    expired = expired + 1
    model_expired[f[5] or ''] = (model_expired[f[5] or ''] or 0) + 1
    left_queue(f[3])
    emit(prefix, job_id, 'expired', cjson.encode({id = job_id, status = STATUS.EXPIRED}))
    retain(prefix, job_id, tonumber(ARGV[9]))
    return false
  end
  if not entry and at_cap(f[3]) then
    -- a redelivered job of a tenant at its in-flight cap: not now, and not at the head of the
    -- redeliveries either, where it would be popped again by every claim
    redis.call('HSET', jk, 'where', 'delayed')
    redis.call('ZADD', KEYS[9], now + 200, job_id)
    return false
  end
  -- one write of the record: the attempts counter was read with the rest (f[16])
  local attempt = tonumber(f[16] or '0') + 1
  if attempt == 1 then
    redis.call('HSET', jk, 'status', STATUS.RUNNING, 'worker', worker, 'where', 'lease',
      'attempts', attempt, 'started_ms', now)
  else
    redis.call('HSET', jk, 'status', STATUS.RUNNING, 'worker', worker, 'where', 'lease',
      'attempts', attempt)
  end
  leases[#leases + 1] = now + lease_ms
  leases[#leases + 1] = job_id
  started = started + 1
  model_started[f[5] or ''] = (model_started[f[5] or ''] or 0) + 1
  left_queue(f[3])
  tenant_started[f[3]] = (tenant_started[f[3]] or 0) + 1
  record(prefix, job_id, 'started', cjson.encode({id = job_id, attempt = attempt, worker = worker}),
    attempt)
  claimed[#claimed + 1] = job_id
  push_job(job_id, attempt, f, body)
  return true
end

-- Each class ring's length and head, read once per claim: only this script changes a ring while
-- it runs, and it forgets what it knew of a ring it pops or rotates (a rotation keeps the length;
-- rotating a ring of one tenant changes nothing, so it is not done).
local ring_len, ring_head = {}, {}
local function ring_length(c)
  if ring_len[c] == nil then ring_len[c] = redis.call('LLEN', KEYS[c]) end
  return ring_len[c]
end
local function head(c)
  if ring_head[c] == nil then ring_head[c] = redis.call('LINDEX', KEYS[c], 0) end
  return ring_head[c]
end
local function rotate(c)
  if ring_length(c) > 1 then
    redis.call('LMOVE', KEYS[c], KEYS[c], 'LEFT', 'RIGHT')
    ring_head[c] = nil
  end
end
local function pop(c)
  redis.call('LPOP', KEYS[c])
  ring_len[c], ring_head[c] = nil, nil
end

-- The tenants' queued counts (stats fields q:<class>:<tenant>) and class credits this call
-- counts down: read once, written once at its end (flush_counts), not one HINCRBY per job. A
-- field that goes is deleted at once (drop_entry reads whether a credit exists), and forgotten.
local counts = {}  -- hash key -> field -> value
local weights_of = {}
local function counted(key, field)
  counts[key] = counts[key] or {}
  local v = counts[key][field]
  if v == nil then
    v = tonumber(redis.call('HGET', key, field) or '0')
    counts[key][field] = v
  end
  return v
end
local function forget(key, field)
  if counts[key] then counts[key][field] = nil end
  redis.call('HDEL', key, field)
end
local function flush_counts()
  for key, fields in pairs(counts) do
    local args = {}
    for field, v in pairs(fields) do
      args[#args + 1] = field
      args[#args + 1] = v
    end
    if #args > 0 then redis.call('HSET', key, unpack(args)) end
  end
end
local function weight_of(tenant)
  if weights_of[tenant] == nil then
    weights_of[tenant] = tonumber(redis.call('HGET', KEYS[12], tenant) or '1') or 1
  end
  return weights_of[tenant]
end

local budget = 4 * max_jobs + 16  -- passes of the main loop below

-- Entries of one lane read ahead by one XREADGROUP, taken in order before that lane is read
-- again. Only when every entry read will be taken by this very call: the class is the only one
-- with work, its ring holds that one tenant and the tenant has no in-flight cap, so every later
-- pass picks the same lane; and no more are read than the call still wants, the lane holds
-- (its queued count) or the passes left could take.
local ahead, ahead_at, ahead_lane = {}, 1, nil
local function read_count(c, tenant, qfield)
  if ring_length(c) ~= 1 or caps[tenant] then return 1 end
  for o = 1, 3 do
    if o ~= c and ring_length(o) > 0 then return 1 end
  end
  local n = math.min(max_jobs - #claimed, counted(KEYS[11], qfield), budget + 1, 64)
  if n < 1 then return 1 end
  return n
end
local function next_entry(c, tenant, lane, qfield)
  if ahead_lane == lane and ahead_at <= #ahead then
    ahead_at = ahead_at + 1
    return ahead[ahead_at - 1]
  end
  local res = redis.call('XREADGROUP', 'GROUP', 'g', worker, 'COUNT',
    read_count(c, tenant, qfield), 'STREAMS', lane, '>')
  if not res then return nil end
  ahead, ahead_at, ahead_lane = res[1][2], 2, lane
  return ahead[1]
end

-- Take one job from the class's head tenant; rotate the ring as credits run out. Returns
-- false, true when every tenant of the class with work is at its in-flight cap.
local function take_from_class(c)
  local credits = KEYS[3 + c]
  local passed_over = 0
  for _ = 1, 64 do
    local tenant = head(c)
    if not tenant then return false end
    while at_cap(tenant) do
      passed_over = passed_over + 1
      if passed_over >= ring_length(c) then return false, true end
      rotate(c)
      tenant = head(c)
    end
    local lane = key_of(prefix, 'lane', pool, CLASSES[c], tenant)
    local qfield = 'q:' .. CLASSES[c] .. ':' .. tenant
    local entry = next_entry(c, tenant, lane, qfield)
    if not entry then
      -- The lane is drained (cancellations may have emptied it): the tenant leaves the ring.
      pop(c)
      forget(credits, tenant)
      forget(KEYS[11], qfield)
      if redis.call('XLEN', lane) == 0 then redis.call('DEL', lane) end
    else
      local job_id, body = entry[2][2], entry[2][4]
      local left = counted(KEYS[11], qfield) - 1
      if left <= 0 then
        pop(c)
        forget(credits, tenant)
        forget(KEYS[11], qfield)
      else
        counts[KEYS[11]][qfield] = left
        local credit = counted(credits, tenant) - 1
        if credit <= 0 then
          rotate(c)
          credit = weight_of(tenant)
        end
        counts[credits][tenant] = credit
      end
      if start(job_id, CLASSES[c], tenant, entry[1], body) then return true end
    end
  end
  return false
end

local redeliveries = true
local blocked = {}
-- Smooth weighted round-robin state, read once and written once.
local cur = redis.call('HMGET', KEYS[7], 'interactive', 'standard', 'batch')
for c = 1, 3 do cur[c] = tonumber(cur[c] or '0') or 0 end
local was = {cur[1], cur[2], cur[3]}
while #claimed < max_jobs and budget > 0 do
  budget = budget - 1
  local id = redeliveries and redis.call('LPOP', KEYS[8])
  if id then
    start(id, nil, nil, nil, nil)
  else
    redeliveries = false  -- nothing adds to the list while this script runs
    -- Smooth weighted round-robin over the classes that have work; idle classes reset to 0 so
    -- that a class which was empty does not arrive with a burst of saved-up credit.
    local eligible, total, best = {}, 0, nil
    for c = 1, 3 do
      eligible[c] = not blocked[c] and ring_length(c) > 0
      if eligible[c] then
        total = total + weights[c]
        if best == nil or cur[c] + weights[c] > cur[best] + weights[best] then best = c end
      else
        cur[c] = 0
      end
    end
    if best == nil then break end
    local took, capped = take_from_class(best)
    if capped then
      blocked[best] = true  -- every tenant with work in the class is at its cap
    elseif took then
      for c = 1, 3 do
        if eligible[c] then cur[c] = cur[c] + weights[c] end
      end
      cur[best] = cur[best] - total
    end
  end
end
flush_counts()
if cur[1] ~= was[1] or cur[2] ~= was[2] or cur[3] ~= was[3] then
  redis.call('HSET', KEYS[7], 'interactive', cur[1], 'standard', cur[2], 'batch', cur[3])
end
if started + expired > 0 then
  redis.call('HINCRBY', KEYS[11], 'queued', -(started + expired))
end
for tenant, n in pairs(tenant_left) do
  redis.call('HINCRBY', key_of(prefix, 'tqueued'), tenant, -n)
end
for tenant, n in pairs(tenant_started) do
  redis.call('HINCRBY', key_of(prefix, 'tinflight'), tenant, n)
end
for model, n in pairs(model_started) do count(KEYS[13], n, COUNTER.STARTED, pool, model) end
for model, n in pairs(model_expired) do
  count(KEYS[13], n, COUNTER.FINISHED, pool, model, STATUS.EXPIRED)
end
if started > 0 then
  redis.call('HINCRBY', KEYS[11], 'inflight', started)
  redis.call('ZADD', KEYS[10], unpack(leases))
end
if token ~= '' and #claimed > 0 then
  redis.call('SET', claimed_key, token .. ' ' .. table.concat(claimed, ' '), 'PX', 60000)
end
-- Short of what was asked: the queue ran dry for this worker, which now sleeps until woken.
if #claimed < max_jobs then redis.call('SET', key_of(prefix, 'idle', pool), '1') end
return out
