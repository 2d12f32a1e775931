-- Extend the leases this worker still holds. ARGV[1] = lease ms, then pairs of
-- id, lease token. Returns { lost ids, ids whose cancellation was requested }.
-- A lease that is gone because this delivery's own outcome was recorded
-- (finish.lua keeps its token in 'done_token') is not lost: the worker has
-- just not forgotten the job yet.
local expiry = now_ms() + tonumber(ARGV[1])
local keep, lost, cancel = {}, {}, {}
for o = 2, #ARGV, 2 do
  local id, token = ARGV[o], ARGV[o + 1]
  local f = redis.call('HMGET', job_key(id), 'lease', 'cancel', 'done_token')
  if f[3] == token then
    -- finished by this very delivery: neither renewed nor lost
  elseif f[1] == token then
    table.insert(keep, expiry)
    table.insert(keep, id)
    if f[2] == '1' then
      table.insert(cancel, id)
    end
  else
    table.insert(lost, id)
  end
end
chunked('ZADD', base .. ':leases', { 'XX' }, keep, 2)
return { lost, cancel }
