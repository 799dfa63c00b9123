-- Shared prelude, prepended to every script at load time (Lua scripts cannot import).
-- Keys that a script derives at run time (the lane of the tenant it picked, the hash of the job it
-- claimed) are built from PREFIX, which carries the namespace's hash tag: they always live in the
-- same cluster slot as the KEYS the script was given (the approach BullMQ takes).

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local CLASSES = {'interactive', 'standard', 'batch'}

-- Every key a script derives at run time is built here: FAMILY as keys.py's KeySpace spells it
-- ('job', 'lane', 'tqueued' …), then the names that follow it, joined by ':'. A nil name fails
-- the script, as a concatenation with nil would.
local function key_of(prefix, family, ...)
  local k = prefix .. family
  for i = 1, select('#', ...) do k = k .. ':' .. select(i, ...) end
  return k
end

-- Strings a script shares with Python: each such table has a Python twin with the same names and
-- values (tests/unit/test_lua_contract.py holds them together). Job statuses: models.JobStatus.
local STATUS = {QUEUED = 'queued', RUNNING = 'running', SUCCEEDED = 'succeeded', FAILED = 'failed',
  CANCELLED = 'cancelled', EXPIRED = 'expired'}

-- Cluster metrics (docs/metrics.md): exact, monotonic counters kept by the script that makes the
-- state change, so no count is lost with a process nor made twice by two. Fields are the parts
-- joined by '|', the kind first: in metrics:jobs 'submitted|<pool>|<class>|<model>',
-- 'started|<pool>|<model>', 'finished|<pool>|<model>|<outcome>' (a job status),
-- 'redelivered|<pool>'; in metrics:tokens '<kind>|<model>|<tenant>', the cost in nano-USD.
-- One codec: broker/cluster_counters.py reads what these write.
local COUNTER = {SUBMITTED = 'submitted', STARTED = 'started', FINISHED = 'finished',
  REDELIVERED = 'redelivered'}
local TOKENS = {PROMPT = 'prompt', COMPLETION = 'completion', COST = 'cost'}

-- Add N to the field of HASH named by the parts; a part that is nil (a record missing a field)
-- counts as '' rather than failing the state change it counts.
local function count(hash, n, ...)
  local parts = {}
  for i = 1, select('#', ...) do parts[i] = select(i, ...) or '' end
  redis.call('HINCRBY', hash, table.concat(parts, '|'), string.format('%d', n))
end

