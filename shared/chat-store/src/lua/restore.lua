-- ARGV 4..: silent ('1'/'0'), then groups of conn, user id, name.
-- Registers again this node's live connections in the room, after Redis lost
-- them (silently) or swept this node as dead (announced).
local silent = ARGV[4] == '1'
local restored = 0
for i = 5, #ARGV, 3 do
  enter(ARGV[i], ARGV[i + 1], ARGV[i + 2], silent)
  restored = restored + 1
end
return restored
