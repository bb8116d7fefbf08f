-- ARGV 4..: before id, limit. Returns message json, oldest first.
local entries = redis.call('XREVRANGE', K_HISTORY, '(' .. ARGV[4], '-', 'COUNT', ARGV[5])
return entries_json(entries, true)
