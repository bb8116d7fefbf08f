-- ARGV: prefix, node, ttl (ms), epoch candidate.
-- Returns {was alive (0/1), epoch}: a changed epoch means Redis lost its data;
-- a missing heartbeat under the same epoch means this node was swept as dead.
--
-- The first write is PEXPIRE, which Redis allows when it is full (maxmemory
-- with noeviction refuses only commands that may grow memory, and only before
-- a script's first write): a full Redis must not let live replicas' heartbeats
-- lapse, or their sweep would remove the presence of connected users.
local node = ARGV[2]
local alive = P .. 'node:' .. node .. ':alive'
local was = redis.call('PEXPIRE', alive, ARGV[3]) == 1
if not was then
  redis.call('SET', alive, '1', 'PX', ARGV[3])
end
redis.call('SADD', P .. 'nodes', node)
local epoch = redis.call('GET', P .. 'epoch')
if not epoch then
  redis.call('SET', P .. 'epoch', ARGV[4])
  epoch = ARGV[4]
end
return { was and 1 or 0, epoch }
