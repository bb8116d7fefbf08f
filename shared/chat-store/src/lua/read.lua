-- ARGV 4..: user id, message id. Moves the user's read marker up to the
-- message (never back): the marker is the message count less the messages
-- after it (at most UNREAD_MAX are looked at). Returns the unread count.
local uid, id = ARGV[4], ARGV[5]
local after = #redis.call('XRANGE', K_HISTORY, '(' .. id, '+', 'COUNT', UNREAD_MAX + 1)
local marker = tonumber(redis.call('GET', K_COUNT) or '0') - after
local old = redis.call('HGET', K_READS, uid)
if not old or marker > tonumber(old) then redis.call('HSET', K_READS, uid, marker) end
return unread_of(uid)
