-- The worker is alive and still working on these chains. ARGV: prefix, worker, lease_ms, chains...
-- Returns the chains it no longer holds (their leases expired and were requeued), or {'gone'}.
local LEASE_MS = tonumber(ARGV[3])
if crawl_gone() then return {'gone'} end
redis.call('ZADD', K_WORKERS, NOW + LEASE_MS, WORKER)
local lost = {}
for k = 4, #ARGV do
  local chain = ARGV[k]
  if is_ours(redis.call('HGET', K_LEASE, chain)) then
    redis.call('ZADD', K_LEASES, NOW + LEASE_MS, chain)
  else
    lost[#lost + 1] = chain
  end
end
return lost
