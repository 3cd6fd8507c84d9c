-- Sliding-window log: admit a request when fewer than LIMIT requests were admitted in the last
-- WINDOW microseconds. One sorted set per subject holds the admitted requests, scored by
-- Redis's own clock (TIME), so every replica measures against the same clock.
--
-- One call checks a batch of requests (those that arrived while the previous call ran), one
-- per KEY, in order: two requests of one subject in a batch count as two, as if sent apart.
-- KEYS[i]          the i-th request's subject's sorted set
-- ARGV[3i-2]       its LIMIT (requests)
-- ARGV[3i-1]       its WINDOW (microseconds)
-- ARGV[3i]         a suffix unique to the caller, so members never collide
--
-- Returns, flattened, for each request: admitted (1|0), remaining, microseconds until one
-- more request is allowed (0 if now).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local out = {}

for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 2])
  local window = tonumber(ARGV[3 * i - 1])

  -- A request admitted at t counts while now - t < WINDOW: drop every t <= now - WINDOW.
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)

  local admitted = 0
  if count < limit then
    -- The member is built from TIME's strings: Lua's number formatting would round it.
    redis.call('ZADD', key, now, time[1] .. '.' .. time[2] .. ARGV[3 * i])
    redis.call('PEXPIRE', key, math.ceil(window / 1000))
    count = count + 1
    admitted = 1
  end

  local wait = 0
  if count >= limit then
    -- One more request fits once the oldest admitted one leaves the window.
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = tonumber(oldest[2]) + window - now
  end
  out[#out + 1] = admitted
  out[#out + 1] = limit - count
  out[#out + 1] = wait
end
return out
