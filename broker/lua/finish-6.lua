-- Record a running job's outcome, once: the first completion of the owning attempt wins; a stale
-- attempt (lease lost, job cancelled or already finished) changes nothing.
-- KEYS: 1 job hash, 2 leases zset, 3 pool stats, 4 dead-letter list, 5 metrics:jobs,
--       6 metrics:tokens
-- ARGV: 1 prefix, 2 job id, 3 attempt, 4 status (succeeded|failed), 5 result json, 6 error json,
--       7 usage json, 8 cost, 9 ttl s, 10 history entry json or '' (empty JSON means null),
--       11 usage to record for the tenant or '': 'day|month|prompt tokens|completion tokens|model'
--          (cost is ARGV 8), added to usage:<tenant>:<day> (per model and in total) and
--          usage:<tenant>:<month> (in total), which enqueue-6.lua checks budgets against, and to
--          the cluster's token counters (metrics:tokens; the cost in whole nano-USD: integers
--          add up exactly and in any order, where summed floats drift with the order of the
--          additions, and a nano-dollar is fine enough for the cheapest call)
-- Returns 1 if recorded, 0 if stale.
local prefix, job_id = ARGV[1], ARGV[2]
-- One read of the record for the whole script: 9 reply_to, then what retain needs (10-14)
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'pool', 'priority', 'tenant', 'entry',
  'started_ms', 'model', 'reply_to', unpack(RETAIN_FIELDS))
if f[1] ~= STATUS.RUNNING or f[2] ~= ARGV[3] then return 0 end
local now = now_ms()
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'finished_ms', now, 'where', '',
  'result', ARGV[5], 'error', ARGV[6], 'usage', ARGV[7], 'cost', ARGV[8])
redis.call('ZREM', KEYS[2], job_id)
redis.call('HINCRBY', KEYS[3], 'inflight', -1)
redis.call('HINCRBY', key_of(prefix, 'tinflight'), f[5], -1)
count(KEYS[5], 1, COUNTER.FINISHED, f[3], f[8], ARGV[4])
-- Work still queued while a worker went idle: jobs of a tenant at its in-flight cap, one of
-- which may now start.
local st = redis.call('HMGET', KEYS[3], 'queued', 'ewma_ms')
if tonumber(st[1] or '0') > 0 then wake(prefix, f[3]) end
if ARGV[11] and ARGV[11] ~= '' then
  local day, month, pt, ct, model = string.match(ARGV[11], '^([^|]*)|([^|]*)|(%d*)|(%d*)|(.*)$')
  pt, ct = tonumber(pt) or 0, tonumber(ct) or 0
  local cost = tonumber(ARGV[8]) or 0
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
  if pt > 0 then count(KEYS[6], pt, TOKENS.PROMPT, model, f[5]) end
  if ct > 0 then count(KEYS[6], ct, TOKENS.COMPLETION, model, f[5]) end
  if cost > 0 then count(KEYS[6], math.floor(cost * 1e9 + 0.5), TOKENS.COST, model, f[5]) end
  redis.call('EXPIRE', dkey, 100 * 86400)
  redis.call('EXPIRE', mkey, 400 * 86400)
end
if f[7] then
  local took = now - tonumber(f[7])
  local avg = tonumber(st[2] or took)
  redis.call('HSET', KEYS[3], 'ewma_ms', math.floor(avg * 0.9 + took * 0.1))
end
local dead = ARGV[4] == STATUS.FAILED
if dead then keep_body(prefix, job_id, key_of(prefix, 'lane', f[3], f[4], f[5]), f[6]) end
drop_entry(prefix, f[3], f[4], f[5], f[6])
append_history(KEYS[1], ARGV[10])
if dead then redis.call('LPUSH', KEYS[4], job_id) ; redis.call('LTRIM', KEYS[4], 0, 9999) end
-- The event carries the outcome; it is assembled here so the result crosses the wire only once.
local function json_or_null(s) if s == '' then return 'null' end return s end
local data = '{"id":"' .. job_id .. '","status":"' .. ARGV[4] .. '","result":' ..
  json_or_null(ARGV[5]) .. ',"error":' .. json_or_null(ARGV[6]) .. ',"usage":' ..
  json_or_null(ARGV[7]) .. '}'
emit(prefix, job_id, ARGV[4] == STATUS.SUCCEEDED and 'completed' or 'failed', data, f[9],
  tonumber(ARGV[3]))
retain(prefix, job_id, tonumber(ARGV[9]), dead, {f[10], ARGV[4], f[12], f[13], f[14]})
return 1
