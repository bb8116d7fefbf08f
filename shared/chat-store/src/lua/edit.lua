-- ARGV 4..: message id, the editor's user id, new text, changes kept, when
-- the editor's token was issued (ms), admin ('1'/'0'), configured ('1'/'0').
-- Only the author edits a message that is still there (a deletion wins over
-- any later edit). Stores the edit and publishes `edited` in one step, after
-- the message itself was published. Whoever may not post (muted, an
-- announcement room, no longer a member) may not edit either. Returns 'done',
-- 'not_found' or 'forbidden'.
local id, uid, text, keep = ARGV[4], ARGV[5], ARGV[6], tonumber(ARGV[7])
local issued, admin, configured = tonumber(ARGV[8]), ARGV[9] == '1', ARGV[10] == '1'
local author = author_of(id)
if not author then return 'not_found' end
if author ~= uid or not may_post(uid, issued, admin, configured) then return 'forbidden' end
local ts = now_ms()
record_change(id, { t = text, e = tostring(ts) }, keep)
publish({ kind = 'edited', id = id, change = { id = id, room = ROOM, text = text, edited_ts = ts } })
return 'done'
