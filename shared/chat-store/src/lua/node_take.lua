-- Not a room script. KEYS, all in the `{nodes}` hash slot: 1 the live nodes
-- (a set), 2 the nodes taken as dead (node -> when taken, ms).
-- ARGV: 1 the start of a node's alive key (the node id follows it; those keys
-- share the slot of KEYS), 2 lease (ms), 3 most nodes to take, 4 the caller.
-- Takes as dead, for the caller to sweep, every live node but the caller
-- whose alive key is gone (atomic: exactly one sweeper takes each), and every
-- node taken more than a lease ago whose sweep never ended (its sweeper
-- died). Returns the nodes taken. While every node is alive, it only reads.
local live, taken = KEYS[1], KEYS[2]
local prefix, lease, limit, me = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local out = {}
local now
local function clock()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
for _, node in ipairs(redis.call('SMEMBERS', live)) do
  if #out >= limit then break end
  if node ~= me and redis.call('EXISTS', prefix .. node) == 0 then
    -- SREM first: a full Redis allows it, and the ZADD after it.
    redis.call('SREM', live, node)
    redis.call('ZADD', taken, clock(), node)
    out[#out + 1] = node
  end
end
if #out < limit and redis.call('ZCARD', taken) > 0 then
  local stale = redis.call('ZRANGEBYSCORE', taken, '-inf', clock() - lease, 'LIMIT', 0, limit - #out)
  for _, node in ipairs(stale) do
    if node ~= me then
      redis.call('ZADD', taken, clock(), node)
      out[#out + 1] = node
    end
  end
end
return out
