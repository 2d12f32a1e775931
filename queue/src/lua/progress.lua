-- Store progress JSON ARGV[3] for job ARGV[1] if lease ARGV[2] is still held.
if redis.call('HGET', job_key(ARGV[1]), 'lease') == ARGV[2] then
  redis.call('HSET', job_key(ARGV[1]), 'progress', ARGV[3], 'updated_at', now_ms())
  return 1
end
return 0
