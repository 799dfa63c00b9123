-- Take parked jobs into one provider batch, and write the batch's record in the same step (a
-- crash after it leaves a record to recover from, never jobs held by nothing): the most urgent of
-- the jobs that can still wait for a batch (their live cutoff at MIN CUTOFF or later), up to MAX.
-- Each is fenced (still queued and parked: a cancel got there first otherwise) and becomes
-- running under the batch, with an attempt of its own; it holds no lease, worker slot or
-- in-flight count (finish-5.lua and cancel-6.lua know it by `where` = 'pbatch').
-- KEYS: 1 parked zset (pbq:<pool>:<queue>), 2 pool stats, 3 metrics:jobs, 4 the batch's record
--       (pb:<id>), 5 the pool's provider batches (pbactive:<pool>, by cutoff)
-- ARGV: 1 prefix, 2 pool, 3 provider batch id, 4 max jobs, 5 min cutoff ms, 6 queue name
-- Returns a flat list, 4 fields per job taken: id, attempt, body, cutoff ms. Nothing is written
-- when no job is taken.
-- Shared with Python: script_calls/provider_batch.py.
local prefix, pool, pb = ARGV[1], ARGV[2], ARGV[3]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[5], '+inf', 'LIMIT', 0, tonumber(ARGV[4]))
local now = now_ms()
local out, tenants, models, taken, cutoff = {}, {}, {}, 0, nil
local jobs = key_of(prefix, 'pbjobs', pb)
for _, job_id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], job_id)
  local jk = key_of(prefix, 'job', job_id)
  local f = redis.call('HMGET', jk, 'status', 'where', 'tenant', 'attempts', 'cutoff_ms', 'model')
  if f[1] == STATUS.QUEUED and f[2] == 'pbq' then
    local attempt = tonumber(f[4] or '0') + 1
    redis.call('HSET', jk, 'status', STATUS.RUNNING, 'where', 'pbatch', 'pb', pb,
      'attempts', attempt, 'started_ms', now, 'worker', '')
    redis.call('HSET', jobs, job_id, attempt)
    record(prefix, job_id, 'started', cjson.encode({id = job_id, attempt = attempt,
      execution = 'provider_batch', provider_batch = pb}), attempt)
    tenants[f[3]] = (tenants[f[3]] or 0) + 1
    models[f[6] or ''] = (models[f[6] or ''] or 0) + 1
    taken = taken + 1
    local due = tonumber(f[5] or '0') or 0
    if cutoff == nil or due < cutoff then cutoff = due end
    out[#out + 1] = job_id
    out[#out + 1] = attempt
    out[#out + 1] = redis.call('GET', key_of(prefix, 'body', job_id)) or ''
    out[#out + 1] = f[5] or '0'
  end
end
if taken > 0 then
  redis.call('HSET', KEYS[4], 'pool', pool, 'queue', ARGV[6], 'state', 'taken', 'created_ms', now,
    'cutoff_ms', cutoff, 'jobs', taken)
  redis.call('ZADD', KEYS[5], cutoff, pb)
  redis.call('HINCRBY', KEYS[2], 'queued', -taken)
  for tenant, n in pairs(tenants) do redis.call('HINCRBY', key_of(prefix, 'tqueued'), tenant, -n) end
  for model, n in pairs(models) do count(KEYS[3], n, COUNTER.STARTED, pool, model) end
end
return out
