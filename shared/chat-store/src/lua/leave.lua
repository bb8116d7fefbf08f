-- ARGV 4..: conn, user id, exit grace (ms).
-- Releases a connection. Returns when its user's `user exited` is due (ms)
-- when it was their last connection in the room, else 0.
local conn, uid = ARGV[4], ARGV[5]
redis.call('SREM', K_MINE, conn .. TAB .. uid)
if release(conn, uid, tonumber(ARGV[6])) == 0 then return 0 end
return tonumber(redis.call('ZSCORE', K_LEAVING, uid) or '0')
