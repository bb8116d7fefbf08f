-- ARGV: prefix, room, user id, name, text, floor id ('' if none), max length,
--       trace context ('' if none).
-- Stores the message and publishes it in one atomic step, so every replica
-- receives a room's messages in id order. Returns the id.
local room, uid, name, text, floor = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local hkey = room_key(room, 'history')
local id_arg = '*'
-- After Redis lost the stream, ids must still exceed every id clients saw.
if floor ~= '' and redis.call('EXISTS', hkey) == 0 then
  local fms, fseq = id_parts(floor)
  if fms and tonumber(fms) >= now_ms() then
    id_arg = fms .. '-' .. string.format('%d', tonumber(fseq) + 1)
  end
end
local id = redis.call('XADD', hkey, 'MAXLEN', '~', ARGV[7], id_arg, 'u', uid, 'n', name, 't', text)
local event = { kind = 'message', id = id, room = room, user = { id = uid, name = name }, text = text }
event.ts = tonumber((id_parts(id)))
if ARGV[8] ~= '' then event.tp = ARGV[8] end
publish(room, event)
return id
