-- ARGV: prefix, room, after id, limit. Returns message json, oldest first.
local entries = redis.call('XRANGE', room_key(ARGV[2], 'history'), '(' .. ARGV[3], '+', 'COUNT', ARGV[4])
return entries_json(ARGV[2], entries, false)
