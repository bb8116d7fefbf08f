-- ARGV 4..: after id, limit. Returns message json, oldest first.
local entries = redis.call('XRANGE', K_HISTORY, '(' .. ARGV[4], '+', 'COUNT', ARGV[5])
return entries_json(entries, false)
