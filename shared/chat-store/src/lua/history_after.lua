-- ARGV 4..: after id, limit. Returns message json, oldest first.
return page(false, after_bound(ARGV[4]), tonumber(ARGV[5]))
