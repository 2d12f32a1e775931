-- Record the outcomes of a batch of attempts. ARGV groups of 6:
-- id, lease token, outcome (succeeded|cancelled|retry|defer|dead), text (result
-- JSON or error), delay_ms (retry and defer), attempt number. `defer` means the
-- job did not run (its handler could not start it): it waits delay_ms like a
-- retry, but the attempt it was given (ARGV: the previous count) is not used up
-- and nothing joins its error history.
-- An outcome whose lease token no longer matches is stale (the lease expired
-- and the job was handed to another worker) and is ignored, so a job records
-- exactly one success however many times it ran. The token and state of the
-- last recorded outcome are kept ('done_token', 'done_state'): the same
-- outcome sent again (its first reply was lost, or came too late for the
-- worker) answers the state it recorded instead of looking stale.
-- A failure of a job whose cancellation was requested ends it cancelled.
-- Returns per entry the state it ended in (succeeded, cancelled, retrying,
-- dead), or '' when stale.
local now = now_ms()
local out, released, done, dead, scheduled = {}, {}, {}, {}, {}
for o = 1, #ARGV, 6 do
  local id, token, outcome, text, attempt = ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 5]
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'lease', 'errors', 'cancel', 'done_token', 'done_state')
  if f[1] ~= token and token ~= '' and f[4] == token then
    table.insert(out, f[5])
  elseif f[1] ~= token then
    table.insert(out, '')
  else
    table.insert(released, id)
    if (outcome == 'retry' or outcome == 'defer') and f[3] == '1' then
      -- Cancellation was requested: a failed attempt is not retried.
      outcome = 'cancelled'
      text = ''
    end
    if outcome == 'succeeded' or outcome == 'cancelled' then
      redis.call('HSET', jk, 'state', outcome, 'attempts', attempt, 'result', text,
        'lease', '', 'finished_at', now, 'updated_at', now, 'done_token', token, 'done_state', outcome)
      table.insert(done, now)
      table.insert(done, id)
    elseif outcome == 'defer' then
      local at = now + tonumber(ARGV[o + 4])
      outcome = 'retrying'
      redis.call('HSET', jk, 'state', 'retrying', 'attempts', attempt, 'last_error', text,
        'run_at', at, 'lease', '', 'updated_at', now, 'done_token', token, 'done_state', outcome)
      table.insert(scheduled, at)
      table.insert(scheduled, id)
    elseif outcome == 'retry' then
      local at = now + tonumber(ARGV[o + 4])
      outcome = 'retrying'
      redis.call('HSET', jk, 'state', 'retrying', 'attempts', attempt, 'last_error', text,
        'errors', push_error(f[2], attempt, text, now), 'run_at', at, 'lease', '', 'updated_at', now,
        'done_token', token, 'done_state', outcome)
      table.insert(scheduled, at)
      table.insert(scheduled, id)
    else
      outcome = 'dead'
      redis.call('HSET', jk, 'state', 'dead', 'attempts', attempt, 'last_error', text,
        'errors', push_error(f[2], attempt, text, now), 'lease', '', 'finished_at', now, 'updated_at', now,
        'done_token', token, 'done_state', outcome)
      table.insert(dead, now)
      table.insert(dead, id)
    end
    table.insert(out, outcome)
  end
end
chunked('ZREM', base .. ':leases', {}, released, 1)
chunked('ZADD', base .. ':done', {}, done, 2)
chunked('ZADD', base .. ':dead', {}, dead, 2)
chunked('ZADD', base .. ':scheduled', {}, scheduled, 2)
return out
