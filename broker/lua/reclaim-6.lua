-- Redeliver the jobs whose lease ran out (their worker died or stalled): back to the front of
-- the line with a `retry` event. A worker's death is our fault, not the job's: the lost delivery
-- does not count against the job's attempts on its deployment (`step_at` moves past it). Only a
-- job whose workers keep vanishing while they hold it, MAX LOST times, is failed (a poison job).
--
-- Leases measure a worker's silence on Redis's clock, so they must not lapse while Redis itself
-- was away: every call, for any pool, stamps `tick` in the namespace's `clock` hash, and a call
-- that finds the last stamp older than STALL ms (Redis was paused, restarted or unreachable for
-- every process: workers of every pool and the control plane all reclaim) gives every lease a
-- grace of LEASE ms, time for live workers to heartbeat again, before reclaiming any.
-- KEYS: 1 leases zset, 2 redeliver list, 3 pool stats, 4 dead-letter list, 5 worker registry,
--       6 metrics:jobs
-- ARGV: 1 prefix, 2 max lost deliveries, 3 limit, 4 ttl s, 5 pool, 6 worker expiry ms,
--       7 stall ms, 8 lease ms
-- Returns the number of jobs reclaimed or failed, or -1 while a stall's grace lasts.
local prefix, max_lost, ttl, pool = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]), ARGV[5]
local now = now_ms()
local clock_key = key_of(prefix, 'clock')
local clock = redis.call('HMGET', clock_key, 'tick', 'grace')
local tick, grace = tonumber(clock[1] or '0'), tonumber(clock[2] or '0')
redis.call('HSET', clock_key, 'tick', now)
if tick > 0 and now - tick > tonumber(ARGV[7]) then
  redis.call('HSET', clock_key, 'grace', now + tonumber(ARGV[8]))
  return -1
end
if grace > now then return -1 end
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, job_id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], job_id)
  local jk = key_of(prefix, 'job', job_id)
  local f = redis.call('HMGET', jk, 'status', 'attempts', 'priority', 'tenant', 'entry', 'worker',
    'step_at', 'model')
  if f[1] == STATUS.RUNNING then
    keep_body(prefix, job_id, key_of(prefix, 'lane', pool, f[3], f[4]), f[5])
    drop_entry(prefix, pool, f[3], f[4], f[5])
    redis.call('HINCRBY', KEYS[3], 'inflight', -1)
    redis.call('HINCRBY', key_of(prefix, 'tinflight'), f[4], -1)
    local attempts = tonumber(f[2])
    local lost = redis.call('HINCRBY', jk, 'lost', 1)
    redis.call('HSET', jk, 'step_at', tonumber(f[7] or '1') + 1)
    append_history(jk, '{"attempt":' .. attempts .. ',"provider":' .. cjson.encode(pool) ..
      ',"outcome":"lease_expired","worker":' .. cjson.encode(f[6] or '') .. '}')
    if lost >= max_lost then
      local err = {message = 'the job was delivered ' .. lost .. ' times and its worker ' ..
        'stopped answering each time', type = 'server_error', code = 'max_attempts_exceeded'}
      redis.call('HSET', jk, 'status', STATUS.FAILED, 'finished_ms', now, 'where', '',
        'error', cjson.encode(err))
      redis.call('LPUSH', KEYS[4], job_id)
      count(KEYS[6], 1, COUNTER.FINISHED, pool, f[8], STATUS.FAILED)
      emit(prefix, job_id, 'failed', cjson.encode({id = job_id, status = STATUS.FAILED, error = err}),
        nil, attempts)
      retain(prefix, job_id, ttl, true)
    else
      redis.call('HSET', jk, 'status', STATUS.QUEUED, 'worker', '', 'where', 'redeliver', 'entry', '')
      redis.call('RPUSH', KEYS[2], job_id)
      count(KEYS[6], 1, COUNTER.REDELIVERED, pool)
      redis.call('HINCRBY', KEYS[3], 'queued', 1)
      redis.call('HINCRBY', key_of(prefix, 'tqueued'), f[4], 1)
      emit(prefix, job_id, 'retry', cjson.encode({id = job_id, attempt = attempts + 1,
        reason = 'lease_expired', worker = f[6]}), nil, attempts + 1)
    end
  end
end
if #expired > 0 then wake(prefix, pool) end
-- Forget registry entries of workers that stopped heartbeating long ago.
local reg = redis.call('HGETALL', KEYS[5])
for i = 1, #reg, 2 do
  local seen = tonumber(string.match(reg[i + 1], '^(%d+)'))
  if seen and seen < now - tonumber(ARGV[6]) then redis.call('HDEL', KEYS[5], reg[i]) end
end
return #expired
