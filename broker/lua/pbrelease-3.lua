-- Send jobs the provider-batch path will not finish to live calls: parked jobs whose cutoff came
-- before a batch took them, and jobs of a provider batch that did not run them (expired,
-- cancelled at the cutoff, a transient error, or failed to start). Each goes to the front of its
-- pool's redeliveries (it has the least time left) with its attempt given back: the provider
-- never ran it, so live calls get every attempt a live job gets. Fenced: a parked job must still
-- be parked, a held one still held by this batch in this attempt (a cancel, or an answer already
-- recorded, got there first otherwise).
-- KEYS: 1 redeliver list, 2 pool stats, 3 pbq zset (the deployment's)
-- ARGV: 1 prefix, 2 pool, 3 provider batch id ('' for parked jobs), 4 reason, then per job:
--       job id, attempt ('' for parked jobs)
-- Returns one reply per job, in order: 1 if sent live, 0 if the fence refused it.
-- Shared with Python: script_calls/provider_batch.py.
local prefix, pool, pb, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out, sent, requeued, tenants = {}, 0, 0, {}
for a = 5, #ARGV, 2 do
  local job_id, attempt = ARGV[a], ARGV[a + 1]
  local jk = key_of(prefix, 'job', job_id)
  local f = redis.call('HMGET', jk, 'status', 'where', 'pb', 'attempts', 'tenant')
  local parked = pb == '' and f[1] == STATUS.QUEUED and f[2] == 'pbq'
  local held = pb ~= '' and f[1] == STATUS.RUNNING and f[2] == 'pbatch' and f[3] == pb and
    f[4] == attempt
  if parked or held then
    redis.call('ZREM', KEYS[3], job_id)
    redis.call('HSET', jk, 'status', STATUS.QUEUED, 'where', 'redeliver', 'execution', 'live',
      'live_because', reason)
    redis.call('HDEL', jk, 'pb', 'pbq')
    if held then
      local next_attempt = tonumber(attempt)
      redis.call('HSET', jk, 'attempts', next_attempt - 1)
      requeued = requeued + 1
      tenants[f[5]] = (tenants[f[5]] or 0) + 1
      emit(prefix, job_id, 'retry', cjson.encode({id = job_id, attempt = next_attempt,
        reason = reason, delay_ms = 0, provider = pool, execution = 'live'}), nil, next_attempt)
    end
    redis.call('LPUSH', KEYS[1], job_id)
    sent = sent + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if requeued > 0 then
  redis.call('HINCRBY', KEYS[2], 'queued', requeued)
  for tenant, n in pairs(tenants) do redis.call('HINCRBY', key_of(prefix, 'tqueued'), tenant, n) end
end
if sent > 0 then wake(prefix, pool) end
return out
