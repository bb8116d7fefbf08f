-- ARGV 4..: after id, limit. Returns message json, oldest first.
return page(false, '(' .. ARGV[4], tonumber(ARGV[5]))
