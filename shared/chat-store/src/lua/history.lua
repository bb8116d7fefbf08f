-- ARGV 4..: before id, limit. Returns message json, oldest first.
return page(true, before_bound(ARGV[4]), tonumber(ARGV[5]))
