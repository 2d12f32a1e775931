-- Move at most ARGV[1] due jobs (delayed or waiting to retry) to the ready list.
-- Returns { promoted, ms until the next scheduled job or -1 }.
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', base .. ':scheduled', '-inf', now, 'LIMIT', 0, ARGV[1])
if #ids > 0 then
  chunked('ZREM', base .. ':scheduled', {}, ids, 1)
  local due = {}
  for _, id in ipairs(ids) do
    local state = redis.call('HGET', job_key(id), 'state')
    if state == 'scheduled' or state == 'retrying' then
      redis.call('HSET', job_key(id), 'state', 'queued', 'updated_at', now)
      table.insert(due, id)
    end
  end
  chunked('RPUSH', base .. ':ready', {}, due, 1)
  if #due > 0 then
    wake()
  end
end
local next_due = -1
local head = redis.call('ZRANGE', base .. ':scheduled', 0, 0, 'WITHSCORES')
if #head == 2 then
  next_due = math.max(0, tonumber(head[2]) - now)
end
return { #ids, next_due }
