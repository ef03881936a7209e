-- The worker is alive: its heartbeat, which its leases last as long as (see common.lua).
-- ARGV: prefix, worker, lease_ms. Returns 0, or {'gone'}.
local LEASE_MS = tonumber(ARGV[3])
if crawl_gone() then return {'gone'} end
redis.call('ZADD', K_WORKERS, NOW + LEASE_MS, WORKER)
return 0
