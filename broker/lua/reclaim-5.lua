-- Redeliver the jobs whose lease ran out (their worker died or stalled): back to the front of
-- the line with a `retry` event, or failed once they have used up their attempts (poison jobs).
-- KEYS: 1 leases zset, 2 redeliver list, 3 pool stats, 4 dead-letter list, 5 worker registry
-- ARGV: 1 prefix, 2 max attempts, 3 limit, 4 ttl s, 5 pool, 6 worker expiry ms
-- Returns the number of jobs reclaimed or failed.
local prefix, max_attempts, ttl, pool = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4]), ARGV[5]
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, job_id in ipairs(expired) do
  redis.call('ZREM', KEYS[1], job_id)
  local jk = prefix .. 'job:' .. job_id
  local f = redis.call('HMGET', jk, 'status', 'attempts', 'priority', 'tenant', 'entry', 'worker')
  if f[1] == 'running' then
    keep_body(prefix, job_id, lane_key(prefix, pool, f[3], f[4]), f[5])
    drop_entry(lane_key(prefix, pool, f[3], f[4]), f[5])
    redis.call('HINCRBY', KEYS[3], 'inflight', -1)
    redis.call('HINCRBY', prefix .. 'tinflight', f[4], -1)
    local attempts = tonumber(f[2])
    append_history(jk, '{"attempt":' .. attempts .. ',"provider":' .. cjson.encode(pool) ..
      ',"outcome":"lease_expired","worker":' .. cjson.encode(f[6] or '') .. '}')
    if attempts >= max_attempts then
      local err = {message = 'the job was delivered ' .. attempts .. ' times and its worker ' ..
        'stopped answering each time', type = 'server_error', code = 'max_attempts_exceeded'}
      redis.call('HSET', jk, 'status', 'failed', 'finished_ms', now, 'where', '',
        'error', cjson.encode(err))
      redis.call('LPUSH', KEYS[4], job_id)
      emit(prefix, job_id, 'failed', cjson.encode({id = job_id, status = 'failed', error = err}))
      retain(prefix, job_id, ttl, true)
    else
      redis.call('HSET', jk, 'status', 'queued', 'worker', '', 'where', 'redeliver', 'entry', '')
      redis.call('RPUSH', KEYS[2], job_id)
      redis.call('HINCRBY', KEYS[3], 'queued', 1)
      redis.call('HINCRBY', prefix .. 'tqueued', f[4], 1)
      emit(prefix, job_id, 'retry', cjson.encode({id = job_id, attempt = attempts + 1,
        reason = 'lease_expired', worker = f[6]}))
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
