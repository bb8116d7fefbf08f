-- ARGV 4..: conn, user id, exit grace (ms). Returns 1 if the connection was still registered.
local conn, uid = ARGV[4], ARGV[5]
redis.call('SREM', K_MINE, conn .. TAB .. uid)
return release(conn, uid, tonumber(ARGV[6]))
