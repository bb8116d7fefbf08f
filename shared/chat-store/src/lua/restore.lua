-- ARGV 4..: silent ('1'/'0'), the node id this node takes over ('' for none),
-- then groups of conn, user id, name. KEYS 20, 21 (when taking over): that
-- node's connections in the room, its heartbeat here of the release before.
-- Registers again this node's live connections in the room, after Redis lost
-- them (silently) or swept this node as dead (announced). Taking over the id
-- this replica had before it was taken as dead, what that id holds in the
-- room becomes this node's, so that its sweeper finds nothing here (a
-- connection that ended meanwhile is released by the replica's own leave).
-- Returns how many connections were registered anew.
local silent, previous = ARGV[4] == '1', ARGV[5]
if previous ~= '' then
  for _, entry in ipairs(redis.call('SMEMBERS', KEYS[20])) do
    redis.call('SADD', K_MINE, entry)
  end
  redis.call('DEL', KEYS[20], KEYS[21])
  redis.call('SREM', K_NODES, previous)
end
local restored = 0
for i = 6, #ARGV, 3 do
  if redis.call('HEXISTS', K_CONNS, ARGV[i]) == 0 then
    enter(ARGV[i], ARGV[i + 1], ARGV[i + 2], silent)
    restored = restored + 1
  end
end
return restored
