-- Put a running job back in a queue: after a transient upstream error (after DELAY ms), a
-- rate-limit cool-down, a worker handing its jobs back on shutdown (front of the line), or a
-- fallback to the next step of its route, which may be another provider's pool.
-- KEYS: 1 job hash, 2 leases zset (current pool), 3 stats (current pool),
--       4 redeliver list (target pool), 5 delayed zset (target pool), 6 stats (target pool)
-- ARGV: 1 prefix, 2 job id, 3 attempt, 4 delay ms, 5 reason, 6 refund attempt (1|0),
--       7 target pool, 8 target step, 9 history entry json or '', 10 the model the next attempt
--       calls, as a JSON string (the retry event's `model`), or '' when it stays the same
-- Returns 1 if requeued, 0 if the attempt no longer owns the job.
-- Shared with Python: script_calls/requeue.py.
local REASON = {UPSTREAM_RATE_LIMITED = 'upstream_rate_limited'}
local prefix, job_id = ARGV[1], ARGV[2]
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'pool', 'priority', 'tenant', 'entry',
  'deadline_ms')
if f[1] ~= STATUS.RUNNING or f[2] ~= ARGV[3] then return 0 end
local delay, pool = tonumber(ARGV[4]), ARGV[7]
local attempt = tonumber(f[2])
if ARGV[6] == '1' then
  attempt = redis.call('HINCRBY', KEYS[1], 'attempts', -1)
end
if ARGV[5] == REASON.UPSTREAM_RATE_LIMITED then redis.call('HINCRBY', KEYS[1], 'cooled', 1) end
keep_body(prefix, job_id, key_of(prefix, 'lane', f[3], f[4], f[5]), f[6])
drop_entry(prefix, f[3], f[4], f[5], f[6])
append_history(KEYS[1], ARGV[9])
redis.call('ZREM', KEYS[2], job_id)
redis.call('HINCRBY', KEYS[3], 'inflight', -1)
redis.call('HINCRBY', KEYS[6], 'queued', 1)
redis.call('HINCRBY', key_of(prefix, 'tinflight'), f[5], -1)
redis.call('HINCRBY', key_of(prefix, 'tqueued'), f[5], 1)
if (redis.call('HGET', KEYS[1], 'step') or '0') ~= ARGV[8] then
  -- a new step of the route starts with the next attempt: count its attempts from there
  redis.call('HSET', KEYS[1], 'step_at', attempt + 1)
end
redis.call('HSET', KEYS[1], 'status', STATUS.QUEUED, 'worker', '', 'entry', '', 'pool', pool,
  'step', ARGV[8])
redis.call('HDEL', KEYS[1], 'cs')  -- a refunded attempt's number comes back: its chunks restart
if delay > 0 then
  -- due at its deadline at the latest: a job waiting (for a rate limit's turn, a Retry-After)
  -- past it is expired by the next claim then, not when the wait ends
  local due, deadline = now_ms() + delay, tonumber(f[7] or '') or 0
  if deadline > 0 and due > deadline + 1 then due = deadline + 1 end
  redis.call('HSET', KEYS[1], 'where', 'delayed')
  redis.call('ZADD', KEYS[5], due, job_id)
else
  redis.call('HSET', KEYS[1], 'where', 'redeliver')
  redis.call('LPUSH', KEYS[4], job_id)
  wake(prefix, pool)
end
emit(prefix, job_id, 'retry', '{"id":"' .. job_id .. '","attempt":' .. (attempt + 1) ..
  ',"reason":' .. cjson.encode(ARGV[5]) .. ',"delay_ms":' .. delay .. ',"provider":' ..
  cjson.encode(pool) .. (ARGV[10] ~= '' and (',"model":' .. ARGV[10]) or '') .. '}', nil,
  attempt + 1)
return 1
