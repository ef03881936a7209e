-- Requests go back to the queue at once (no waiting for their leases to expire): the
-- worker leaves (then a start() it had not finished is left for another worker too), or
-- it is redoing chains whose end a refused batch did not commit.
-- ARGV: prefix, worker, leaving (0/1), chains...
if crawl_gone() then return 0 end -- (nothing to give back to: the crawl's state is gone)
for k = 4, #ARGV do
  local rec = redis.call('HGET', K_LEASE, ARGV[k])
  if is_ours(rec) then requeue(ARGV[k], rec) end
end
if ARGV[3] == '1' then
  local K_WL = P .. 'wl:' .. WORKER
  for _, chain in ipairs(redis.call('SMEMBERS', K_WL)) do -- (any it did not name)
    local rec = redis.call('HGET', K_LEASE, chain)
    if is_ours(rec) then requeue(chain, rec) end
  end
  redis.call('DEL', K_WL)
  if redis.call('GET', P .. 'start') == WORKER then redis.call('DEL', P .. 'start') end
  redis.call('ZREM', K_WORKERS, WORKER)
  redis.call('DEL', P .. 'wd:' .. WORKER)
  redis.call('HDEL', P .. 'replies', WORKER)
end
return 0
