-- ARGV 4..: actor's user id, admin ('1'/'0'), configured ('1'/'0').
-- An owner deletes the room: every key of it goes, and every replica ends
-- its connections to it ('room_closed'). Configured rooms are never
-- deleted. Returns { outcome, member ids... }: 'done', 'not_found' or
-- 'forbidden'.
local actor, admin, configured = ARGV[4], ARGV[5] == '1', ARGV[6] == '1'
if redis.call('EXISTS', K_META) == 0 then
  if configured then return { 'forbidden' } end
  return { 'not_found' }
end
local mine = acting_role(actor, admin)
if room_kind() ~= 'public' and not mine then return { 'not_found' } end
if configured or mine ~= 'owner' then return { 'forbidden' } end
local out = { 'done' }
for _, uid in ipairs(redis.call('HKEYS', K_MEMBERS)) do out[#out + 1] = uid end
publish_access_lost(nil, 'room_closed')
-- Every key the room scripts declare but this node's own, the epoch and the sequence
-- (kept, so a replica's order of the room's events holds if it is made again).
for i = 1, #KEYS do
  if i ~= 5 and i ~= 8 and i ~= 9 and i ~= 10 then redis.call('DEL', KEYS[i]) end
end
return out
