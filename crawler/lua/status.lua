-- A crawl's state, for `crawler status` and the end of a crawl. ARGV: prefix, worker ('')
expire_leases()
local counts = redis.call('HMGET', K_N, 'fresh', 'cont')
local live = redis.call('ZRANGEBYSCORE', K_WORKERS, NOW + 1, '+inf')
local paused = {}
local later = redis.call('ZRANGEBYSCORE', K_READY, NOW + 1000, '+inf', 'WITHSCORES', 'LIMIT', 0, 40)
for k = 1, #later, 2 do
  paused[#paused + 1] = later[k]
  paused[#paused + 1] = tonumber(later[k + 1]) - NOW -- ms until it may send again
end
return {
  tonumber(counts[1] or '0'),
  tonumber(counts[2] or '0'),
  redis.call('HLEN', K_LEASE),
  redis.call('GET', P .. 'start') or '',
  redis.call('GET', K_BUDGET) or '',
  live,
  redis.call('HGETALL', P .. 'totals'),
  tonumber(redis.call('HGET', P .. 'seenmeta', 'count') or '0'),
  redis.call('GET', P .. 'spider') or '',
  paused,
}
