-- ARGV 4..: most users to announce as exited.
-- Announces `user exited` for the users whose exit grace passed with no
-- connection back (atomic: each once, whoever runs it). Returns
-- {users_exited, next_exit} as JSON, `next_exit` being when the room's next
-- exit is due (ms), 0 when none is.
local exited = announce_due_exits(tonumber(ARGV[4]))
return cjson.encode({ users_exited = exited, next_exit = next_exit() })
