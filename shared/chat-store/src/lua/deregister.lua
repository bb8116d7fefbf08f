-- ARGV: prefix, node. A draining node, whose connections are already released, leaves.
local node = ARGV[2]
redis.call('DEL', P .. 'node:' .. node .. ':alive', P .. 'node:' .. node .. ':conns')
redis.call('SREM', P .. 'nodes', node)
return 1
