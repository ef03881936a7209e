-- A worker joins the crawl. ARGV: prefix, worker, lease_ms, spider name, max_pages (-1: none),
-- rejoin (1: a worker already in the crawl asks to take over the start requests).
-- Returns {who adds the start requests: 'new' (this worker: a new crawl), 'takeover' (this
-- worker: the one adding them left or died before it was done), 'no', or 'gone' (a rejoin,
-- and the crawl's state is gone: see common.lua), or 'format' (the crawl was stored by a
-- version of the crawler that kept it otherwise: not joined); the crawl's spider}.
local LEASE_MS = tonumber(ARGV[3])
if ARGV[6] == '1' and crawl_gone() then return {'gone', ARGV[4]} end
local FORMAT = '2' -- the layout of a crawl's keys (common.lua): 2 since leases went per worker
local owner = redis.call('GET', P .. 'spider')
local new_crawl = not owner
if new_crawl then
  redis.call('SET', P .. 'spider', ARGV[4])
  redis.call('SET', P .. 'format', FORMAT)
  owner = ARGV[4]
end
if owner ~= ARGV[4] then return {'no', owner} end
if redis.call('GET', P .. 'format') ~= FORMAT then
  return {'format', owner} -- stored by another version of the crawler: not joined
end
redis.call('ZADD', K_WORKERS, NOW + LEASE_MS, WORKER)
if tonumber(ARGV[5]) >= 0 then redis.call('SET', K_BUDGET, ARGV[5], 'NX') end
local start = redis.call('GET', P .. 'start') or ''
local feed = 'no'
if new_crawl then
  feed = 'new'
elseif start ~= 'done' and start ~= WORKER and (start == '' or not worker_alive(start)) then
  feed = 'takeover'
end
if feed ~= 'no' then redis.call('SET', P .. 'start', WORKER) end
return {feed, owner}
