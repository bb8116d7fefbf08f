-- ARGV: prefix, node, ttl (ms), epoch candidate.
-- Returns {was alive (0/1), epoch}: a changed epoch means Redis lost its data;
-- a missing heartbeat under the same epoch means this node was swept as dead.
local node = ARGV[2]
local was = redis.call('SET', P .. 'node:' .. node .. ':alive', '1', 'PX', ARGV[3], 'GET')
redis.call('SADD', P .. 'nodes', node)
local epoch = redis.call('GET', P .. 'epoch')
if not epoch then
  redis.call('SET', P .. 'epoch', ARGV[4])
  epoch = ARGV[4]
end
return { was and 1 or 0, epoch }
