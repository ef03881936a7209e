-- Shared by every script of the Redis frontier (prepended to each one when it is loaded).
-- ARGV[1] is the crawl's key prefix, ARGV[2] the calling worker's id.
--
-- Keys under the prefix P:
--   d:<domain>   hash: the domain's pacing (conc, inflight, rate, crate, ceil, step, streak,
--                thr, floor, last, paused, gapavg; times in ms of Redis TIME, rates in req/s)
--   q:<domain>   list: fresh requests (JSON)           qp:<domain>  zset: those of a priority
--                other than 0 ("seq\tJSON", higher first)   qc:<domain>  list: retries, redirect
--                hops and requeued leases (JSON), handed out before fresh requests
--   ready        zset: domain -> ms it may next send   full, overbudget: sets of domains waiting
--                for a freed slot / for max_pages to be refunded
--   delayed      zset: "domain\tchain\tJSON" -> ms its retry may go (chain: unique)
--   lease        hash: chain -> "worker\t1\tdomain\tJSON" (one claim)
--   wl:<worker>  set: the chains leased to the worker. A lease lasts as long as its worker's
--                heartbeat (workers): a worker whose heartbeat lapsed has its chains requeued,
--                and its score set to 0 (presumed dead, its leases handled)
--   slots        set: chains whose download holds a slot of their domain
--   replies      hash: worker -> its last sync's "seq\nreply" (a repeated call is answered from it)
--   wd:<worker>  hash: domain -> slots the worker holds (each takes at most its share of a domain)
--   workers      zset: worker -> heartbeat expiry ms (0: presumed dead)   n: hash of counters
--                (fresh, cont, chain)
--   seen:<b>     sets of signed 64-bit fingerprints (intsets), linear hashing over b; seenmeta
--   seenlog      list: "worker\tfp,fp,..." per sync, the last 256 or so (see sync.lua)
--   budget       pages left to hand out (max_pages)    start: "done" or the feeding worker
--   outputs      hash: output id -> "worker\tcommitted position"   totals: hash of counters
--   spider       the crawl's spider name; format: the layout of these keys (see open.lua)
local P = ARGV[1]
local WORKER = ARGV[2]
local T = redis.call('TIME')
local NOW = tonumber(T[1]) * 1000 + math.floor(tonumber(T[2]) / 1000)

local K_READY, K_FULL, K_OVER = P .. 'ready', P .. 'full', P .. 'overbudget'
local K_LEASE, K_N = P .. 'lease', P .. 'n'
local K_DELAYED, K_BUDGET, K_WORKERS = P .. 'delayed', P .. 'budget', P .. 'workers'

-- "worker\tslot\tdomain\tJSON" -> worker, slot, domain, JSON
local function parse_lease(rec)
  local a = string.find(rec, '\t', 1, true)
  local b = string.find(rec, '\t', a + 1, true)
  local c = string.find(rec, '\t', b + 1, true)
  return string.sub(rec, 1, a - 1), string.sub(rec, a + 1, b - 1), string.sub(rec, b + 1, c - 1), string.sub(rec, c + 1)
end

local function is_ours(rec)
  return rec and string.sub(rec, 1, #WORKER + 1) == WORKER .. '\t'
end

-- The domain may send sooner than it is scheduled for (something queued, a slot freed).
local function wake(d)
  if redis.call('SISMEMBER', K_FULL, d) == 0 then
    redis.call('ZADD', K_READY, 'NX', NOW, d)
  end
end

-- A slot of domain d, held by worker w, is free again.
local function free_slot(d, w)
  redis.call('HINCRBY', P .. 'd:' .. d, 'inflight', -1)
  redis.call('HINCRBY', P .. 'wd:' .. w, d, -1)
  if redis.call('SREM', K_FULL, d) == 1 then
    redis.call('ZADD', K_READY, 'NX', NOW, d)
  end
end

-- Put a leased request back at the head of its domain's queue (its lease expired, or the
-- worker let it go): it is a continuation, so max_pages does not count it twice.
local function requeue(chain, rec)
  local w, _, d, json = parse_lease(rec)
  if redis.call('SREM', P .. 'slots', chain) == 1 then free_slot(d, w) end
  redis.call('LPUSH', P .. 'qc:' .. d, json)
  redis.call('HINCRBY', K_N, 'cont', 1)
  redis.call('HDEL', K_LEASE, chain)
  redis.call('SREM', P .. 'wl:' .. w, chain)
  redis.call('SREM', K_OVER, d)
  wake(d)
end

-- The leases of workers whose heartbeat lapsed go back to the queue (up to 200 a call; a
-- worker is marked handled, score 0, once it has none left).
local function expire_leases()
  local budget = 200
  for _, w in ipairs(redis.call('ZRANGEBYSCORE', K_WORKERS, 1, NOW, 'LIMIT', 0, 16)) do
    local K_WL = P .. 'wl:' .. w
    for _, chain in ipairs(redis.call('SPOP', K_WL, budget)) do
      local rec = redis.call('HGET', K_LEASE, chain)
      if rec then
        requeue(chain, rec)
        redis.call('HINCRBY', P .. 'totals', 'requeued', 1)
      end
      budget = budget - 1
    end
    if budget <= 0 then return end
    redis.call('ZADD', K_WORKERS, 'XX', 0, w)
  end
end

-- A worker that joined stays in the workers set until it leaves (a dead one too, with an old
-- heartbeat): if the caller is not in it, the crawl's state is gone (Redis restarted without
-- persistence, or the crawl was cleared), and nothing it sends may be applied.
local function crawl_gone()
  return not redis.call('ZSCORE', K_WORKERS, WORKER)
end

local function worker_alive(w)
  local expiry = redis.call('ZSCORE', K_WORKERS, w)
  return expiry and tonumber(expiry) > NOW
end
