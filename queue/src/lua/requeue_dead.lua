-- Requeue dead jobs with a fresh attempt budget: the ids in ARGV[2..], or when
-- none are given, the oldest ARGV[1]. Returns how many were requeued.
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do
    table.insert(ids, ARGV[i])
  end
else
  ids = redis.call('ZRANGE', base .. ':dead', 0, tonumber(ARGV[1]) - 1)
end
local now = now_ms()
local moved = {}
for _, id in ipairs(ids) do
  if redis.call('ZREM', base .. ':dead', id) == 1 then
    redis.call('HSET', job_key(id), 'state', 'queued', 'attempts', 0, 'crashes', 0,
      'cancel', '0', 'lease', '', 'requeued_at', now, 'updated_at', now)
    table.insert(moved, id)
  end
end
chunked('RPUSH', base .. ':ready', {}, moved, 1)
if #moved > 0 then
  wake()
end
return #moved
