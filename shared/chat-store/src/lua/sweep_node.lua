-- ARGV 4..: the dead node, exit grace (ms). KEYS 20: the dead node's
-- connections in the room; 21: its heartbeat here of the release before.
-- Releases the dead node's connections in the room (atomic: each once,
-- whoever sweeps), with the exit grace, and forgets the node here.
-- Returns {connections_removed, next_exit} as JSON, `next_exit` being when
-- the room's next `user exited` is due (ms), 0 when none is.
local dead, grace = ARGV[4], tonumber(ARGV[5])
local swept = 0
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[20])) do
  local conn, uid = string.match(entry, '^([^\t]+)\t(.+)$')
  if conn then swept = swept + release(conn, uid, grace) end
end
redis.call('DEL', KEYS[20], KEYS[21])
redis.call('SREM', K_NODES, dead)
return cjson.encode({ connections_removed = swept, next_exit = next_exit() })
