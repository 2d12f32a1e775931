-- Delete dead job ARGV[1] for good. Returns 1 if it was in the dead set.
if redis.call('ZREM', base .. ':dead', ARGV[1]) == 1 then
  redis.call('DEL', job_key(ARGV[1]))
  return 1
end
return 0
