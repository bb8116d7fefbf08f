-- ARGV 4..: since id. Returns every change since it as JSON (see `changes_since`).
return cjson.encode((changes_since(ARGV[4], 0)))
