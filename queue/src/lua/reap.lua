-- Take back at most ARGV[1] jobs whose lease expired: their worker was killed,
-- froze or lost Redis. Each such delivery counts as a crash; at max_crashes the
-- job goes to dead instead of looping forever. Returns { expired, requeued, dead }.
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', base .. ':leases', '-inf', now, 'LIMIT', 0, ARGV[1])
if #ids == 0 then
  return { 0, 0, 0 }
end
local requeue, dead, done = {}, {}, {}
for _, id in ipairs(ids) do
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'state', 'crashes', 'max_crashes', 'worker', 'errors', 'cancel', 'attempts')
  if f[1] == 'running' then
    local crashes = (tonumber(f[2]) or 0) + 1
    local worker = f[4] or '?'
    if f[6] == '1' then
      redis.call('HSET', jk, 'state', 'cancelled', 'crashes', crashes, 'lease', '',
        'finished_at', now, 'updated_at', now)
      table.insert(done, now)
      table.insert(done, id)
    elseif crashes >= (tonumber(f[3]) or 1) then
      local reason = 'crashed its worker ' .. crashes .. ' times'
      redis.call('HSET', jk, 'state', 'dead', 'crashes', crashes, 'last_error', reason,
        'errors', push_error(f[5], f[7], reason .. ' (last lease held by ' .. worker .. ')', now),
        'lease', '', 'finished_at', now, 'updated_at', now)
      table.insert(dead, now)
      table.insert(dead, id)
    else
      local msg = 'lease expired on worker ' .. worker .. ' (killed, frozen or cut off from Redis)'
      redis.call('HSET', jk, 'state', 'queued', 'crashes', crashes, 'last_error', msg,
        'errors', push_error(f[5], f[7], msg, now), 'lease', '', 'updated_at', now)
      table.insert(requeue, id)
    end
  end
end
chunked('ZREM', base .. ':leases', {}, ids, 1)
chunked('RPUSH', base .. ':ready', {}, requeue, 1)
chunked('ZADD', base .. ':dead', {}, dead, 2)
chunked('ZADD', base .. ':done', {}, done, 2)
if #requeue > 0 then
  wake()
end
return { #ids, #requeue, #dead }
