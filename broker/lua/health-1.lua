-- The health of one deployment, shared by every worker: its 429 cool-down and its circuit
-- breaker (SPEC §2). Each change of state is published on PREFIX .. 'health' as
-- '<deployment> <event> <ms>', so workers and API processes keep a local view and ask Redis only
-- when that view says a decision is due (a half-open probe) or a report is wanted.
-- KEYS: 1 the deployment's health hash (PREFIX .. 'dh:' .. deployment)
-- ARGV: 1 prefix, 2 deployment, 3 op, then by op:
--   cool     4 ms                      cool down for ms (an upstream 429's Retry-After)
--   probe    4 probe id, 5 probe ttl ms   may this call go ahead? {'ok'|'probe'|'open'|'cool', ms}
--   success  4 probe id, 5 window ms   a call succeeded (reported while the view says 'dirty')
--   failure  4 probe id, 5 consecutive failures to open, 6 error rate to open, 7 min calls,
--            8 window ms, 9 cool-down ms   a call failed transiently; returns the state after
--   peek                               {state, ms until open ends, ms until cool-down ends, dirty}
-- Fields: state (closed|open|half), until (open until, ms), cool (cool-down until, ms), fails
-- (consecutive failures), w_start / w_calls / w_fails (the error-rate window, which starts at a
-- failure: calls are only counted, by every worker, while a failure is recent), probe /
-- probe_until (the one call allowed through a half-open breaker).
local prefix, dep, op = ARGV[1], ARGV[2], ARGV[3]
local key = KEYS[1]
local now = now_ms()
local channel = prefix .. 'health'

local function announce(event, ms)
  redis.call('PUBLISH', channel, dep .. ' ' .. event .. ' ' .. math.max(0, math.floor(ms)))
end

local h = redis.call('HMGET', key, 'state', 'until', 'cool', 'fails', 'w_start', 'w_calls',
  'w_fails', 'probe', 'probe_until')
local state = h[1] or 'closed'
local open_until = tonumber(h[2] or '0')
local cool = tonumber(h[3] or '0')
local fails = tonumber(h[4] or '0')
local w_start = tonumber(h[5] or '0')
local w_calls, w_fails = tonumber(h[6] or '0'), tonumber(h[7] or '0')

local function close()
  redis.call('DEL', key)
  if cool > now then redis.call('HSET', key, 'cool', cool) ; redis.call('PEXPIREAT', key, cool) end
  announce('closed', 0)
end

local function open(cooldown_ms)
  redis.call('HSET', key, 'state', 'open', 'until', now + cooldown_ms, 'fails', 0, 'w_start', 0,
    'w_calls', 0, 'w_fails', 0)
  redis.call('HDEL', key, 'probe', 'probe_until')
  redis.call('PERSIST', key)
  announce('open', cooldown_ms)
end

if op == 'cool' then
  local ms = tonumber(ARGV[4])
  if now + ms > cool then
    redis.call('HSET', key, 'cool', now + ms)
    if state == 'closed' and fails == 0 and w_start == 0 then redis.call('PEXPIRE', key, ms) end
    announce('cool', ms)
  end
  return 1
end

if op == 'peek' then
  local dirty = (fails > 0 or w_start > 0) and 1 or 0
  return {state, math.max(0, open_until - now), math.max(0, cool - now), dirty}
end

if op == 'probe' then
  if cool > now then return {'cool', cool - now} end
  if state == 'closed' then return {'ok', 0} end
  if state == 'open' and now < open_until then return {'open', open_until - now} end
  local probe_until = tonumber(h[9] or '0')
  if h[8] and probe_until > now then return {'open', probe_until - now} end
  redis.call('HSET', key, 'state', 'half', 'probe', ARGV[4], 'probe_until', now + tonumber(ARGV[5]))
  return {'probe', 0}
end

if op == 'success' then
  if state ~= 'closed' then
    -- only the probe's success closes the breaker; a call that began before it opened proves
    -- nothing
    if h[8] == ARGV[4] then close() ; return 'closed' end
    return state
  end
  local window_ms = tonumber(ARGV[5])
  if w_start > 0 and now - w_start > window_ms then
    -- the failure that began the window is no longer recent: stop counting
    if cool > now then
      redis.call('HSET', key, 'fails', 0, 'w_start', 0, 'w_calls', 0, 'w_fails', 0)
    else
      redis.call('DEL', key)
    end
    announce('clean', 0)
  elseif w_start > 0 then
    redis.call('HSET', key, 'fails', 0, 'w_calls', w_calls + 1)
  elseif fails > 0 then
    redis.call('HSET', key, 'fails', 0)
  end
  return 'closed'
end

if op == 'failure' then
  local threshold, rate, min_calls = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local window_ms, cooldown_ms = tonumber(ARGV[8]), tonumber(ARGV[9])
  if state == 'half' or state == 'open' then
    if state == 'open' and now < open_until then return 'open' end
    open(cooldown_ms)  -- the probe (or a call that slipped through) failed: open again
    return 'open'
  end
  if w_start == 0 or now - w_start > window_ms then
    w_start, w_calls, w_fails = now, 0, 0
  end
  w_calls, w_fails, fails = w_calls + 1, w_fails + 1, fails + 1
  if fails >= threshold or (w_calls >= min_calls and w_fails / w_calls >= rate) then
    open(cooldown_ms)
    return 'open'
  end
  redis.call('HSET', key, 'fails', fails, 'w_start', w_start, 'w_calls', w_calls,
    'w_fails', w_fails)
  redis.call('PERSIST', key)
  if fails == 1 then announce('dirty', 0) end
  return 'closed'
end

return redis.error_reply('unknown op ' .. tostring(op))
