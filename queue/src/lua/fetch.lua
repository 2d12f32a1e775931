-- Claim up to ARGV[2] ready jobs for worker ARGV[1] with a lease of ARGV[3] ms.
-- Entries whose job is no longer 'queued' (cancelled while waiting, trimmed,
-- or a duplicate entry) are dropped here: cancelling a queued job is O(1).
-- Returns groups of 7: id, kind, payload, attempts, deliveries, lease token, max_attempts.
local max = tonumber(ARGV[2])
local ids = redis.call('LPOP', base .. ':ready', max)
if not ids then
  return {}
end
local now = now_ms()
local expiry = now + tonumber(ARGV[3])
local worker = ARGV[1]
local out, leases = {}, {}
for _, id in ipairs(ids) do
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'state', 'kind', 'payload', 'attempts', 'deliveries', 'max_attempts')
  if f[1] == 'queued' then
    local deliveries = tonumber(f[5]) + 1
    local token = worker .. '/' .. deliveries
    redis.call('HSET', jk, 'state', 'running', 'deliveries', deliveries, 'worker', worker,
      'lease', token, 'started_at', now, 'updated_at', now)
    table.insert(leases, expiry)
    table.insert(leases, id)
    for _, v in ipairs({ id, f[2], f[3], f[4], tostring(deliveries), token, f[6] }) do
      table.insert(out, v)
    end
  end
end
chunked('ZADD', base .. ':leases', {}, leases, 2)
-- More work may be waiting than this worker could take: pass the wake-up on.
if #ids == max and redis.call('LLEN', base .. ':ready') > 0 then
  wake()
end
return out
