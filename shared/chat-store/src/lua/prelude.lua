-- Shared by every script. Each script acts on one room, so every key it
-- touches carries the room's hash tag `{room}` and lives in one hash slot
-- (one Redis Cluster shard). The keys are declared, always in this order:
--   KEYS: 1 users, 2 names, 3 conns, 4 history, 5 seq, 6 leaving, 7 nodes,
--         8 epoch, 9 this node's heartbeat, 10 this node's connections,
--         then the script's own keys (also in the room's slot), from 11.
--   ARGV: 1 room name, 2 the room's (sharded) channel, 3 the node acting,
--         then the script's own arguments.
-- Only the sweep also reads other nodes' heartbeats and connections, whose
-- names it builds from KEYS[7] and which share the room's hash tag.
local K_USERS, K_NAMES, K_CONNS, K_HISTORY = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_SEQ, K_LEAVING, K_NODES, K_EPOCH = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_ALIVE, K_MINE = KEYS[9], KEYS[10]
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

-- Publishes an event whose JSON fields (without braces) are `fields`, with
-- the room's next sequence number.
local function publish(fields)
  local seq = redis.call('INCR', K_SEQ)
  redis.call('SPUBLISH', CHANNEL, '{"seq":' .. seq .. ',' .. fields .. '}')
end

local function publish_user(kind, uid, name)
  publish('"kind":"' .. kind .. '","user":' .. cjson.encode({ id = uid, name = name }))
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

-- The contract's Message, the one place its JSON is made.
local function message_json(id, uid, name, text)
  local ms = id_parts(id)
  return cjson.encode({ id = id, room = ROOM, user = { id = uid, name = name }, text = text, ts = tonumber(ms) })
end

local function entries_json(entries, reverse)
  local out = {}
  local n = #entries
  for i = 1, n do
    local e = reverse and entries[n + 1 - i] or entries[i]
    local f = {}
    for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end
    out[i] = message_json(e[1], f.u, f.n, f.t)
  end
  return out
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
