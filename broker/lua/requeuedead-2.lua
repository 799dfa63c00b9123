-- Requeue one dead letter (admin API): a job that failed for good goes back to the lane of its
-- route's first step as a fresh queued job. Attempts, step and timings start over; its attempt
-- history is kept, so the record still says why it died before. One job per call: each one is
-- moved atomically, and one that cannot be moved leaves the others unaffected.
-- KEYS: 1 the pool's dead-letter list, 2 job hash
--       (derived from PREFIX, as enqueue-2.lua writes them: the target pool's lane, class ring,
--        class credits, stats and tenant weights; the job's body, events; tqueued)
-- ARGV: 1 prefix, 2 job id
-- Returns 'requeued', or why not: 'expired' (the record is gone; the id leaves the list),
--   'not_dead' (not a failed job in this list: requeued already, or never dead),
--   'body_gone' (the request was not kept, so there is nothing to run; it stays dead),
--   'deadline_passed' (its client wanted it started by a time now past; it stays dead),
--   'batch_job' (a batch's line: its batch counts it as failed and writes it to its error file).
-- Shared with Python: script_calls/requeuedead.py.
local OUTCOME = {REQUEUED = 'requeued', EXPIRED = 'expired', NOT_DEAD = 'not_dead',
  BODY_GONE = 'body_gone', DEADLINE_PASSED = 'deadline_passed', BATCH_JOB = 'batch_job'}
local prefix, job_id = ARGV[1], ARGV[2]
local f = redis.call('HMGET', KEYS[2], 'status', 'tenant', 'priority', 'pool', 'plan',
  'deadline_ms', 'batch')
if not f[1] then
  redis.call('LREM', KEYS[1], 0, job_id)
  return OUTCOME.EXPIRED
end
if f[1] ~= STATUS.FAILED then return OUTCOME.NOT_DEAD end
if f[7] then return OUTCOME.BATCH_JOB end
local body = redis.call('GET', key_of(prefix, 'body', job_id))
if not body then return OUTCOME.BODY_GONE end
local now = now_ms()
if f[6] and f[6] ~= '' and tonumber(f[6]) > 0 and now > tonumber(f[6]) then
  return OUTCOME.DEADLINE_PASSED
end
if redis.call('LREM', KEYS[1], 0, job_id) == 0 then return OUTCOME.NOT_DEAD end

local tenant, class = f[2], f[3]
-- A fresh job starts at its route's first step, whose provider may be another pool than the one
-- it died in (a fallback); a job without a plan stays in its pool.
local pool = f[4]
if f[5] and f[5] ~= '' then pool = string.match(f[5], '^[^|;]*|([^|;]*)|') or pool end
local lane = key_of(prefix, 'lane', pool, class, tenant)
local ring = key_of(prefix, 'ring', pool, class)
local credits = key_of(prefix, 'credit', pool, class)
local stats = key_of(prefix, 'stats', pool)

-- Back in the class ring, exactly as enqueue-2.lua does it, so that claim dispatches it.
if redis.call('HEXISTS', credits, tenant) == 0 then
  redis.call('RPUSH', ring, tenant)
  redis.call('HSET', credits, tenant, redis.call('HGET', key_of(prefix, 'tweight', pool), tenant) or '1')
  pcall(redis.call, 'XGROUP', 'CREATE', lane, 'g', '0', 'MKSTREAM')
end
local entry = redis.call('XADD', lane, '*', 'j', job_id, 'b', body)
redis.call('DEL', key_of(prefix, 'body', job_id))  -- a queued job's body travels in its lane entry

-- Queued jobs never expire; the result and the outcome of the dead run are forgotten, the
-- history of its failed attempts is not. A synchronous caller it had is long gone.
redis.call('PERSIST', KEYS[2])
redis.call('HDEL', KEYS[2], 'where', 'worker', 'started_ms', 'finished_ms', 'result', 'error',
  'usage', 'cost', 'step_at', 'cooled', 'reply_to', 'lost', 'cs')
redis.call('HSET', KEYS[2], 'status', STATUS.QUEUED, 'attempts', 0, 'entry', entry, 'pool', pool)
if f[5] and f[5] ~= '' then redis.call('HSET', KEYS[2], 'step', 0) end
redis.call('HINCRBY', stats, 'q:' .. class .. ':' .. tenant, 1)
redis.call('HINCRBY', stats, 'queued', 1)
redis.call('HINCRBY', key_of(prefix, 'tqueued'), tenant, 1)

-- Its event log starts over too: a replay must not stop at the old `failed` event. The `retry`
-- event (attempt 1) tells a listener why a failed job is queued again.
redis.call('DEL', key_of(prefix, 'ev', job_id))
record(prefix, job_id, 'retry', cjson.encode({id = job_id, attempt = 1, reason = 'requeued'}), 1)
wake(prefix, pool)
return OUTCOME.REQUEUED
