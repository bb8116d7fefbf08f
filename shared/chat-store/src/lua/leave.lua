-- ARGV: prefix, room, node, conn, user id, exit grace (ms). Returns 1 if the
-- connection was still registered.
local room, node, conn, uid = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
redis.call('SREM', P .. 'node:' .. node .. ':conns', room .. TAB .. conn .. TAB .. uid)
return release(room, conn, uid, tonumber(ARGV[6]))
