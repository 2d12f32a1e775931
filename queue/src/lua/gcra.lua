-- GCRA rate limiter (generic cell rate algorithm): one key holds the
-- "theoretical arrival time" of the next permitted request, so the state is a
-- single number no matter the rate. Redis's clock is the only clock, so every
-- process that shares the key shares the limit.
-- KEYS[1] limiter key
-- ARGV[1] emission interval in ms (1000 / rate per second)
-- ARGV[2] burst: how many requests may go at once after an idle period (>= 1)
-- Returns {allowed 1|0, wait_ms until allowed, remaining burst, ms until full}
-- Milliseconds with the microseconds kept: on a whole-millisecond clock a
-- rate above 1,000/s refused every second call within the same millisecond.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, math.ceil(allow_at - now), 0, math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return {1, 0, math.floor((now - allow_at) / interval), math.ceil(new_tat - now)}
