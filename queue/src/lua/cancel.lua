-- Cancel job ARGV[1]. A queued or scheduled job is cancelled at once (its
-- ready-list entry is dropped by fetch); a running job gets a cancellation
-- request its handler observes. Returns the resulting disposition.
local id = ARGV[1]
local jk = job_key(id)
local state = redis.call('HGET', jk, 'state')
if not state then
  return 'not_found'
end
if state == 'queued' or state == 'scheduled' or state == 'retrying' then
  local now = now_ms()
  redis.call('ZREM', base .. ':scheduled', id)
  redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', now, 'updated_at', now)
  redis.call('ZADD', base .. ':done', now, id)
  return 'cancelled'
elseif state == 'running' then
  redis.call('HSET', jk, 'cancel', '1')
  return 'cancel_requested'
end
return 'already_' .. state
