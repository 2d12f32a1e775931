-- Shared by every Hangar queue script (prepended by scripts.rs).
-- KEYS[1] is the queue's base key, e.g. `hangar:{sync}`; every key a script
-- touches starts with it, so all of a queue's keys share one cluster hash slot.
local base = KEYS[1]

-- Server time, so lease and due-time arithmetic never depends on the clocks of
-- the many worker hosts.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function job_key(id)
  return base .. ':job:' .. id
end

-- Lua's C stack caps unpack() at a few thousand values ("too many results to
-- unpack", the bug that wedged apalis-redis). Every variadic call goes through
-- here in chunks of at most 500 members.
local function chunked(cmd, key, opts, items, width)
  local step = 500 * width
  for i = 1, #items, step do
    local last = math.min(i + step - 1, #items)
    if #opts > 0 then
      redis.call(cmd, key, opts[1], unpack(items, i, last))
    else
      redis.call(cmd, key, unpack(items, i, last))
    end
  end
end

-- One token in the wake list: an idle worker blocked in BLPOP starts at once.
-- A list (not pub/sub) so a wake-up sent while nobody listens is not lost.
local function wake()
  redis.call('LPUSH', base .. ':wake', '1')
  redis.call('LTRIM', base .. ':wake', 0, 0)
end

-- Puts `ids` back at the front of the ready list in their order, without
-- their leases, and wakes a worker (jobs given back, never started).
local function requeue_front(ids)
  chunked('ZREM', base .. ':leases', {}, ids, 1)
  for i = #ids, 1, -1 do
    redis.call('LPUSH', base .. ':ready', ids[i])
  end
  if #ids > 0 then
    wake()
  end
end

-- Appends to the job's error history (JSON array, newest last, at most 20).
-- A history that does not parse (a foreign writer) is started afresh rather
-- than failing the script, which would stall every job in its batch.
local function push_error(errors_json, attempt, message, at)
  local list = {}
  if errors_json and errors_json ~= '' then
    local ok, decoded = pcall(cjson.decode, errors_json)
    if ok and type(decoded) == 'table' then
      list = decoded
    end
  end
  table.insert(list, { attempt = tonumber(attempt) or 0, error = message, at = at })
  while #list > 20 do
    table.remove(list, 1)
  end
  return cjson.encode(list)
end
