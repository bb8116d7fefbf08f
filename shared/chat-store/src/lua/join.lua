-- ARGV: prefix, room, node, conn, user id, name, web session id ('' if none),
--       since ('' if none), history limit, silent ('1' or '0').
-- Returns {'revoked'} or {'ok', seq, 'id<TAB>name<TAB>id<TAB>name...', recovered, {message json, ...}}:
-- the connection is registered and the snapshot taken in one atomic step, so
-- `seq` tells exactly which published events the snapshot already includes.
local room, node, conn, uid, name, sid, since = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local limit = tonumber(ARGV[9])
if sid ~= '' and redis.call('EXISTS', P .. 'revoked:' .. sid) == 1 then
  return { 'revoked' }
end
enter(room, node, conn, uid, name, ARGV[10] == '1')

-- `names` holds exactly the users of `users` (set on entry, removed on exit):
-- one read gives the members as id, name, id, name, ... Ids and names hold no
-- control characters, so they travel as one tab-separated string: one reply
-- item instead of two per member.
local members = table.concat(redis.call('HGETALL', room_key(room, 'names')), TAB)

local hkey = room_key(room, 'history')
local recovered = 1
local history
if since == '' then
  history = entries_json(room, redis.call('XREVRANGE', hkey, '+', '-', 'COUNT', limit), true)
else
  local after = redis.call('XRANGE', hkey, '(' .. since, '+', 'COUNT', limit + 1)
  local ok, info = pcall(redis.call, 'XINFO', 'STREAM', hkey)
  if #after > limit or not ok then
    recovered = 0
  else
    for i = 1, #info, 2 do
      local k, v = info[i], info[i + 1]
      -- Something after `since` was trimmed, or the stream was rebuilt after a data loss.
      if k == 'max-deleted-entry-id' and id_gt(v, since) then recovered = 0 end
      if k == 'last-generated-id' and id_gt(since, v) then recovered = 0 end
    end
  end
  if recovered == 1 then
    history = entries_json(room, after, false)
  else
    history = entries_json(room, redis.call('XREVRANGE', hkey, '+', '-', 'COUNT', limit), true)
  end
end
local seq = tonumber(redis.call('GET', room_key(room, 'seq')) or '0')
return { 'ok', seq, members, recovered, history }
