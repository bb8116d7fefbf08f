-- Shared by every script. Each script acts on one room, so every key it
-- touches carries the room's hash tag `{room}` and lives in one hash slot
-- (one Redis Cluster shard). The keys are declared, always in this order:
--   KEYS: 1 users, 2 names, 3 conns, 4 history, 5 seq, 6 leaving, 7 nodes,
--         8 epoch, 9 this node's heartbeat, 10 this node's connections,
--         11 changed (message id -> its edit or deletion), 12 changes (a
--         stream: which message was changed when), 13 count (messages ever
--         sent), 14 reads (user id -> count at their read marker),
--         15 meta (the room's settings: a hash), 16 members (user id ->
--         role), 17 mutes (user id -> muted until, ms), 18 removed (user id
--         -> when they last lost access, ms), 19 audit (a capped stream of
--         who changed what),
--         then the script's own keys (also in the room's slot), from 20.
--   ARGV: 1 room name, 2 the room's (sharded) channel, 3 the node acting,
--         then the script's own arguments.
-- Only the sweep also reads other nodes' heartbeats and connections, whose
-- names it builds from KEYS[7] and which share the room's hash tag.
local K_USERS, K_NAMES, K_CONNS, K_HISTORY = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_SEQ, K_LEAVING, K_NODES, K_EPOCH = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_ALIVE, K_MINE = KEYS[9], KEYS[10]
local K_CHANGED, K_CHANGES = KEYS[11], KEYS[12]
local K_COUNT, K_READS = KEYS[13], KEYS[14]
local K_META, K_MEMBERS, K_MUTES, K_REMOVED = KEYS[15], KEYS[16], KEYS[17], KEYS[18]
local K_AUDIT = KEYS[19]

