-- The sweep of the release before (docs/UPGRADES.md), run in the configured
-- rooms only while replicas of that release may run.
-- ARGV 4..: exit grace (ms), most users to announce as exited.
-- 1. Every node whose heartbeat in this room expired: release its connections
--    here (the script is atomic, so exactly one sweeper does it).
-- 2. Every user whose exit grace passed with no live connection: `user exited`.
-- Returns {connections_removed, users_exited} as JSON (`Sweep`).
local grace, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local swept = 0
for _, node in ipairs(redis.call('SMEMBERS', K_NODES)) do
  if redis.call('EXISTS', node_key('alive', node)) == 0 then
    local set = node_key('node', node)
    for _, entry in ipairs(redis.call('SMEMBERS', set)) do
      local conn, uid = string.match(entry, '^([^\t]+)\t(.+)$')
      if conn then swept = swept + release(conn, uid, grace) end
    end
    redis.call('DEL', set)
    redis.call('SREM', K_NODES, node)
  end
end
local exited = announce_due_exits(limit)
return cjson.encode({ connections_removed = swept, users_exited = exited })
