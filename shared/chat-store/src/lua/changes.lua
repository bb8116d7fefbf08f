-- ARGV 4..: since id. Returns the changes since it (see `changes_since`).
return changes_since(ARGV[4])
