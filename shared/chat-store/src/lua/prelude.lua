-- Shared by every script: ARGV[1] is the key prefix (see schema.rs).
local P = ARGV[1]
local TAB = '\t'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function room_key(room, suffix)
  return P .. 'room:' .. room .. ':' .. suffix
end

-- Publishes `event` to the room's channel with the room's next sequence number.
local function publish(room, event)
  event.seq = redis.call('INCR', room_key(room, 'seq'))
  redis.call('PUBLISH', room_key(room, 'events'), cjson.encode(event))
end

-- Message ids are "<ms>-<seq>" without leading zeros: compare as numbers.
local function id_parts(id)
  return string.match(id, '^(%d+)-(%d+)$')
end

local function id_gt(a, b)
  local am, as = id_parts(a)
  local bm, bs = id_parts(b)
  if #am ~= #bm then return #am > #bm end
  if am ~= bm then return am > bm end
  return tonumber(as) > tonumber(bs)
end

-- A stream entry as the contract's Message, serialized once.
local function message_json(room, id, fields)
  local f = {}
  for i = 1, #fields, 2 do f[fields[i]] = fields[i + 1] end
  local ms = id_parts(id)
  return cjson.encode({ id = id, room = room, user = { id = f.u, name = f.n }, text = f.t, ts = tonumber(ms) })
end

local function entries_json(room, entries, reverse)
  local out = {}
  local n = #entries
  for i = 1, n do
    local e = reverse and entries[n + 1 - i] or entries[i]
    out[i] = message_json(room, e[1], e[2])
  end
  return out
end

-- Registers one live connection; announces the user unless they were
-- already present, still within their exit grace, or `silent` is set.
local function enter(room, node, conn, uid, name, silent)
  if redis.call('HSETNX', room_key(room, 'conns'), conn, uid) == 0 then return end
  redis.call('SADD', P .. 'node:' .. node .. ':conns', room .. TAB .. conn .. TAB .. uid)
  redis.call('HSET', room_key(room, 'names'), uid, name)
  local count = redis.call('HINCRBY', room_key(room, 'users'), uid, 1)
  local was_leaving = redis.call('ZREM', P .. 'leaving', room .. TAB .. uid)
  if count == 1 and was_leaving == 0 and not silent then
    publish(room, { kind = 'entered', user = { id = uid, name = name } })
  end
end

-- Drops one connection; when it was the user's last, `user exited` is due
-- after `grace_ms` unless the user comes back first.
local function release(room, conn, uid, grace_ms)
  if redis.call('HDEL', room_key(room, 'conns'), conn) == 0 then return 0 end
  local count = redis.call('HINCRBY', room_key(room, 'users'), uid, -1)
  if count <= 0 then
    redis.call('HSET', room_key(room, 'users'), uid, 0)
    redis.call('ZADD', P .. 'leaving', now_ms() + grace_ms, room .. TAB .. uid)
  end
  return 1
end
