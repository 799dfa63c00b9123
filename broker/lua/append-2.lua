-- Append events (chunks) for a running job, fenced by the attempt that owns it: a worker whose
-- lease was lost (or whose job was cancelled) learns so here and stops streaming. Several events
-- in one call: a worker sends, at once, every chunk that arrived while its previous call ran.
-- KEYS: 1 job hash, 2 event stream
-- ARGV: 1 prefix, 2 job id, 3 attempt, 4 event type, 5.. data, one per event
-- Returns the number of events, or false when the attempt no longer owns the job.
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'reply_to')
if f[1] ~= 'running' or f[2] ~= ARGV[3] then return false end
local messages = {}
for i = 5, #ARGV do
  messages[#messages + 1] = record(ARGV[1], ARGV[2], ARGV[4], ARGV[i])
end
reply(ARGV[1], ARGV[2], f[3], messages)
return #messages
