-- ARGV 4..: name, topic, kind, groups (a JSON list), creator's user id, then
-- the ids of the other members of a direct room.
-- Makes the room: its settings, its creator as owner (in a direct room,
-- every member as member), and the audit's first entry. Returns 'done', or
-- 'conflict' when a room with this id exists.
local name, topic, kind, groups, creator = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
if redis.call('EXISTS', K_META) == 1 then return 'conflict' end
redis.call('HSET', K_META, 'name', name, 'topic', topic, 'kind', kind, 'posting', 'everyone',
  'retention_days', '', 'groups', groups, 'created', now_ms(), 'creator', creator)
if kind == 'direct' then
  redis.call('HSET', K_MEMBERS, creator, 'member')
  for i = 9, #ARGV do
    redis.call('HSET', K_MEMBERS, ARGV[i], 'member')
    start_reading(ARGV[i])
  end
else
  redis.call('HSET', K_MEMBERS, creator, 'owner')
end
start_reading(creator)
audit(creator, 'room_created', nil, cjson.encode({ name = name, kind = kind }))
return 'done'