-- How many messages `uid` has not read in the room: 0 without a marker, at
-- most `max` (the store's UNREAD_MAX, an argument of the scripts that count).
local function unread_of(uid, max)
  local marker = redis.call('HGET', K_READS, uid)
  if not marker then return 0 end
  local n = tonumber(redis.call('GET', K_COUNT) or '0') - tonumber(marker)
  if n < 0 then return 0 end
  if n > max then return max end
  return n
end
local ROOM, CHANNEL, NODE = ARGV[1], ARGV[2], ARGV[3]
local TAB = '\t'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Another node's key in this room: 'alive' (its heartbeat) or 'node' (its connections).
local function node_key(what, node)
  return string.sub(K_NODES, 1, -6) .. what .. ':' .. node
end

-- Publishes `event` (a table with its `kind` and data; `chat-store`'s
-- events.rs reads it) with the room's next sequence number. The first
-- release's kinds ('message', 'entered', ...) carry their fields beside
-- `kind`; every event added since is { kind = '<wire name>', data = <payload> },
-- its payload being the `chat-core` type of that `RoomEvent`.
local function publish(event)
  event.seq = redis.call('INCR', K_SEQ)
  redis.call('SPUBLISH', CHANNEL, cjson.encode(event))
end

local function publish_user(kind, uid, name)
  publish({ kind = kind, user = { id = uid, name = name } })
end

-- Message ids are "<ms>-<seq>" without leading zeros: compare as numbers.
local function id_parts(id)
  return string.match(id, '^(%d+)-(%d+)$')
end

-- Exclusive range bounds after and before an id; nil where no id can be
-- (the largest id has nothing after it, 0-0 nothing before it).
local MAX_ID = '18446744073709551615-18446744073709551615'
local function after_bound(id)
  if id == MAX_ID then return nil end
  return '(' .. id
end
local function before_bound(id)
  if id == '0-0' then return nil end
  return '(' .. id
end

-- A stream entry's field, or nil.
local function field(entry, name)
  for j = 1, #entry[2], 2 do
    if entry[2][j] == name then return entry[2][j + 1] end
  end
  return nil
end

local function id_gt(a, b)
  local am, as = id_parts(a)
  local bm, bs = id_parts(b)
  if #am ~= #bm then return #am > #bm end
  if am ~= bm then return am > bm end
  return tonumber(as) > tonumber(bs)
end

-- A stored message as data, its fields named as `chat_core::Message`'s
-- (which decodes it); `edited_ts` only once it was edited.
local function message_record(id, uid, name, text, edited_ts)
  local ms = id_parts(id)
  return { id = id, room = ROOM, user = { id = uid, name = name }, text = text, ts = tonumber(ms),
    edited_ts = edited_ts }
end

-- A message's edit ({t = text, e = edited ms as a string}) or deletion
-- ({d = 1}), or false when it was neither.
local function changed(id)
  local c = redis.call('HGET', K_CHANGED, id)
  if not c then return false end
  return cjson.decode(c)
end

-- Stream entries as message records, edits applied, deleted messages left out.
local function records(entries)
  local out = {}
  for _, e in ipairs(entries) do
    local f = {}
    for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end
    local c = changed(e[1])
    if not c then
      out[#out + 1] = message_record(e[1], f.u, f.n, f.t)
    elseif not c.d then
      out[#out + 1] = message_record(e[1], f.u, f.n, c.t, tonumber(c.e))
    end
  end
  return out
end

-- Up to `limit` messages that were not deleted, oldest first: the newest
-- ones before `from` when `newest`, else the oldest ones after it (`from`
-- is a range bound: '(' .. id, '+' or '-'; nil: none). Deleted messages
-- are removed from the stream (`delete.lua`), so a page reads past only
-- those deleted by an older release.
local function page(newest, from, limit)
  if not from then return {} end
  local out, cursor = {}, from
  while #out < limit do
    local batch
    if newest then
      batch = redis.call('XREVRANGE', K_HISTORY, cursor, '-', 'COUNT', limit - #out)
    else
      batch = redis.call('XRANGE', K_HISTORY, cursor, '+', 'COUNT', limit - #out)
    end
    if #batch == 0 then break end
    for _, m in ipairs(records(batch)) do out[#out + 1] = m end
    cursor = '(' .. batch[#batch][1]
  end
  if newest then
    local n = #out
    for i = 1, math.floor(n / 2) do out[i], out[n + 1 - i] = out[n + 1 - i], out[i] end
  end
  return out
end

-- The edits and deletions made since `since` (stamped at or after its
-- millisecond) to messages at or before it, each message once, as it
-- stands now, with the fields of `chat_core::events::Change`: {id, text,
-- edited_ts} or {id, deleted = true}. The whole log since
-- then is read (it is capped); when their texts pass `max_bytes` (0: no
-- bound), returns what came before and false.
local function changes_since(since, max_bytes)
  local sms = id_parts(since)
  local entries = redis.call('XRANGE', K_CHANGES, sms .. '-0', '+')
  local seen, out, bytes = {}, {}, 0
  for _, e in ipairs(entries) do
    local target = e[2][2]
    if not seen[target] and not id_gt(target, since) then
      seen[target] = true
      local c = changed(target)
      if c and c.d then
        out[#out + 1] = { id = target, deleted = true }
        bytes = bytes + 40
      elseif c then
        out[#out + 1] = { id = target, text = c.t, edited_ts = tonumber(c.e) }
        bytes = bytes + 60 + #c.t
      end
      if max_bytes > 0 and bytes > max_bytes then return out, false end
    end
  end
  return out, true
end

-- The author of a message still in the history and not deleted, or nil.
local function author_of(id)
  local entry = redis.call('XRANGE', K_HISTORY, id, id)[1]
  if not entry then return nil end
  local c = changed(id)
  if c and c.d then return nil end
  return field(entry, 'u')
end

-- Records an edit or deletion of `id`, logs when it was made (the log kept
-- to about `keep` entries) and forgets the changes of messages trimmed
-- from the history once there are more than twice `keep` of them.
local function record_change(id, change, keep)
  redis.call('HSET', K_CHANGED, id, cjson.encode(change))
  redis.call('XADD', K_CHANGES, 'MAXLEN', '~', keep, '*', 'i', id)
  if redis.call('HLEN', K_CHANGED) > 2 * keep then
    local first = redis.call('XRANGE', K_HISTORY, '-', '+', 'COUNT', 1)[1]
    for _, old in ipairs(redis.call('HKEYS', K_CHANGED)) do
      if not first or id_gt(first[1], old) then redis.call('HDEL', K_CHANGED, old) end
    end
  end
end

-- Registers one live connection of this node; announces the user unless
-- they were already present, still within their exit grace, or `silent`.
local function enter(conn, uid, name, silent)
  if redis.call('HSETNX', K_CONNS, conn, uid) == 0 then return end
  redis.call('SADD', K_MINE, conn .. TAB .. uid)
  redis.call('HSET', K_NAMES, uid, name)
  local count = redis.call('HINCRBY', K_USERS, uid, 1)
  local was_leaving = redis.call('ZREM', K_LEAVING, uid)
  if count == 1 and was_leaving == 0 and not silent then
    publish_user('entered', uid, name)
  end
end

-- Drops one connection; when it was the user's last, `user exited` is due
-- after `grace_ms` unless the user comes back first.
local function release(conn, uid, grace_ms)
  if redis.call('HDEL', K_CONNS, conn) == 0 then return 0 end
  local count = redis.call('HINCRBY', K_USERS, uid, -1)
  if count <= 0 then
    redis.call('HSET', K_USERS, uid, 0)
    redis.call('ZADD', K_LEAVING, now_ms() + grace_ms, uid)
  end
  return 1
end

-- Rooms as data (`chat-store`'s rooms module; the same rules as
-- `chat_core::access`). A room exists when it is configured (the caller
-- says so: configured rooms need no settings) or has settings.
local function room_exists(configured)
  return configured or redis.call('EXISTS', K_META) == 1
end

-- The room's kind: configured rooms never changed have no settings and are public.
local function room_kind()
  return redis.call('HGET', K_META, 'kind') or 'public'
end

-- `uid`'s role ('owner', 'moderator', 'member') or false.
local function role_of(uid)
  return redis.call('HGET', K_MEMBERS, uid)
end

local function moderates(role)
  return role == 'owner' or role == 'moderator'
end

-- Whether `uid` lost access to the room at or after `issued_ms` (when their
-- token was issued): such a token is refused.
local function lost_access(uid, issued_ms)
  local at = redis.call('HGET', K_REMOVED, uid)
  return at and tonumber(at) >= issued_ms
end

-- Why `uid` (holding a token issued at `issued_ms`; `admin` acts as owner
-- outside direct rooms) may not read the room, or nil: 'room_unknown' (no
-- such room) or 'revoked' (lost access, or not a member of a room for
-- members only).
local function read_refusal(uid, issued_ms, admin, configured)
  if not room_exists(configured) then return 'room_unknown' end
  if lost_access(uid, issued_ms) then return 'revoked' end
  local kind = room_kind()
  if kind ~= 'public' and not role_of(uid) and not (admin and kind ~= 'direct') then
    return 'revoked'
  end
  return nil
end

-- The role `uid` acts with: an administrator acts as owner outside direct rooms.
local function acting_role(uid, admin)
  if admin and room_kind() ~= 'direct' then return 'owner' end
  return role_of(uid)
end

-- Whether `uid` may post now: may read, not muted, and a moderator where
-- only moderators post.
local function may_post(uid, issued_ms, admin, configured)
  if read_refusal(uid, issued_ms, admin, configured) then return false end
  local until_ms = redis.call('HGET', K_MUTES, uid)
  if until_ms and tonumber(until_ms) > now_ms() then return false end
  local posting = redis.call('HGET', K_META, 'posting') or 'everyone'
  return posting == 'everyone' or moderates(acting_role(uid, admin))
end

-- Records who changed what in the room (`chat-store`'s `AuditEntry`);
-- `detail` is a JSON object as a string.
local function audit(actor, action, target, detail)
  redis.call('XADD', K_AUDIT, 'MAXLEN', '~', 10000, '*', 'a', actor, 'x', action,
    't', target or '', 'd', detail or '{}')
end

-- Starts `uid`'s read marker where the room stands, if they have none: in a
-- room made in v2.0 a member's marker starts where they joined, so what
-- comes after is unread at once.
local function start_reading(uid)
  redis.call('HSETNX', K_READS, uid, redis.call('GET', K_COUNT) or '0')
end

-- Tells every replica that `uid` (or everyone, when nil) lost access to the
-- room: their connections to it end ('removed' or 'room_closed').
local function publish_access_lost(uid, reason)
  publish({ kind = 'access_lost', user = uid, reason = reason })
end

-- When the room's earliest `user exited` is due (ms), or 0 when none is.
local function next_exit()
  local first = redis.call('ZRANGE', K_LEAVING, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return 0
end

-- Announces `user exited` for at most `limit` users whose exit grace passed
-- with no connection back; returns how many.
local function announce_due_exits(limit)
  local exited = 0
  local due = redis.call('ZRANGEBYSCORE', K_LEAVING, '-inf', now_ms(), 'LIMIT', 0, limit)
  for _, uid in ipairs(due) do
    redis.call('ZREM', K_LEAVING, uid)
    if tonumber(redis.call('HGET', K_USERS, uid) or '0') <= 0 then
      local name = redis.call('HGET', K_NAMES, uid) or uid
      redis.call('HDEL', K_USERS, uid)
      redis.call('HDEL', K_NAMES, uid)
      publish_user('exited', uid, name)
      exited = exited + 1
    end
  end
  return exited
end
