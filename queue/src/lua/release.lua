-- Give back jobs this worker holds but will not finish (shutdown). ARGV[1] =
-- '1' if they never started (the delivery is not counted), then pairs of id,
-- lease token. They go to the front of the ready list in their original order;
-- one whose cancellation was requested ends cancelled instead.
-- Returns how many were released.
local now = now_ms()
local ids = {}
for o = 2, #ARGV, 2 do
  local id, token = ARGV[o], ARGV[o + 1]
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'lease', 'deliveries', 'cancel')
  if f[1] == token then
    local deliveries = tonumber(f[2]) or 1
    if ARGV[1] == '1' then
      deliveries = deliveries - 1
    end
    if f[3] == '1' then
      redis.call('HSET', jk, 'state', 'cancelled', 'lease', '', 'deliveries', deliveries,
        'finished_at', now, 'updated_at', now)
      redis.call('ZREM', base .. ':leases', id)
      redis.call('ZADD', base .. ':done', now, id)
    else
      redis.call('HSET', jk, 'state', 'queued', 'lease', '', 'deliveries', deliveries, 'updated_at', now)
      table.insert(ids, id)
    end
  end
end
requeue_front(ids)
return #ids
