-- ARGV 4..: message id, the deleter's user id, changes kept, when the
-- deleter's token was issued (ms), admin ('1'/'0'), configured ('1'/'0').
-- The author, or the room's owners and moderators, delete a message that is
-- still there (by someone else than its author: recorded in the audit).
-- Stores the deletion, removes the entry and publishes `deleted` in one step.
-- Returns 'done', 'not_found' or 'forbidden'.
local id, uid, keep = ARGV[4], ARGV[5], tonumber(ARGV[6])
local issued, admin, configured = tonumber(ARGV[7]), ARGV[8] == '1', ARGV[9] == '1'
local author = author_of(id)
if not author then return 'not_found' end
if read_refusal(uid, issued, admin, configured) then return 'forbidden' end
if author ~= uid then
  if not moderates(acting_role(uid, admin)) then return 'forbidden' end
  audit(uid, 'message_deleted', author, cjson.encode({ id = id }))
end
record_change(id, { d = 1 }, keep)
-- Out of the stream, so pages never read past it (its deletion stays in
-- `changed` for `welcome.changes`).
redis.call('XDEL', K_HISTORY, id)
publish({ kind = 'deleted', id = id, change = { id = id, room = ROOM } })
return 'done'
