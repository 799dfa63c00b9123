-- Cancel a job on behalf of its tenant. A queued job leaves its lane in this same step, so it can
-- never be dispatched after the cancel returns; a running job's worker is told on its control
-- channel to abort the upstream call. A job parked for a provider batch leaves its queue; one
-- held by a provider batch is only marked (the control plane drops its answer: finish-5.lua finds
-- it no longer running).
-- KEYS: 1 job hash, 2 leases zset, 3 redeliver list, 4 delayed zset, 5 pool stats, 6 metrics:jobs
-- ARGV: 1 prefix, 2 job id, 3 tenant, 4 ttl s, 5 reason
-- Returns {status before, status after}; status 'missing' when the job is not the tenant's.
-- Shared with Python: script_calls/cancel.py.
local CANCEL = {MISSING = 'missing'}
local CONTROL = {CANCEL = 'cancel'}
local prefix, job_id = ARGV[1], ARGV[2]
local f = redis.call('HMGET', KEYS[1], 'status', 'tenant', 'pool', 'priority', 'where', 'entry',
  'worker', 'model', 'pbq')
if not f[1] or f[2] ~= ARGV[3] then return {CANCEL.MISSING, CANCEL.MISSING} end
local status = f[1]
if status ~= STATUS.QUEUED and status ~= STATUS.RUNNING then return {status, status} end
local now = now_ms()
if status == STATUS.QUEUED then
  if not f[5] or f[5] == 'lane' then
    local lane = key_of(prefix, 'lane', f[3], f[4], f[2])
    if redis.call('XDEL', lane, f[6]) == 1 then
      redis.call('HINCRBY', KEYS[5], 'q:' .. f[4] .. ':' .. f[2], -1)
    end
  elseif f[5] == 'redeliver' then
    redis.call('LREM', KEYS[3], 0, job_id)
  elseif f[5] == 'delayed' then
    redis.call('ZREM', KEYS[4], job_id)
  elseif f[5] == 'pbq' then
    redis.call('ZREM', key_of(prefix, 'pbq', f[3], f[9]), job_id)
  end
  redis.call('HINCRBY', KEYS[5], 'queued', -1)
  redis.call('HINCRBY', key_of(prefix, 'tqueued'), f[2], -1)
elseif f[5] ~= 'pbatch' then
  drop_entry(prefix, f[3], f[4], f[2], f[6])
  redis.call('ZREM', KEYS[2], job_id)
  redis.call('HINCRBY', KEYS[5], 'inflight', -1)
  redis.call('HINCRBY', key_of(prefix, 'tinflight'), f[2], -1)
  redis.call('PUBLISH', key_of(home_of(prefix), 'ctl', f[7]), CONTROL.CANCEL .. ' ' .. job_id)
end
redis.call('HSET', KEYS[1], 'status', STATUS.CANCELLED, 'finished_ms', now, 'where', '',
  'error', cjson.encode({message = 'the job was cancelled', type = 'cancelled',
                         code = ARGV[5]}))
count(KEYS[6], 1, COUNTER.FINISHED, f[3], f[8], STATUS.CANCELLED)
emit(prefix, job_id, 'cancelled', cjson.encode({id = job_id, status = STATUS.CANCELLED,
  reason = ARGV[5]}))
retain(prefix, job_id, tonumber(ARGV[4]))
return {status, STATUS.CANCELLED}
