-- A counting semaphore with leases: KEYS[1] a sorted set of holder tokens
-- scored by lease expiry (ms, Redis clock). ARGV[1] op (acquire | renew |
-- release | count), ARGV[2] token, ARGV[3] lease ms, ARGV[4] capacity.
-- Expired holders (a worker killed mid-request) are purged first, so a dead
-- holder's slot comes back after its lease, never later.
-- acquire: 1 if the token holds a slot now (already held counts), else 0.
-- renew: 1 if still held (lease extended), 0 if lost. release: 1 if it was held.
-- count: holders right now. Every reply is an integer.
-- Tokens are "owner#generation" (a job id and its delivery count): acquiring
-- drops earlier generations of the same owner, so a job redelivered after
-- its worker died takes its predecessor's slot over instead of waiting out
-- the dead one's lease. ARGV[5] "owner#", ARGV[6] generation (acquire only).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local op = ARGV[1]
if op == 'count' then
  return redis.call('ZCARD', KEYS[1])
end
local lease = tonumber(ARGV[3])
if op == 'release' then
  return redis.call('ZREM', KEYS[1], ARGV[2])
end
if op == 'acquire' and ARGV[5] ~= '' then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if string.sub(m, 1, #ARGV[5]) == ARGV[5] then
      local g = tonumber(string.sub(m, #ARGV[5] + 1))
      if g and g < tonumber(ARGV[6]) then redis.call('ZREM', KEYS[1], m) end
    end
  end
end
local held = redis.call('ZSCORE', KEYS[1], ARGV[2])
if op == 'renew' then
  if not held then return 0 end
  redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  return 1
end
if held or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], lease * 2)
  return 1
end
return 0
