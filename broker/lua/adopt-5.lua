-- Hand-off, step 2 of 2 (handoff-5.lua is step 1): on the target shard, take in a parcel as a
-- queued job of the target pool, with its record, request and event log as they were (the log
-- keeps its entry ids, so a client resuming with Last-Event-ID reads on), then add the retry
-- event. A job already here (the step ran before, and the job may have run since) is left alone:
-- repeating this step changes nothing.
-- KEYS: 1 job hash, 2 event stream, 3 redeliver list (target pool), 4 delayed zset (target
--       pool), 5 stats (target pool)
-- ARGV: 1 prefix, 2 job id, 3 target pool, 4 the parcel (JSON)
-- Returns 1 if adopted, 0 if the job was here already.
-- Shared with Python: broker/handoff.py.
local prefix, job_id, pool = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local p = cjson.decode(ARGV[4])
redis.call('HSET', KEYS[1], unpack(p.job))
if p.body ~= '' then redis.call('SET', key_of(prefix, 'body', job_id), p.body) end
for _, e in ipairs(p.ev) do redis.call('XADD', KEYS[2], e[1], unpack(e[2])) end
local tenant = redis.call('HGET', KEYS[1], 'tenant')
redis.call('HINCRBY', KEYS[5], 'queued', 1)
redis.call('HINCRBY', key_of(prefix, 'tqueued'), tenant, 1)
if p.delay > 0 then
  redis.call('ZADD', KEYS[4], now_ms() + p.delay, job_id)
else
  redis.call('LPUSH', KEYS[3], job_id)
  wake(prefix, pool)
end
emit(prefix, job_id, 'retry', p.retry, nil, p.attempt)
return 1
