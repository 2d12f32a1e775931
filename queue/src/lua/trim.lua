-- Retention for a finished set (ARGV[1] = 'done' or 'dead'): delete at most
-- ARGV[4] jobs older than ARGV[2] ms, or beyond the newest ARGV[3] but only
-- among those older than ARGV[5] ms (so a burst never trims jobs other
-- processes may still need to read, e.g. to reconcile records).
-- Returns how many job records were deleted.
local now = now_ms()
local set = base .. ':' .. ARGV[1]
local limit = tonumber(ARGV[4])
local removed = 0
local function drop(ids)
  for _, id in ipairs(ids) do
    redis.call('DEL', job_key(id))
  end
  chunked('ZREM', set, {}, ids, 1)
  removed = removed + #ids
end
drop(redis.call('ZRANGEBYSCORE', set, '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, limit))
local budget = limit - removed
local excess = redis.call('ZCARD', set) - tonumber(ARGV[3])
if excess > 0 and budget > 0 then
  drop(redis.call('ZRANGEBYSCORE', set, '-inf', now - tonumber(ARGV[5]), 'LIMIT', 0, math.min(excess, budget)))
end
return removed
