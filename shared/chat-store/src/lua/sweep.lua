-- ARGV: prefix, exit grace (ms), most users to announce as exited.
-- 1. Every node whose heartbeat expired: release its connections (exactly one
--    replica's sweep sees each dead node, since the script is atomic).
-- 2. Every user whose exit grace passed with no live connection: `user exited`.
-- Returns {connections swept, users exited}.
local grace, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local swept = 0
for _, node in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  if redis.call('EXISTS', P .. 'node:' .. node .. ':alive') == 0 then
    local set = P .. 'node:' .. node .. ':conns'
    for _, entry in ipairs(redis.call('SMEMBERS', set)) do
      local room, conn, uid = string.match(entry, '^([^\t]+)\t([^\t]+)\t(.+)$')
      if room then swept = swept + release(room, conn, uid, grace) end
    end
    redis.call('DEL', set)
    redis.call('SREM', P .. 'nodes', node)
  end
end

local exited = 0
local due = redis.call('ZRANGEBYSCORE', P .. 'leaving', '-inf', now_ms(), 'LIMIT', 0, limit)
for _, member in ipairs(due) do
  redis.call('ZREM', P .. 'leaving', member)
  local room, uid = string.match(member, '^([^\t]+)\t(.+)$')
  if room and tonumber(redis.call('HGET', room_key(room, 'users'), uid) or '0') <= 0 then
    local name = redis.call('HGET', room_key(room, 'names'), uid) or uid
    redis.call('HDEL', room_key(room, 'users'), uid)
    redis.call('HDEL', room_key(room, 'names'), uid)
    publish(room, { kind = 'exited', user = { id = uid, name = name } })
    exited = exited + 1
  end
end
return { swept, exited }
