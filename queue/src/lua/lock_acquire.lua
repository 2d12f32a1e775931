-- A lease lock: KEYS[1] lock key, ARGV[1] owner token, ARGV[2] lease ms.
-- Taken when free, or re-taken by the same owner (a redelivered job keeps
-- its own lock). Returns 1 when held by the caller, else the holder's token.
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return holder
