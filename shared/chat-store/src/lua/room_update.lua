-- ARGV 4..: actor's user id, admin ('1'/'0'), configured ('1'/'0'), then
-- pairs of setting and new value (name, topic, posting, retention_days; ''
-- for no retention).
-- Owners (and administrators, outside direct rooms) change the settings;
-- the audit records what changed. Returns 'done', 'not_found' or 'forbidden'.
local actor, admin, configured = ARGV[4], ARGV[5] == '1', ARGV[6] == '1'
if not room_exists(configured) then return 'not_found' end
local role = acting_role(actor, admin)
if room_kind() ~= 'public' and not role then return 'not_found' end
if role ~= 'owner' then return 'forbidden' end
if redis.call('EXISTS', K_META) == 0 then
  -- A configured room changed for the first time gets the settings it had.
  redis.call('HSET', K_META, 'name', ROOM, 'topic', '', 'kind', 'public', 'posting', 'everyone',
    'retention_days', '', 'groups', '[]', 'created', now_ms(), 'creator', '')
end
local detail = {}
for i = 7, #ARGV - 1, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local before = redis.call('HGET', K_META, field) or ''
  if before ~= value then
    redis.call('HSET', K_META, field, value)
    detail[field] = { from = before, to = value }
  end
end
if next(detail) then audit(actor, 'room_updated', nil, cjson.encode(detail)) end
return 'done'
