-- Snapshot cache scripts, split on the `-- @script NAME` lines by snapshot_cache.py.
--
-- Layout (one closing): a hash `…:snap:{tenant}:{closing}` holding the version `v` (iteration
-- number), the content hash `h`, the client `c` and the payload `d`; filtered views in their own
-- versioned keys `…:snapview:{tenant}:{closing}:{v}:{h}:{view}`, listed in `…:snapmem:…` so an
-- invalidation can find them; `…:snaptag:{tenant}:{client}` lists the client's closings.
-- Invalidation drops `d` and the views but keeps `v`/`h`: a floor that refuses older versions.

-- @script read
-- KEYS[1] snapshot hash, KEYS[2] view key prefix. ARGV[1] known v, ARGV[2] known h, ARGV[3] view
-- ('' for the whole snapshot). Returns nil (nothing known) or {v, h, c, same, payload}: same=1
-- when the caller's known version is current and still cached (no payload is sent then).
local cur = redis.call('HMGET', KEYS[1], 'v', 'h', 'c')
if not cur[1] then return nil end
local payload
if ARGV[3] == '' then
  if cur[1] == ARGV[1] and cur[2] == ARGV[2] and redis.call('HEXISTS', KEYS[1], 'd') == 1 then
    return {cur[1], cur[2], cur[3], 1}
  end
  payload = redis.call('HGET', KEYS[1], 'd')
else
  local view = KEYS[2] .. ':' .. cur[1] .. ':' .. cur[2] .. ':' .. ARGV[3]
  if cur[1] == ARGV[1] and cur[2] == ARGV[2] and redis.call('EXISTS', view) == 1 then
    return {cur[1], cur[2], cur[3], 1}
  end
  payload = redis.call('GET', view)
end
return {cur[1], cur[2], cur[3], 0, payload}

-- @script set_snapshot
-- KEYS[1] snapshot hash, KEYS[2] members set, KEYS[3] client tag set. ARGV: v, h, client,
-- payload, ttl seconds, closing id, channel, message. Version-checked: refuses (0) an older
-- version than the stored one, so a slow reader can never put back a superseded snapshot.
local stored = redis.call('HMGET', KEYS[1], 'v', 'h')
local v = tonumber(ARGV[1])
if stored[1] then
  local current = tonumber(stored[1])
  if current > v or (current == v and stored[2] ~= ARGV[2]) then return 0 end
  if current < v then
    for _, member in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', member) end
    redis.call('DEL', KEYS[2])
  end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'h', ARGV[2], 'c', ARGV[3], 'd', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[5])
if not stored[1] or tonumber(stored[1]) < v then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return 1

-- @script set_view
-- KEYS[1] snapshot hash, KEYS[2] view key, KEYS[3] members set. ARGV: v, h, payload, view ttl,
-- members ttl, most views. Stored only while (v, h) is the current version, and while the
-- closing has fewer than `most views` live views: past that a view is computed, not cached, so
-- no caller can fill Redis by asking for ever new filters and pages.
local stored = redis.call('HMGET', KEYS[1], 'v', 'h')
if stored[1] ~= ARGV[1] or stored[2] ~= ARGV[2] then return 0 end
local most = tonumber(ARGV[6])
if redis.call('SISMEMBER', KEYS[3], KEYS[2]) == 0 and redis.call('SCARD', KEYS[3]) >= most then
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    if redis.call('EXISTS', member) == 0 then redis.call('SREM', KEYS[3], member) end
  end
  if redis.call('SCARD', KEYS[3]) >= most then return 0 end
end
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('SADD', KEYS[3], KEYS[2])
redis.call('EXPIRE', KEYS[3], ARGV[5])
return 1

-- @script invalidate
-- KEYS[1] a client tag set or ''. ARGV: snapshot hash prefix, members prefix, channel, message,
-- the versions Postgres serves (a JSON object, closing id -> version as text), then closing ids.
-- Drops the payloads and views of the tag's and the listed closings, keeping their version
-- floors, except where the cached version is the one Postgres serves (the entry is confirmed:
-- it is exactly what a reload would write back). Returns how many payloads were dropped.
local current = cjson.decode(ARGV[5])
local ids = {}
for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end
if KEYS[1] ~= '' then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do ids[#ids + 1] = id end
end
local dropped = 0
for _, id in ipairs(ids) do
  local key = ARGV[1] .. id
  local confirmed = current[id] ~= nil and redis.call('HGET', key, 'v') == current[id]
  if not confirmed then
    dropped = dropped + redis.call('HDEL', key, 'd')
    local members = ARGV[2] .. id
    for _, member in ipairs(redis.call('SMEMBERS', members)) do redis.call('DEL', member) end
    redis.call('DEL', members)
    if KEYS[1] ~= '' then redis.call('SREM', KEYS[1], id) end
  end
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return dropped

-- @script release
-- KEYS[1] lock. ARGV[1] the holder's token: only the holder releases its lease.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
