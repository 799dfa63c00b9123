-- Sliding-window rate limit, exact for any window, with a waiting line (the model and its
-- reasons: rate_window.py).
-- KEYS: 1 log (zset: member '<cost>|<entry id>', score = admitted at, ms), 2 sum (string: the
--       cost of what the log holds), 3 line (zset: member '<cost>|<entry id>', score = the
--       moment room is kept for that waiter, ms; op 'wait' only)
-- ARGV: 1 op ('take' | 'wait' | 'settle'), 2 window ms, 3 limit, 4 entry id, 5 cost (take,
--       wait: the estimate; settle: the real cost), 6 now ms or '' (Redis's clock; tests only)
-- Returns take, wait: {1, 0} admitted, {0, ms until it would be} or {0, -1} never;
--         settle: 1 or 0.
-- Shared with Python: script_calls/ratewindow.py.
local OP = {TAKE = 'take', WAIT = 'wait', SETTLE = 'settle'}
local window, limit, id, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local now = ARGV[6] ~= '' and tonumber(ARGV[6]) or now_ms()
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local member = cost .. '|' .. id

local function cost_of(m) return tonumber(string.match(m, '^(%-?%d+)|')) end

local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - window)
if #expired > 0 then
  for _, m in ipairs(expired) do used = used - cost_of(m) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
end

-- The first moment at or after FROM when COST fits, given ENTRIES {member, score, ...} in time
-- order that hold COUNTED in total: the oldest expire until the excess is freed.
local function fits_at(entries, counted, from)
  local excess, freed = counted + cost - limit, 0
  if excess <= 0 then return from end
  for i = 1, #entries, 2 do
    freed = freed + cost_of(entries[i])
    if freed >= excess then return math.max(from, tonumber(entries[i + 1]) + window) end
  end
  return from  -- unreachable: the entries hold more than the excess
end

local function admit()
  redis.call('ZADD', KEYS[1], now, member)
  used = used + cost
  return {1, 0}
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
elseif redis.call('ZSCORE', KEYS[1], member) then
  result = {1, 0}  -- taken already: a call retried after its reply was lost takes nothing twice
elseif cost > limit then
  if ARGV[1] == OP.WAIT then redis.call('ZREM', KEYS[3], member) end
  result = {0, -1}
elseif ARGV[1] == OP.TAKE then
  if used + cost <= limit then
    result = admit()
  else
    local wait = fits_at(redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'), used, now) - now
    result = {0, wait}
  end
else
  -- A waiter whose moment has not come for a window is gone (cancelled, expired, lost).
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. (now - window))
  if redis.call('ZREM', KEYS[3], member) == 1 then
    -- Its turn: the room kept for it is there unless a waiter ahead came late and took it;
    -- then it keeps its place at the front, back when the window frees room.
    if used + cost <= limit then
      result = admit()
    else
      local at = fits_at(redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES'), used, now)
      redis.call('ZADD', KEYS[3], at, member)
      result = {0, at - now}
    end
  else
    -- New: behind every waiter, counting each as admitted at its moment.
    local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
    local from = math.max(now, tonumber(last[2] or now))
    local lo = '(' .. (from - window)
    local real = redis.call('ZRANGEBYSCORE', KEYS[1], lo, '+inf', 'WITHSCORES')
    local kept = redis.call('ZRANGEBYSCORE', KEYS[3], lo, '+inf', 'WITHSCORES')
    local merged, counted, i, j = {}, 0, 1, 1
    while i <= #real or j <= #kept do
      local src, k
      if j > #kept or (i <= #real and tonumber(real[i + 1]) <= tonumber(kept[j + 1])) then
        src, k, i = real, i, i + 2
      else
        src, k, j = kept, j, j + 2
      end
      merged[#merged + 1] = src[k]
      merged[#merged + 1] = src[k + 1]
      counted = counted + cost_of(src[k])
    end
    local at = fits_at(merged, counted, from)
    if at <= now then
      result = admit()
    else
      redis.call('ZADD', KEYS[3], at, member)
      result = {0, at - now}
    end
  end
  local tail = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  if tail[2] then redis.call('PEXPIRE', KEYS[3], tonumber(tail[2]) - now + 2 * window) end
end
redis.call('SET', KEYS[2], used, 'PX', window)
redis.call('PEXPIRE', KEYS[1], window)
return result
