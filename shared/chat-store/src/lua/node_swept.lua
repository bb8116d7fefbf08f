-- Not a room script. KEYS, in the `{nodes}` hash slot: 1 the nodes taken as
-- dead, 2 the nodes swept. ARGV: 1 the node, 2 how long a swept node is
-- remembered (ms).
-- The sweep of a dead node ended: it is remembered as swept for a while, so
-- that, should it come back, it knows; nodes swept longer ago are forgotten.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[2], now, ARGV[1])
return 1
