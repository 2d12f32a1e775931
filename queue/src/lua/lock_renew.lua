-- KEYS[1] lock key, ARGV[1] owner token, ARGV[2] lease ms (0: release).
-- Returns 1 if the caller held the lock, 0 if it had lost it.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
