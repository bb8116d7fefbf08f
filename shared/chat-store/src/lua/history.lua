-- ARGV 4..: before id, limit. Returns the message records as JSON, oldest first.
return cjson.encode(page(true, before_bound(ARGV[4]), tonumber(ARGV[5])))
