-- Extend the leases of the jobs a live worker still owns, and tell it which ones it has lost
-- (cancelled, reclaimed after a stall, or finished elsewhere) so it can abort them.
-- KEYS: 1 leases zset, 2 worker registry hash
-- ARGV: 1 prefix, 2 worker id, 3 lease ms, 4 registry value, 5.. job id / attempt pairs
-- Returns the ids of the jobs the worker no longer owns.
local prefix, worker = ARGV[1], ARGV[2]
local now = now_ms()
local deadline = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[2], worker, ARGV[4])
local lost = {}
for i = 5, #ARGV, 2 do
  local job_id, attempt = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', key_of(prefix, 'job', job_id), 'status', 'attempts', 'worker')
  if f[1] == STATUS.RUNNING and f[2] == attempt and f[3] == worker then
    redis.call('ZADD', KEYS[1], 'XX', deadline, job_id)
  elseif not ((f[1] == STATUS.SUCCEEDED or f[1] == STATUS.FAILED) and f[2] == attempt) then
    -- cancelled, expired, reclaimed or gone; a job this attempt just finished is not lost,
    -- the worker simply has not forgotten it yet
    lost[#lost + 1] = job_id
  end
end
return lost
