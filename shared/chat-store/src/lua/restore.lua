-- ARGV: prefix, node, silent ('1'/'0'), then groups of room, conn, user id, name.
-- Registers again the live connections of a node whose presence Redis lost.
local node, silent = ARGV[2], ARGV[3] == '1'
local restored = 0
for i = 4, #ARGV, 4 do
  enter(ARGV[i], node, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], silent)
  restored = restored + 1
end
return restored
