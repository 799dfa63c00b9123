-- The health of one deployment, shared by every worker: its 429 cool-down, its circuit breaker,
-- and the gradual resumption after either (docs/queue-semantics.md#retries-and-failover). Each change of state is published on
-- PREFIX .. 'health' as '<deployment> <event> <ms>', so workers and API processes keep a local
-- view and ask Redis only when that view says a decision is due or a report is wanted.
--
-- After a pause nothing calls at once: when a 429 cool-down ends, one call (the cool-down's
-- probe) tests whether the storm is over; when a breaker's cool-down ends, one call (its probe)
-- tests whether the deployment recovered. Every other call waits for the verdict. A good verdict
-- starts a ramp: calls are admitted 1, 2, 4 … at a time (doubling 8 times over RAMP ms), then the
-- deployment is steady again and the views stop asking.
-- KEYS: 1 the deployment's health hash (PREFIX .. 'dh:' .. deployment)
-- ARGV: 1 prefix, 2 deployment, 3 op, then by op:
--   cool     4 ms                    cool down for ms (an upstream 429's Retry-After)
--   probe    4 probe id, 5 probe ttl ms, 6 ramp ms   may this call go ahead?
--            {'ok', 0} yes; {'steady', 0} yes, and nothing is settling (the view may stop
--            asking); {'probe', 0} yes, as the one test call; {'cool'|'open', ms} paused for
--            ms; {'wait', ms, spread ms} a probe's verdict is due, {'ramp', ms, spread ms} the
--            ramp has no room yet: ask again in ms to ms + spread
--   success  4 probe id, 5 window ms  a call succeeded (reported while the view is not steady)
--   failure  4 probe id, 5 consecutive failures to open, 6 error rate to open, 7 min calls,
--            8 window ms, 9 cool-down ms   a call failed transiently; returns the state after
--   peek                             {state, ms until open ends, ms until cool-down ends, dirty,
--                                     settling}
-- Fields: state (closed|open|half), until (open until, ms), cool (cool-down until, ms), fails
-- (consecutive failures), w_start / w_calls / w_fails (the error-rate window, which starts at a
-- failure: calls are only counted, by every worker, while a failure is recent), probe /
-- probe_until (the one call allowed through a half-open breaker), cooled (a cool-down ended
-- without a verdict yet), cprobe / cprobe_until (the one call testing it), ramp / ramp_n (the
-- ramp's start, ms, and calls admitted since).
-- Shared with Python: script_calls/health.py.
local OP = {COOL = 'cool', PROBE = 'probe', SUCCESS = 'success', FAILURE = 'failure', PEEK = 'peek'}
local VERDICT = {OK = 'ok', STEADY = 'steady', PROBE = 'probe', COOL = 'cool', OPEN = 'open',
  WAIT = 'wait', RAMP = 'ramp'}
local STATE = {CLOSED = 'closed', OPEN = 'open', HALF = 'half'}
local EVENT = {COOL = 'cool', OPEN = 'open', RAMP = 'ramp', STEADY = 'steady', DIRTY = 'dirty',
  CLEAN = 'clean'}
local prefix, dep, op = ARGV[1], ARGV[2], ARGV[3]
local key = KEYS[1]
local now = now_ms()
local channel = key_of(prefix, 'health')
local VERDICT_WAIT_MS = 500  -- how often a waiting job asks again while a probe is out
local KEEP_MS = 600000       -- a settling state nobody calls through is forgotten after this

local function announce(event, ms)
  redis.call('PUBLISH', channel, dep .. ' ' .. event .. ' ' .. math.max(0, math.floor(ms)))
end

local h = redis.call('HMGET', key, 'state', 'until', 'cool', 'fails', 'w_start', 'w_calls',
  'w_fails', 'probe', 'probe_until', 'cooled', 'cprobe', 'cprobe_until', 'ramp', 'ramp_n')
local state = h[1] or STATE.CLOSED
local open_until = tonumber(h[2] or '0')
local cool = tonumber(h[3] or '0')
local fails = tonumber(h[4] or '0')
local w_start = tonumber(h[5] or '0')
local w_calls, w_fails = tonumber(h[6] or '0'), tonumber(h[7] or '0')
local cooled = h[10] == '1'
local ramp, ramp_n = tonumber(h[13] or '0'), tonumber(h[14] or '0')

-- Keep the hash while anything is recorded in it; delete it when nothing is.
local function tidy()
  if redis.call('HLEN', key) == 0 then return end
  local f = redis.call('HMGET', key, 'state', 'fails', 'w_start', 'cooled', 'ramp', 'cool')
  local busy = (f[1] and f[1] ~= STATE.CLOSED) or tonumber(f[2] or '0') > 0 or
    tonumber(f[3] or '0') > 0
  if busy then
    redis.call('PERSIST', key)
  elseif f[4] or f[5] or tonumber(f[6] or '0') > now then
    redis.call('PEXPIRE', key, math.max(tonumber(f[6] or '0') - now, 0) + KEEP_MS)
  else
    redis.call('DEL', key)
  end
end

local function start_ramp()
  redis.call('HDEL', key, 'cooled', 'cprobe', 'cprobe_until')
  redis.call('HSET', key, 'ramp', now, 'ramp_n', 0)
  tidy()
  announce(EVENT.RAMP, 0)
end

local function end_ramp()
  redis.call('HDEL', key, 'ramp', 'ramp_n')
  tidy()
  announce(EVENT.STEADY, 0)
end

local function close()
  redis.call('HDEL', key, 'state', 'until', 'fails', 'w_start', 'w_calls', 'w_fails', 'probe',
    'probe_until')
  start_ramp()
end

local function open(cooldown_ms)
  redis.call('HSET', key, 'state', STATE.OPEN, 'until', now + cooldown_ms, 'fails', 0, 'w_start', 0,
    'w_calls', 0, 'w_fails', 0)
  redis.call('HDEL', key, 'probe', 'probe_until', 'ramp', 'ramp_n')
  redis.call('PERSIST', key)
  announce(EVENT.OPEN, cooldown_ms)
end

-- The one test call after a pause: ID is elected unless another's is still out.
local function elect(field, until_field, id, ttl_ms)
  local held = redis.call('HMGET', key, field, until_field)
  if held[1] == id then return {VERDICT.PROBE, 0} end  -- asked again (a retried call): still this one
  local held_until = tonumber(held[2] or '0')
  if held[1] and held_until > now then
    return {VERDICT.WAIT, math.min(held_until - now, VERDICT_WAIT_MS), VERDICT_WAIT_MS}
  end
  redis.call('HSET', key, field, id, until_field, now + ttl_ms)
  return {VERDICT.PROBE, 0}
end

if op == OP.COOL then
  local ms = tonumber(ARGV[4])
  if now + ms > cool then
    -- a 429 during a ramp (or from the probe itself) pauses again; the next verdict restarts it
    redis.call('HSET', key, 'cool', now + ms, 'cooled', 1)
    redis.call('HDEL', key, 'cprobe', 'cprobe_until', 'ramp', 'ramp_n')
    tidy()
    announce(EVENT.COOL, ms)
  end
  return 1
end

if op == OP.PEEK then
  local dirty = (fails > 0 or w_start > 0) and 1 or 0
  local settling = (cooled or ramp > 0 or state ~= STATE.CLOSED) and 1 or 0
  return {state, math.max(0, open_until - now), math.max(0, cool - now), dirty, settling}
end

if op == OP.PROBE then
  if cool > now then return {VERDICT.COOL, cool - now} end
  if state == STATE.OPEN and now < open_until then return {VERDICT.OPEN, open_until - now} end
  if state == STATE.OPEN or state == STATE.HALF then
    local verdict = elect('probe', 'probe_until', ARGV[4], tonumber(ARGV[5]))
    if verdict[1] == VERDICT.PROBE then redis.call('HSET', key, 'state', STATE.HALF) end
    return verdict
  end
  if cooled then return elect('cprobe', 'cprobe_until', ARGV[4], tonumber(ARGV[5])) end
  if ramp > 0 then
    local ramp_ms = tonumber(ARGV[6])
    local step_ms = math.max(1, ramp_ms / 8)
    local elapsed = now - ramp
    if elapsed >= ramp_ms then
      end_ramp()
      return {VERDICT.STEADY, 0}
    end
    local allowed = math.floor(2 ^ math.floor(elapsed / step_ms))
    if ramp_n < allowed then
      redis.call('HSET', key, 'ramp_n', ramp_n + 1)
      return {VERDICT.OK, 0}
    end
    local next_step = (math.floor(elapsed / step_ms) + 1) * step_ms
    return {VERDICT.RAMP, next_step - elapsed, ramp_ms - next_step}
  end
  return {VERDICT.STEADY, 0}
end

if op == OP.SUCCESS then
  if state ~= STATE.CLOSED then
    -- only the probe's success closes the breaker; a call that began before it opened proves
    -- nothing
    if h[8] == ARGV[4] then close() ; return STATE.CLOSED end
    return state
  end
  if cooled and h[11] == ARGV[4] then start_ramp() end
  local window_ms = tonumber(ARGV[5])
  if w_start > 0 and now - w_start > window_ms then
    -- the failure that began the window is no longer recent: stop counting
    redis.call('HDEL', key, 'fails', 'w_start', 'w_calls', 'w_fails')
    tidy()
    announce(EVENT.CLEAN, 0)
  elseif w_start > 0 then
    redis.call('HSET', key, 'fails', 0, 'w_calls', w_calls + 1)
  elseif fails > 0 then
    redis.call('HSET', key, 'fails', 0)
  end
  return STATE.CLOSED
end

if op == OP.FAILURE then
  local threshold, rate, min_calls = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local window_ms, cooldown_ms = tonumber(ARGV[8]), tonumber(ARGV[9])
  if state == STATE.HALF or state == STATE.OPEN then
    if state == STATE.OPEN and now < open_until then return STATE.OPEN end
    open(cooldown_ms)  -- the probe (or a call that slipped through) failed: open again
    return STATE.OPEN
  end
  -- the cool-down's probe failed otherwise than with a 429: the storm is over; the breaker
  -- judges the failure
  if cooled and h[11] == ARGV[4] then start_ramp() end
  if w_start == 0 or now - w_start > window_ms then
    w_start, w_calls, w_fails = now, 0, 0
  end
  w_calls, w_fails, fails = w_calls + 1, w_fails + 1, fails + 1
  if fails >= threshold or (w_calls >= min_calls and w_fails / w_calls >= rate) then
    open(cooldown_ms)
    return STATE.OPEN
  end
  redis.call('HSET', key, 'fails', fails, 'w_start', w_start, 'w_calls', w_calls,
    'w_fails', w_fails)
  redis.call('PERSIST', key)
  if fails == 1 then announce(EVENT.DIRTY, 0) end
  return STATE.CLOSED
end

return redis.error_reply('unknown op ' .. tostring(op))
