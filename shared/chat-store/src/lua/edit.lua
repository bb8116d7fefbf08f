-- ARGV 4..: message id, the editor's user id, new text, changes kept.
-- Only the author edits a message that is still there (a deletion wins over
-- any later edit). Stores the edit and publishes `edited` in one step, after
-- the message itself was published. Returns 'done', 'not_found' or 'forbidden'.
local id, uid, text, keep = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local author = author_of(id)
if not author then return 'not_found' end
if author ~= uid then return 'forbidden' end
local ts = now_ms()
record_change(id, { t = text, e = tostring(ts) }, keep)
publish({ kind = 'edited', id = id, change = { id = id, room = ROOM, text = text, edited_ts = ts } })
return 'done'
