-- A lease lock: KEYS[1] lock key, ARGV[1] token "owner#generation",
-- ARGV[2] lease ms, ARGV[3] owner, ARGV[4] generation.
-- Taken when free, when already ours, or from an earlier generation of the
-- same owner (a job redelivered after its worker died or stalled takes its
-- lock over at once; the stale copy finds out when it next renews).
-- Returns 1 when the caller holds it, else the holder's token.
local holder = redis.call('GET', KEYS[1])
local take = (not holder) or holder == ARGV[1]
if not take then
  local owner, generation = string.match(holder, '^(.*)#(%d+)$')
  take = owner == ARGV[3] and tonumber(generation) < tonumber(ARGV[4])
end
if take then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return holder
