-- ARGV 4..: what ('join', 'leave', 'put', 'remove', 'revoke'), actor's user
-- id ('' for 'revoke', done for the user's lost groups), admin ('1'/'0'),
-- configured ('1'/'0'), target's user id, role ('' for none), whether the
-- target's groups allow the room ('1'/'0').
-- One change of membership, its rules (chat_core::access) checked here,
-- where it is stored. Losing access (leave, remove, revoke) stamps the time
-- (older tokens are refused) and ends the user's connections to the room on
-- every replica; in a configured room, which everyone may read, it only
-- drops the role. Returns 'done', 'not_found', 'forbidden' or 'conflict'
-- (the last owner may not go).
local what, actor, admin, configured = ARGV[4], ARGV[5], ARGV[6] == '1', ARGV[7] == '1'
local target, role, allowed = ARGV[8], ARGV[9], ARGV[10] == '1'
if not room_exists(configured) then return 'not_found' end
local kind = room_kind()
local mine = acting_role(actor, admin)
local theirs = role_of(target)
if kind ~= 'public' and not mine and what ~= 'revoke' then return 'not_found' end

local function last_owner()
  if theirs ~= 'owner' then return false end
  local owners = 0
  local all = redis.call('HGETALL', K_MEMBERS)
  for i = 2, #all, 2 do if all[i] == 'owner' then owners = owners + 1 end end
  return owners <= 1
end

local function lose_access(action)
  redis.call('HDEL', K_MEMBERS, target)
  redis.call('HDEL', K_MUTES, target)
  if not configured then
    redis.call('HSET', K_REMOVED, target, now_ms())
    publish_access_lost(target, 'removed')
  end
  audit(actor, action, target, cjson.encode({ role = theirs }))
end

if what == 'join' then
  if kind ~= 'public' or not allowed then return 'forbidden' end
  if theirs then return 'done' end
  redis.call('HSET', K_MEMBERS, target, 'member')
  if not configured then start_reading(target) end
  audit(actor, 'member_joined', target, '{}')
elseif what == 'leave' then
  if kind == 'direct' then return 'forbidden' end
  if not theirs then return 'not_found' end
  if last_owner() then return 'conflict' end
  lose_access('member_left')
elseif what == 'revoke' then
  if not theirs and kind ~= 'public' then return 'done' end
  if theirs and last_owner() then return 'conflict' end
  if theirs then
    lose_access('member_removed')
  elseif not configured then
    redis.call('HSET', K_REMOVED, target, now_ms())
    publish_access_lost(target, 'removed')
  end
elseif what == 'remove' then
  if kind == 'direct' then return 'forbidden' end
  if not theirs then return 'not_found' end
  if not moderates(mine) then return 'forbidden' end
  if mine == 'moderator' and theirs ~= 'member' then return 'forbidden' end
  if last_owner() then return 'conflict' end
  lose_access('member_removed')
elseif what == 'put' then
  if kind == 'direct' then return 'forbidden' end
  if not moderates(mine) then return 'forbidden' end
  if role == '' then role = theirs or 'member' end
  if not theirs then
    if not allowed then return 'forbidden' end
    -- Moderators add members; only owners give roles.
    if role ~= 'member' and mine ~= 'owner' then return 'forbidden' end
    redis.call('HSET', K_MEMBERS, target, role)
    if not configured then start_reading(target) end
    audit(actor, 'member_added', target, cjson.encode({ role = role }))
  elseif role ~= theirs then
    if mine ~= 'owner' then return 'forbidden' end
    if last_owner() then return 'conflict' end
    redis.call('HSET', K_MEMBERS, target, role)
    audit(actor, 'role_changed', target, cjson.encode({ from = theirs, to = role }))
  end
else
  return redis.error_reply('unknown membership change ' .. what)
end
return 'done'
