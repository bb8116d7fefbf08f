-- A draining node, whose connections are already released, leaves the room.
redis.call('DEL', K_ALIVE, K_MINE)
redis.call('SREM', K_NODES, NODE)
return 1