-- The namespace's own prefix, from any shard's ('ag:{ns:shard}:' → 'ag:{ns}:'): channels that
-- one process listens to for every shard (its reply channel, a worker's control channel) carry it.
local function home_of(prefix)
  return 'ag:{' .. string.match(prefix, '^ag:{([^:}]*)') .. '}:'
end

-- A job's channel is named by the shard its id names ('job_<random>.<shard>'; no suffix: the
-- namespace's own), wherever the job lives now: watchers follow a job handed off to another
-- shard (handoff-5.lua) unawares. Channels are not keys: publishing one touches no slot.
-- keys.py's KeySpace.job_channel is the Python twin.
local function job_channel(prefix, job_id)
  local shard = string.match(job_id, '%.([%w_%-]+)$')
  local ns = string.match(prefix, '^ag:{([^:}]*)')
  return 'ag:{' .. ns .. (shard and (':' .. shard) or '') .. '}:n:' .. job_id
end

-- Append one event to a job's log and announce it on the job's channel; returns the message as
-- published. The message is the one codec of an event on the wire (read by
-- ``JobEvent.from_message``): its stream id, type, attempt ('' when the event belongs to none) and
-- data, one per line (JSON data holds no raw newline). ATTEMPT is also kept in the log entry
-- (field `a`), so a replay knows which attempt each chunk came from. The implicit `queued` event
-- (id 0-1) is never stored: the reader of the log adds it (job_queue.py's events_after), so a
-- merely queued job costs no stream at all and a started one no second entry.
local function record(prefix, job_id, etype, data, attempt)
  local ev = key_of(prefix, 'ev', job_id)
  local id
  if attempt then
    id = redis.call('XADD', ev, '*', 't', etype, 'd', data, 'a', attempt)
  else
    id = redis.call('XADD', ev, '*', 't', etype, 'd', data)
  end
  local message = id .. '\n' .. etype .. '\n' .. (attempt or '') .. '\n' .. data
  redis.call('PUBLISH', job_channel(prefix, job_id), message)
  return message
end

-- A synchronous caller waits on its API process's reply channel (no per-call SUBSCRIBE): one
-- message per call of a script, its events joined by ASCII 30, which JSON text never contains.
local function reply(prefix, job_id, reply_to, messages)
  if reply_to then
    redis.call('PUBLISH', key_of(home_of(prefix), 'reply', reply_to),
      job_id .. '\n' .. table.concat(messages, '\30'))
  end
end

-- Record one event and answer a waiting caller. REPLY_TO: the job's reply channel when the caller
-- already read it (false: none), else nil. ATTEMPT: the attempt the event belongs to, or nil.
local function emit(prefix, job_id, etype, data, reply_to, attempt)
  local message = record(prefix, job_id, etype, data, attempt)
  if reply_to == nil then
    reply_to = redis.call('HGET', key_of(prefix, 'job', job_id), 'reply_to')
  end
  reply(prefix, job_id, reply_to, {message})
end

-- Wake the pool's idle workers, if it has any. A worker whose claim came back short marks the
-- pool idle in that same script (claim-13.lua), so work added afterwards always finds the mark;
-- while every worker is busy, new work costs no pub/sub message at all.
local function wake(prefix, pool)
  if redis.call('DEL', key_of(prefix, 'idle', pool)) == 1 then
    redis.call('PUBLISH', key_of(prefix, 'wake', pool), '1')
  end
end

-- A batch's job has ended: count it on the batch (the control plane finalises a batch once its
-- count of ended lines reaches its total).
local function batch_job_ended(prefix, batch_id, status)
  local bk = key_of(prefix, 'batch', batch_id)
  if prefix ~= home_of(prefix) then
    -- a shard other than the batch's own (docs/scaling.md): counted here, summed by its readers
    -- (batch_store.py); kept a while after the last count, as a batch keeps its jobs
    bk = key_of(prefix, 'bdone', batch_id)
  elseif redis.call('EXISTS', bk) == 0 then
    return
  end
  redis.call('HINCRBY', bk, 'n_' .. status, 1)
  redis.call('HINCRBY', bk, 'n_done', 1)
  if prefix ~= home_of(prefix) then redis.call('EXPIRE', bk, 2592000) end
end

-- Make a terminal job's traces expire; queued and running jobs never expire (no silent loss).
-- A job with a webhook_url is queued for the control plane to deliver (jobhooks).
-- A dead letter (DEAD: failed for good) keeps its request as long as its record, so that the
-- admin API can requeue it (requeuedead-2.lua); any other finished job needs it no more. A
-- batch's job is kept at least as long as its batch may still need it for its output file.
-- JB: the record's RETAIN_FIELDS, when the caller read them already (after its last write of
-- the status), else nil.
local RETAIN_FIELDS = {'batch', 'status', 'keep_s', 'webhook_url', 'pk'}
local function retain(prefix, job_id, ttl_s, dead, jb)
  jb = jb or redis.call('HMGET', key_of(prefix, 'job', job_id), unpack(RETAIN_FIELDS))
  if jb[3] and tonumber(jb[3]) > ttl_s then ttl_s = tonumber(jb[3]) end
  if jb[1] then batch_job_ended(prefix, jb[1], jb[2]) end
  if jb[4] and jb[4] ~= '' then redis.call('RPUSH', key_of(prefix, 'jobhooks'), job_id) end
  redis.call('EXPIRE', key_of(prefix, 'job', job_id), ttl_s)
  redis.call('EXPIRE', key_of(prefix, 'ev', job_id), ttl_s)
  if dead then
    redis.call('EXPIRE', key_of(prefix, 'body', job_id), ttl_s)
  else
    redis.call('DEL', key_of(prefix, 'body', job_id))
  end
  if jb[5] then redis.call('HDEL', key_of(prefix, 'job', job_id), 'pk') end  -- nor the client's key
end

-- Append one entry to the job's attempt history (a JSON array kept as a string): failures only,
-- so a job that succeeds first time keeps a small, listpack-encoded hash.
local function append_history(job_key, entry)
  if entry == nil or entry == '' then return end
  local h = redis.call('HGET', job_key, 'history')
  if h and h ~= '' then
    redis.call('HSET', job_key, 'history', string.sub(h, 1, -2) .. ',' .. entry .. ']')
  else
    redis.call('HSET', job_key, 'history', '[' .. entry .. ']')
  end
end

-- A job leaving its lane unfinished keeps its body in a key of its own (see enqueue-2.lua).
local function keep_body(prefix, job_id, lane, entry)
  if not entry or entry == '' then return end  -- not in a lane: its body key exists already
  local found = redis.call('XRANGE', lane, entry, entry)
  if found[1] then
    local f = found[1][2]
    for i = 1, #f, 2 do
      if f[i] == 'b' then redis.call('SET', key_of(prefix, 'body', job_id), f[i + 1]) end
    end
  end
end

-- Forget a lane entry that is done with (delivered or abandoned). A lane it leaves empty, whose
-- tenant is out of the class ring, goes too: the tenant's next job in the class re-creates it,
-- with its group (enqueue-2.lua), so drained lanes and their consumer lists do not linger.
local function drop_entry(prefix, pool, class, tenant, entry)
  if not (pool and class and tenant and entry and entry ~= '') then return end
  local lane = key_of(prefix, 'lane', pool, class, tenant)
  redis.call('XACK', lane, 'g', entry)
  redis.call('XDEL', lane, entry)
  if redis.call('XLEN', lane) == 0 and
      redis.call('HEXISTS', key_of(prefix, 'credit', pool, class), tenant) == 0 then
    redis.call('DEL', lane)
  end
end
