-- ARGV 4..: actor's user id, admin ('1'/'0'), configured ('1'/'0'), target's
-- user id, muted until (ms; '' lifts the mute).
-- Owners mute anyone but owners, moderators only members. Returns 'done',
-- 'not_found' or 'forbidden'.
local actor, admin, configured = ARGV[4], ARGV[5] == '1', ARGV[6] == '1'
local target, until_ms = ARGV[7], ARGV[8]
if not room_exists(configured) then return 'not_found' end
local mine = acting_role(actor, admin)
if room_kind() ~= 'public' and not mine then return 'not_found' end
if not moderates(mine) then return 'forbidden' end
local theirs = role_of(target)
if theirs == 'owner' or (mine == 'moderator' and theirs == 'moderator') then return 'forbidden' end
if until_ms == '' then
  if redis.call('HDEL', K_MUTES, target) == 1 then audit(actor, 'unmuted', target, '{}') end
else
  redis.call('HSET', K_MUTES, target, until_ms)
  audit(actor, 'muted', target, cjson.encode({ ['until'] = tonumber(until_ms) }))
end
return 'done'
