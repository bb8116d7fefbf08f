-- KEYS[20]: the typist's throttle key. ARGV 4..: user id, name, throttle ms.
-- Publishes `typing` unless the throttle key is still set (by any replica):
-- one SET NX PX and, when it passes, one SPUBLISH. Never stored. Returns 1
-- if published, 0 if throttled.
local K_TYPING = KEYS[20]
local uid, name, throttle_ms = ARGV[4], ARGV[5], ARGV[6]
if not redis.call('SET', K_TYPING, '1', 'NX', 'PX', throttle_ms) then return 0 end
publish_user('typing', uid, name)
return 1
