-- Append events (chunks) for a running job, fenced by the attempt that owns it: a worker whose
-- lease was lost (or whose job was cancelled) learns so here and stops streaming. Several events
-- in one call: a worker sends, at once, every chunk that arrived while its previous call ran.
-- Idempotent: each event has a sequence number within its attempt, and the job hash remembers
-- the last one appended (`cs` = '<attempt>:<seq>'), so a call retried after its reply was lost
-- (Redis stalled or restarted: the first call may still have run) appends nothing twice.
-- KEYS: 1 job hash, 2 event stream
-- ARGV: 1 prefix, 2 job id, 3 attempt, 4 event type, 5 sequence number of the first event (from
--       1 in each attempt), 6.. data, one per event
-- Returns the number of events appended (0: all were already there), or false when the attempt
-- no longer owns the job.
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'reply_to', 'cs')
if f[1] ~= STATUS.RUNNING or f[2] ~= ARGV[3] then return false end
local first, last = tonumber(ARGV[5]), 0
if f[4] then
  local a, n = string.match(f[4], '^(%d+):(%d+)$')
  if a == ARGV[3] then last = tonumber(n) end
end
local attempt = tonumber(ARGV[3])
local messages = {}
for i = 6, #ARGV do
  if first + i - 6 > last then
    messages[#messages + 1] = record(ARGV[1], ARGV[2], ARGV[4], ARGV[i], attempt)
  end
end
if #messages > 0 then
  redis.call('HSET', KEYS[1], 'cs', ARGV[3] .. ':' .. (first + #ARGV - 6))
  reply(ARGV[1], ARGV[2], f[3], messages)
end
return #messages
