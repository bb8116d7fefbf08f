-- Not a room script: the liveness of one node (gateway replica). KEYS, all in
-- the `{nodes}` hash slot: 1 the live nodes (a set), 2 the nodes taken as dead
-- and being swept (a sorted set: node -> when taken, ms), 3 the nodes swept
-- (node -> when their sweep ended, ms), 4 this node's alive key.
-- ARGV: 1 this node, 2 ttl (ms).
-- Refreshes the node's liveness and returns what it was before: 'alive' (on
-- time, or late with no sweeper on it yet), 'new' (no trace of it: its first
-- beat, or Redis lost the liveness keys), 'taken' (a sweeper is sweeping it)
-- or 'swept'. A taken or swept node is not revived: the replica carries on
-- under a new id.
--
-- The first write is PEXPIRE, which Redis allows when it is full (see
-- heartbeat.lua), and nothing else is written while the node is alive.
local live, taken, swept, alive = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local node, ttl = ARGV[1], ARGV[2]
if redis.call('PEXPIRE', alive, ttl) == 1 then return 'alive' end
if redis.call('ZSCORE', taken, node) then return 'taken' end
if redis.call('ZSCORE', swept, node) then return 'swept' end
local listed = redis.call('SISMEMBER', live, node) == 1
redis.call('SET', alive, '1', 'PX', ttl)
if listed then return 'alive' end
redis.call('SADD', live, node)
return 'new'
