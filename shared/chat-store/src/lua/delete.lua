-- ARGV 4..: message id, the deleter's user id, changes kept.
-- Only the author deletes a message that is still there. Stores the deletion,
-- removes the entry and publishes `deleted` in one step. Returns 'done', 'not_found' or 'forbidden'.
local id, uid, keep = ARGV[4], ARGV[5], tonumber(ARGV[6])
local author = author_of(id)
if not author then return 'not_found' end
if author ~= uid then return 'forbidden' end
record_change(id, { d = 1 }, keep)
-- Out of the stream, so pages never read past it (its deletion stays in
-- `changed` for `welcome.changes`).
redis.call('XDEL', K_HISTORY, id)
publish({ kind = 'deleted', id = id, change = { id = id, room = ROOM } })
return 'done'
