-- Claim up to ARGV[2] ready jobs for worker ARGV[1] with a lease of ARGV[3] ms.
-- ARGV[4] is a nonce unique to this fetch (worker identity + sequence): lease
-- tokens are `nonce/deliveries`, never reused, and the claimed ids are noted
-- under `claim:<nonce>` for one lease period so that, if this reply is lost,
-- the worker can give them back (release_claim.lua) instead of letting their
-- leases lapse and count as crashes.
-- Entries whose job is no longer 'queued' (cancelled while waiting, trimmed,
-- or a duplicate entry) are dropped here: cancelling a queued job is O(1).
-- Returns groups of 9: id, kind, payload, attempts, deliveries, lease token,
-- max_attempts, correlation id, traceparent.
local max = tonumber(ARGV[2])
local ids = redis.call('LPOP', base .. ':ready', max)
if not ids then
  return {}
end
local now = now_ms()
local expiry = now + tonumber(ARGV[3])
local worker, nonce = ARGV[1], ARGV[4]
local out, leases, claimed = {}, {}, {}
for _, id in ipairs(ids) do
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'state', 'kind', 'payload', 'attempts', 'deliveries', 'max_attempts', 'cancel', 'correlation', 'traceparent')
  if f[1] == 'queued' and f[7] == '1' then
    -- Released after a cancel request reached it: it ends here.
    redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', now, 'updated_at', now)
    redis.call('ZADD', base .. ':done', now, id)
  elseif f[1] == 'queued' then
    local deliveries = (tonumber(f[5]) or 0) + 1
    local token = nonce .. '/' .. deliveries
    redis.call('HSET', jk, 'state', 'running', 'deliveries', deliveries, 'worker', worker,
      'lease', token, 'started_at', now, 'updated_at', now)
    table.insert(leases, expiry)
    table.insert(leases, id)
    table.insert(claimed, id)
    for _, v in ipairs({ id, f[2], f[3], f[4], tostring(deliveries), token, f[6], f[8] or '', f[9] or '' }) do
      table.insert(out, v)
    end
  end
end
chunked('ZADD', base .. ':leases', {}, leases, 2)
if #claimed > 0 then
  local ck = base .. ':claim:' .. nonce
  chunked('RPUSH', ck, {}, claimed, 1)
  redis.call('PEXPIRE', ck, ARGV[3])
end
-- More work may be waiting than this worker could take: pass the wake-up on.
if #ids == max and redis.call('LLEN', base .. ':ready') > 0 then
  wake()
end
return out
