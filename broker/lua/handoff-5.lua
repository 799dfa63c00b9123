-- Hand a running job to a pool on another shard, step 1 of 2 (docs/scaling.md#hand-off): on the
-- job's shard, atomically, the job leaves its lease and its lane, and becomes a PARCEL (its
-- record as the next attempt will see it, its request, its event log and the retry event to
-- add) kept under parcel:<id> and listed in the shard's handoffs set; its record becomes a
-- forwarding record ('moved', moved_to = the target shard), which the API follows. Step 2 is
-- adopt-5.lua on the target shard, then the parcel is dropped. A crash before the parcel is
-- dropped leaves it listed: a sweep (handoff.py) adopts it again, which adopt-5.lua makes a no-op
-- when the job is already there. So the job is never lost, and never queued twice.
-- KEYS: 1 job hash, 2 leases zset (current pool), 3 stats (current pool), 4 event stream,
--       5 handoffs zset (this shard)
-- ARGV: 1 prefix, 2 job id, 3 attempt, 4 target shard, 5 target pool, 6 target step,
--       7 history entry json or '', 8 reason, 9 refund attempt (1|0), 10 the model the next
--       attempt calls as a JSON string, or '', 11 delay ms
-- Returns the parcel (JSON), or 0 if the attempt no longer owns the job.
-- Shared with Python: broker/handoff.py.
local MOVED = 'moved'
local prefix, job_id, target = ARGV[1], ARGV[2], ARGV[4]
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'pool', 'priority', 'tenant', 'entry',
  'ix')
if f[1] ~= STATUS.RUNNING or f[2] ~= ARGV[3] then return 0 end
local attempt = tonumber(f[2])
if ARGV[9] == '1' then attempt = redis.call('HINCRBY', KEYS[1], 'attempts', -1) end
keep_body(prefix, job_id, key_of(prefix, 'lane', f[3], f[4], f[5]), f[6])
drop_entry(prefix, f[3], f[4], f[5], f[6])
append_history(KEYS[1], ARGV[7])
redis.call('ZREM', KEYS[2], job_id)
redis.call('HINCRBY', KEYS[3], 'inflight', -1)
redis.call('HINCRBY', key_of(prefix, 'tinflight'), f[5], -1)
if (redis.call('HGET', KEYS[1], 'step') or '0') ~= ARGV[6] then
  redis.call('HSET', KEYS[1], 'step_at', attempt + 1)
end
local delay = tonumber(ARGV[11])
redis.call('HSET', KEYS[1], 'status', STATUS.QUEUED, 'worker', '', 'entry', '', 'pool', ARGV[5],
  'step', ARGV[6], 'where', delay > 0 and 'delayed' or 'redeliver')
redis.call('HDEL', KEYS[1], 'cs')
local body_key = key_of(prefix, 'body', job_id)
local parcel = cjson.encode({
  job = redis.call('HGETALL', KEYS[1]),
  body = redis.call('GET', body_key) or '',
  ev = redis.call('XRANGE', KEYS[4], '-', '+'),
  attempt = attempt + 1,
  delay = delay,
  retry = '{"id":"' .. job_id .. '","attempt":' .. (attempt + 1) .. ',"reason":' ..
    cjson.encode(ARGV[8]) .. ',"delay_ms":' .. delay .. ',"provider":' .. cjson.encode(ARGV[5]) ..
    (ARGV[10] ~= '' and (',"model":' .. ARGV[10]) or '') .. '}',
})
redis.call('SET', key_of(prefix, 'parcel', job_id), parcel)
redis.call('ZADD', KEYS[5], now_ms(), job_id .. '|' .. target)
redis.call('DEL', KEYS[1], KEYS[4], body_key)
redis.call('HSET', KEYS[1], 'status', MOVED, 'moved_to', target, 'tenant', f[5], 'ix', f[7] or '')
return parcel
