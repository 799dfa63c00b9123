-- Sliding-window rate limit, exact for any window (the model and its reasons: rate_window.py).
-- KEYS: 1 log (zset: member '<cost>|<entry id>', score = admitted at, ms), 2 sum (string: the
--       cost of what the log holds)
-- ARGV: 1 op ('take' | 'settle'), 2 window ms, 3 limit, 4 entry id, 5 cost (take: the estimate;
--       settle: the real cost), 6 now ms or '' (Redis's clock; a value only for tests)
-- Returns take: {1, 0} admitted, {0, ms until it would be} or {0, -1} never; settle: 1 or 0.
-- Shared with Python: script_calls/ratewindow.py.
local OP = {TAKE = 'take', SETTLE = 'settle'}
local window, limit, id, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local now = ARGV[6] ~= '' and tonumber(ARGV[6]) or now_ms()
local used = tonumber(redis.call('GET', KEYS[2]) or '0')

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
if #expired > 0 then
  for _, member in ipairs(expired) do
    used = used - tonumber(string.match(member, '^(%-?%d+)|'))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
end

local result
if ARGV[1] == OP.SETTLE then
  result = 0
  local found = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #found, 2 do
    local old, eid = string.match(found[i], '^(%-?%d+)|(.*)$')
    if eid == id then
      redis.call('ZREM', KEYS[1], found[i])
      redis.call('ZADD', KEYS[1], found[i + 1], cost .. '|' .. id)
      used = used + cost - tonumber(old)
      result = 1
      break
    end
  end
elseif redis.call('ZSCORE', KEYS[1], cost .. '|' .. id) then
  result = {1, 0}  -- taken already: a call retried after its reply was lost takes nothing twice
elseif cost > limit then
  result = {0, -1}
elseif used + cost <= limit then
  redis.call('ZADD', KEYS[1], now, cost .. '|' .. id)
  used = used + cost
  result = {1, 0}
else
  local excess, freed = used + cost - limit, 0
  local oldest = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  result = {0, 0}
  for i = 1, #oldest, 2 do
    freed = freed + tonumber(string.match(oldest[i], '^(%-?%d+)|'))
    if freed >= excess then
      result = {0, tonumber(oldest[i + 1]) + window - now}
      break
    end
  end
end
redis.call('SET', KEYS[2], used, 'PX', window)
redis.call('PEXPIRE', KEYS[1], window)
return result
