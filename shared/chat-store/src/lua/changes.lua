-- ARGV 4..: since id. Returns every change since it (see `changes_since`).
return (changes_since(ARGV[4], 0))
