-- Append an event (a chunk) for a running job, fenced by the attempt that owns it: a worker whose
-- lease was lost (or whose job was cancelled) learns so here and stops streaming.
-- KEYS: 1 job hash, 2 event stream
-- ARGV: 1 prefix, 2 job id, 3 attempt, 4 event type, 5 data
-- Returns the event id, or false when the attempt no longer owns the job.
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'reply_to')
if f[1] ~= 'running' or f[2] ~= ARGV[3] then return false end
return emit(ARGV[1], ARGV[2], ARGV[4], ARGV[5], f[3])  -- one read per chunk, not two
