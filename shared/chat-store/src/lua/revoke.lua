-- KEYS: 1 the session's revocation marker. ARGV: 1 ttl (s), 2 the revocations channel, 3 the sid.
-- Marks the session logged out and tells every replica, in one step on the
-- marker's node (classic PUBLISH reaches every node of a cluster from any).
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
