-- Record running jobs' outcomes, once each: the first completion of the owning attempt wins; a
-- stale attempt (lease lost, job cancelled or already finished) changes nothing. One call
-- carries every job of one pool that a worker finished in the same event-loop turn
-- (broker/coalescer.py): what they share (the pool's lease set, in-flight counts, counters, the
-- service-time average, the wake check, a lane's tidy-up) is written once per call, not per job.
-- Each job is finished on its own (pcall): one job's error reaches that job's caller only.
-- A job held by a provider batch (`where` = 'pbatch', finished by the control plane) has no
-- lease, worker slot or in-flight count to give back, and its hours at the provider are not a
-- service time.
-- KEYS: 1 leases zset, 2 pool stats, 3 dead-letter list, 4 metrics:jobs, 5 metrics:tokens
-- ARGV: 1 prefix, 2 ttl s, then 9 per job (FINISH_ARGS in broker/script_calls/finish.py):
--       job id, attempt, status (succeeded|failed), result json, error json, usage json, cost,
--       history entry json or '' (empty JSON means null),
--       usage to record for the tenant or '': 'day|month|prompt tokens|completion tokens|model'
--          (cost is the job's cost), added to usage:<tenant>:<day> (per model and in total) and
--          usage:<tenant>:<month> (in total), which enqueue-2.lua checks budgets against, and to
--          the cluster's token counters (metrics:tokens; the cost in whole nano-USD: integers
--          add up exactly and in any order, where summed floats drift with the order of the
--          additions, and a nano-dollar is fine enough for the cheapest call)
-- Returns one reply per job, in order: 1 if recorded, 0 if stale, or the error's text.
local prefix, ttl_s = ARGV[1], tonumber(ARGV[2])
local PER_JOB = 9
local now = now_ms()
local st = redis.call('HMGET', KEYS[2], 'queued', 'ewma_ms')
local ewma = tonumber(st[2] or '')
-- Rolled up over the call, written once at its end.
local done, pools, tenants, counted, lanes = {}, {}, {}, {}, {}
local finished = 0

local function json_or_null(s) if s == '' then return 'null' end return s end

local function finish_one(a)
  local job_id, attempt, status = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local result, err, usage, cost_s = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local history, usage_rec = ARGV[a + 7], ARGV[a + 8]
  local jk = key_of(prefix, 'job', job_id)
  -- One read of the record per job: 9 reply_to, 10 where, then what retain needs (11-15)
  local f = redis.call('HMGET', jk, 'status', 'attempts', 'pool', 'priority', 'tenant', 'entry',
    'started_ms', 'model', 'reply_to', 'where', unpack(RETAIN_FIELDS))
  if f[1] ~= STATUS.RUNNING or f[2] ~= attempt then return 0 end
  local held = f[10] == 'pbatch'
  redis.call('HSET', jk, 'status', status, 'finished_ms', now, 'where', '',
    'result', result, 'error', err, 'usage', usage, 'cost', cost_s)
  finished = finished + 1
  pools[f[3] or ''] = true
  if not held then
    done[#done + 1] = job_id
    tenants[f[5] or ''] = (tenants[f[5] or ''] or 0) + 1
  end
  local ck = (f[3] or '') .. '|' .. (f[8] or '') .. '|' .. status
  if not counted[ck] then counted[ck] = {f[3], f[8], status, 0} end
  counted[ck][4] = counted[ck][4] + 1
  if usage_rec ~= '' then
    local day, month, pt, ct, model = string.match(usage_rec, '^([^|]*)|([^|]*)|(%d*)|(%d*)|(.*)$')
    pt, ct = tonumber(pt) or 0, tonumber(ct) or 0
    local cost = tonumber(cost_s) or 0
    local dkey = key_of(prefix, 'usage', f[5], day)
    local mkey = key_of(prefix, 'usage', f[5], month)
    redis.call('HINCRBY', dkey, 'requests', 1)
    redis.call('HINCRBY', dkey, 'tokens', pt + ct)
    redis.call('HINCRBY', dkey, model .. ':requests', 1)
    redis.call('HINCRBY', dkey, model .. ':prompt_tokens', pt)
    redis.call('HINCRBY', dkey, model .. ':completion_tokens', ct)
    redis.call('HINCRBY', mkey, 'requests', 1)
    redis.call('HINCRBY', mkey, 'tokens', pt + ct)
    if cost > 0 then
      redis.call('HINCRBYFLOAT', dkey, 'cost_usd', cost)
      redis.call('HINCRBYFLOAT', dkey, model .. ':cost_usd', cost)
      redis.call('HINCRBYFLOAT', mkey, 'cost_usd', cost)
    end
    if pt > 0 then count(KEYS[5], pt, TOKENS.PROMPT, model, f[5]) end
    if ct > 0 then count(KEYS[5], ct, TOKENS.COMPLETION, model, f[5]) end
    if cost > 0 then count(KEYS[5], math.floor(cost * 1e9 + 0.5), TOKENS.COST, model, f[5]) end
    redis.call('EXPIRE', dkey, 100 * 86400)
    redis.call('EXPIRE', mkey, 400 * 86400)
  end
  if f[7] and not held then
    local took = now - tonumber(f[7])
    ewma = math.floor((ewma or took) * 0.9 + took * 0.1)
  end
  local dead = status == STATUS.FAILED
  if dead then keep_body(prefix, job_id, key_of(prefix, 'lane', f[3], f[4], f[5]), f[6]) end
  if f[3] and f[4] and f[5] and f[6] and f[6] ~= '' then
    -- acknowledged and deleted below, one XACK and one XDEL per lane
    local lk = key_of(prefix, 'lane', f[3], f[4], f[5])
    if not lanes[lk] then lanes[lk] = {pool = f[3], class = f[4], tenant = f[5], ids = {}} end
    local ids = lanes[lk].ids
    ids[#ids + 1] = f[6]
  end
  append_history(jk, history)
  if dead then redis.call('LPUSH', KEYS[3], job_id) ; redis.call('LTRIM', KEYS[3], 0, 9999) end
  -- The event carries the outcome; it is assembled here so the result crosses the wire only once.
  local data = '{"id":"' .. job_id .. '","status":"' .. status .. '","result":' ..
    json_or_null(result) .. ',"error":' .. json_or_null(err) .. ',"usage":' ..
    json_or_null(usage) .. '}'
  emit(prefix, job_id, status == STATUS.SUCCEEDED and 'completed' or 'failed', data, f[9],
    tonumber(attempt))
  retain(prefix, job_id, ttl_s, dead, {f[11], status, f[13], f[14], f[15]})
  return 1
end

local out = {}
for a = 3, #ARGV, PER_JOB do
  local ok, res = pcall(finish_one, a)
  if ok then
    out[#out + 1] = res
  else
    out[#out + 1] = type(res) == 'table' and (res.err or 'ERR finish') or tostring(res)
  end
end

if finished > 0 then
  if #done > 0 then
    redis.call('ZREM', KEYS[1], unpack(done))
    redis.call('HINCRBY', KEYS[2], 'inflight', -#done)
  end
  for tenant, n in pairs(tenants) do
    redis.call('HINCRBY', key_of(prefix, 'tinflight'), tenant, -n)
  end
  for _, c in pairs(counted) do count(KEYS[4], c[4], COUNTER.FINISHED, c[1], c[2], c[3]) end
  if ewma and ewma ~= tonumber(st[2] or '') then redis.call('HSET', KEYS[2], 'ewma_ms', ewma) end
  for lk, lane in pairs(lanes) do
    redis.call('XACK', lk, 'g', unpack(lane.ids))
    redis.call('XDEL', lk, unpack(lane.ids))
    if redis.call('XLEN', lk) == 0 and
        redis.call('HEXISTS', key_of(prefix, 'credit', lane.pool, lane.class), lane.tenant) == 0 then
      redis.call('DEL', lk)
    end
  end
  -- Work still queued while a worker went idle: jobs of a tenant at its in-flight cap, one of
  -- which may now start.
  if tonumber(st[1] or '0') > 0 then
    for pool in pairs(pools) do wake(prefix, pool) end
  end
end
return out
