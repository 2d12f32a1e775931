-- A fetch whose reply never arrived (timeout, dropped connection): give back
-- every job it claimed that still carries its nonce ARGV[1], uncounted, to the
-- front of the ready list. Returns how many were released.
local ck = base .. ':claim:' .. ARGV[1]
local ids = redis.call('LRANGE', ck, 0, -1)
redis.call('DEL', ck)
local now = now_ms()
local prefix = ARGV[1] .. '/'
local back = {}
for _, id in ipairs(ids) do
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'lease', 'deliveries')
  if f[1] and string.sub(f[1], 1, #prefix) == prefix then
    redis.call('HSET', jk, 'state', 'queued', 'lease', '', 'deliveries', (tonumber(f[2]) or 1) - 1, 'updated_at', now)
    table.insert(back, id)
  end
end
requeue_front(back)
return #back
