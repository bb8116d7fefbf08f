-- ARGV 4..: user id, name, text, floor id ('' if none), max length, trace context ('' if none),
-- when the sender's token was issued (ms), admin ('1'/'0'), configured ('1'/'0').
-- Stores the message and publishes it in one atomic step, so every replica
-- receives a room's messages in id order. Returns the id, or 'forbidden'
-- when the sender may not post (checked here, where roles, mutes and the
-- room's posting rule are stored, so every replica holds to them at once).
local uid, name, text, floor, maxlen, tp = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
if not may_post(uid, tonumber(ARGV[10]), ARGV[11] == '1', ARGV[12] == '1') then return 'forbidden' end
local id
-- Each entry carries the room's message count at it (`c`), so a read marker
-- is found from one entry (`read.lua`).
local c = string.format('%d', tonumber(redis.call('GET', K_COUNT) or '0') + 1)
-- Ids must exceed every id the sender's replica saw, even when this Redis
-- holds less than that (it lost its data, or a replica that had not caught
-- up was promoted) or its clock is behind the one that gave those ids.
if floor ~= '' then
  local fms, fseq = id_parts(floor)
  if fms and tonumber(fms) >= now_ms() then
    local explicit = fms .. '-' .. string.format('%d', tonumber(fseq) + 1)
    local ok, res = pcall(redis.call, 'XADD', K_HISTORY, 'MAXLEN', '~', maxlen, explicit, 'u', uid, 'n', name, 't', text, 'c', c)
    if ok then id = res end
  end
end
if not id then
  id = redis.call('XADD', K_HISTORY, 'MAXLEN', '~', maxlen, '*', 'u', uid, 'n', name, 't', text, 'c', c)
end
redis.call('SET', K_COUNT, c)
if tp == '' then tp = nil end
publish({ kind = 'message', id = id, tp = tp, message = message_record(id, uid, name, text) })
return id
