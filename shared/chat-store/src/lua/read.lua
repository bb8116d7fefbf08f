-- ARGV 4..: user id, message id, most unread reported. Moves the user's read marker up to the
-- message (never back). The marker is the room's message count at the
-- message: each entry carries its count (`c`), so this reads one entry, the
-- first after the id, however many follow. Returns the unread count.
local uid, id, unread_max = ARGV[4], ARGV[5], tonumber(ARGV[6])
local count = tonumber(redis.call('GET', K_COUNT) or '0')
local from = after_bound(id)
local marker = count
local first = from and redis.call('XRANGE', K_HISTORY, from, '+', 'COUNT', 1)[1]
if first then
  local c = field(first, 'c')
  if c then
    marker = tonumber(c) - 1
  else
    -- Stored by an older release, without its count: count what follows
    -- (at most `unread_max` are looked at). Such entries leave the kept
    -- history after HISTORY_KEPT newer messages.
    marker = count - #redis.call('XRANGE', K_HISTORY, from, '+', 'COUNT', unread_max + 1)
  end
end
local old = redis.call('HGET', K_READS, uid)
if not old or marker > tonumber(old) then redis.call('HSET', K_READS, uid, marker) end
return unread_of(uid, unread_max)
