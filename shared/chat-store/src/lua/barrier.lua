-- Run right before a WAIT on the same connection (see redis/replication.rs).
-- WAIT waits for the replication offset of its connection's last write
-- (Redis 7.2 and newer count only commands that wrote; 7.0 any command), so
-- this script writes: the primary orders that write after every write it
-- made before, and replicas that hold it hold those. It also checks that the
-- messages to confirm are in their rooms' histories here: a promoted replica
-- that never received one has not, and a WAIT it answers confirms nothing
-- about that message.
--   KEYS[1]: the slot's barrier key; KEYS[2..]: room history streams, all in
--            that one hash slot.
--   ARGV[1]: '1' on Redis Cluster, else '0'; ARGV[2..]: for KEYS[i], the ids
--            to find, separated by spaces ('' for none).
-- Returns {node = this node's cluster id ('' outside a cluster), missing = {ids not found}} as JSON.
redis.call('SET', KEYS[1], '1')

-- Whether stream id a comes before b (ids compare as pairs of numbers).
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end

local node, missing = '', {}
if ARGV[1] == '1' then node = redis.call('CLUSTER', 'MYID') end
for i = 2, #KEYS do
  for id in string.gmatch(ARGV[i], '%S+') do
    if #redis.call('XRANGE', KEYS[i], id, id) == 0 then
      -- Older than the oldest entry: trimmed away after newer messages came, so it was here.
      local oldest = redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', 1)[1]
      if not (oldest and before(id, oldest[1])) then missing[#missing + 1] = id end
    end
  end
end
return cjson.encode({ node = node, missing = missing })
