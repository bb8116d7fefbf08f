-- A draining node, whose connections are already released, leaves the room's
-- heartbeats of the release before (docs/UPGRADES.md): configured rooms only.
redis.call('DEL', K_ALIVE, K_MINE)
redis.call('SREM', K_NODES, NODE)
return 1
