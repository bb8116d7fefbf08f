-- ARGV 4..: conn, user id, name, since ('' if none), history limit, silent ('1' or '0'),
-- most bytes of change texts (more: none, and not recovered), most unread reported,
-- when the token was issued (ms), admin ('1'/'0'), configured ('1'/'0').
-- Refuses, registering nothing, a room that does not exist ('room_unknown')
-- and a user who may not read it ('revoked': removed after the token was
-- issued, or not a member of a room for members only).
-- Returns the snapshot as JSON, read by `chat-store`'s `Snapshot`: {seq,
-- members = {id = name, ...}, recovered, history = {message record, ...},
-- changes = {change, ...} (see `changes_since`; none without `since`), unread}:
-- the connection is registered and the snapshot taken in one atomic step, so
-- `seq` tells exactly which published events the snapshot already includes.
local conn, uid, name, since = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local limit = tonumber(ARGV[8])
local max_change_bytes = tonumber(ARGV[10])
local unread_max = tonumber(ARGV[11])
local refused = read_refusal(uid, tonumber(ARGV[12]), ARGV[13] == '1', ARGV[14] == '1')
if refused then return refused end
enter(conn, uid, name, ARGV[9] == '1')

-- `names` holds exactly the users of `users` (set on entry, removed on exit).
local members = {}
local flat = redis.call('HGETALL', K_NAMES)
for i = 1, #flat, 2 do members[flat[i]] = flat[i + 1] end

local recovered = true
local history
local changes = {}
if since == '' then
  history = page(true, '+', limit)
else
  local complete
  changes, complete = changes_since(since, max_change_bytes)
  if not complete then
    recovered = false
    changes = {}
  end
  local from = after_bound(since)
  local after = from and redis.call('XRANGE', K_HISTORY, from, '+', 'COUNT', limit + 1) or {}
  local ok, info = pcall(redis.call, 'XINFO', 'STREAM', K_HISTORY)
  if #after > limit or not ok then
    recovered = false
  else
    local f = {}
    for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
    -- Something after `since` was trimmed: entries went after it, and the
    -- oldest kept is newer than it (trimming takes the oldest first; an
    -- entry that went while older ones stay was a deleted message).
    local first = f['first-entry']
    if id_gt(f['max-deleted-entry-id'] or '0-0', since) and (not first or id_gt(first[1], since)) then
      recovered = false
    end
  end
  -- The change log was trimmed, and what went may be newer than `since`
  -- (trimming removes the oldest entries, all older than the first kept).
  local logged, changes_info = pcall(redis.call, 'XINFO', 'STREAM', K_CHANGES)
  if logged then
    local f = {}
    for i = 1, #changes_info, 2 do f[changes_info[i]] = changes_info[i + 1] end
    local first = f['first-entry']
    if tonumber(f['entries-added'] or 0) > tonumber(f['length'] or 0) and first
      and id_gt(first[1], id_parts(since) .. '-0') then
      recovered = false
    end
  end
  if recovered then
    history = records(after)
  else
    history = page(true, '+', limit)
  end
end
local seq = tonumber(redis.call('GET', K_SEQ) or '0')
return cjson.encode({ seq = seq, members = members, recovered = recovered, history = history,
  changes = changes, unread = unread_of(uid, unread_max) })
