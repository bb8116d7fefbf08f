-- The per-room heartbeat of the release before (docs/UPGRADES.md), kept in
-- the configured rooms only while replicas of that release may run: their
-- sweeps read it.
-- ARGV 4..: ttl (ms), epoch candidate.
-- Refreshes this node's heartbeat in the room and returns {was_alive, epoch} as JSON:
-- a changed epoch means the room's shard lost its data; a missing heartbeat
-- under the same epoch means this node was swept from the room as dead.
--
-- The first write is PEXPIRE, which Redis allows when it is full (maxmemory
-- with noeviction refuses only commands that may grow memory, and only before
-- a script's first write), and nothing else is written while all is in place:
-- a full Redis must not let live replicas' heartbeats lapse, or their sweep
-- would remove the presence of connected users.
local ttl = ARGV[4]
local was = redis.call('PEXPIRE', K_ALIVE, ttl) == 1
if not was then
  redis.call('SET', K_ALIVE, '1', 'PX', ttl)
end
if redis.call('SISMEMBER', K_NODES, NODE) == 0 then
  redis.call('SADD', K_NODES, NODE)
end
local epoch = redis.call('GET', K_EPOCH)
if not epoch then
  redis.call('SET', K_EPOCH, ARGV[5])
  epoch = ARGV[5]
end
return cjson.encode({ was_alive = was, epoch = epoch })
