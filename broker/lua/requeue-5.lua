-- Put a running job back in the queue: a transient upstream error (after DELAY ms), a rate-limit
-- cool-down, or a worker handing its jobs back on shutdown (front of the line, no delay).
-- KEYS: 1 job hash, 2 leases zset, 3 redeliver list, 4 delayed zset, 5 pool stats
-- ARGV: 1 prefix, 2 job id, 3 attempt, 4 delay ms, 5 reason, 6 refund attempt (1|0), 7 pool
-- Returns 1 if requeued, 0 if the attempt no longer owns the job.
local prefix, job_id = ARGV[1], ARGV[2]
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'pool', 'priority', 'tenant', 'entry')
if f[1] ~= 'running' or f[2] ~= ARGV[3] then return 0 end
local delay = tonumber(ARGV[4])
local attempt = tonumber(f[2])
if ARGV[6] == '1' then
  attempt = redis.call('HINCRBY', KEYS[1], 'attempts', -1)
end
drop_entry(lane_key(prefix, f[3], f[4], f[5]), f[6])
redis.call('ZREM', KEYS[2], job_id)
redis.call('HINCRBY', KEYS[5], 'inflight', -1)
redis.call('HINCRBY', KEYS[5], 'queued', 1)
if delay > 0 then
  redis.call('HSET', KEYS[1], 'status', 'queued', 'worker', '', 'where', 'delayed', 'entry', '')
  redis.call('ZADD', KEYS[4], now_ms() + delay, job_id)
else
  redis.call('HSET', KEYS[1], 'status', 'queued', 'worker', '', 'where', 'redeliver', 'entry', '')
  redis.call('LPUSH', KEYS[3], job_id)
  redis.call('PUBLISH', prefix .. 'wake:' .. ARGV[7], '1')
end
emit(prefix, job_id, 'retry', cjson.encode({id = job_id, attempt = attempt + 1, reason = ARGV[5],
  delay_ms = delay}))
return 1
