-- Enqueue a batch. ARGV[1] = idempotency key TTL (ms); then groups of 9:
-- id, kind, payload, run_at_ms ('0' = now), idempotency key ('' = none),
-- max_attempts, max_crashes, correlation id ('' = none), W3C traceparent
-- ('' = none).
-- Returns a flat array: id, duplicate (0/1) per job, in order.
local now = now_ms()
local ttl = ARGV[1]
local ready, scheduled, out = {}, {}, {}
for o = 2, #ARGV, 9 do
  local id, idem = ARGV[o], ARGV[o + 4]
  local run_at = tonumber(ARGV[o + 3])
  local existing = false
  if idem ~= '' then
    existing = redis.call('SET', base .. ':idem:' .. idem, id, 'NX', 'PX', ttl, 'GET')
  end
  if not existing and redis.call('EXISTS', job_key(id)) == 1 then
    existing = id
  end
  if existing then
    table.insert(out, existing)
    table.insert(out, 1)
  else
    local state = 'queued'
    if run_at > now then
      state = 'scheduled'
      table.insert(scheduled, run_at)
      table.insert(scheduled, id)
    else
      run_at = now
      table.insert(ready, id)
    end
    redis.call('HSET', job_key(id), 'id', id, 'kind', ARGV[o + 1], 'payload', ARGV[o + 2],
      'state', state, 'attempts', 0, 'max_attempts', ARGV[o + 5], 'deliveries', 0,
      'crashes', 0, 'max_crashes', ARGV[o + 6], 'created_at', now, 'run_at', run_at,
      'updated_at', now, 'idem', idem, 'correlation', ARGV[o + 7])
    -- Only when there is one: even an empty field costs a finished job
    -- 128 bytes (its hash crosses an allocator size class; measured by
    -- bench/redis-memory.sh), and fetch reads a missing one as ''.
    if ARGV[o + 8] ~= '' then
      redis.call('HSET', job_key(id), 'traceparent', ARGV[o + 8])
    end
    table.insert(out, id)
    table.insert(out, 0)
  end
end
chunked('RPUSH', base .. ':ready', {}, ready, 1)
chunked('ZADD', base .. ':scheduled', {}, scheduled, 2)
if #ready > 0 then
  wake()
end
return out
