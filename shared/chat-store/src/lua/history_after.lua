-- ARGV 4..: after id, limit. Returns the message records as JSON, oldest first.
return cjson.encode(page(false, after_bound(ARGV[4]), tonumber(ARGV[5])))
