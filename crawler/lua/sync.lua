-- One round trip of a worker with the shared frontier: apply its batch of operations (in
-- the order it made them), then claim up to WANT requests of domains that may send now.
-- ARGV: prefix, worker, want, lease_ms, autothrottle (0/1), min_rate, ops, seq, cursor,
-- max_items (-1: none).
-- ops is a JSON array of arrays (one packed argument costs the worker far less than
-- thousands; fingerprints and chains are strings, since Lua numbers are doubles):
--   A fp low domain force priority conc rate json    a new request (deduped on fp)
--   C chain domain delay_ms conc rate json fp low force   the chain goes on as a retry (fp '')
--                                                    or a redirect hop (deduped on its fp)
--   D chain domain                                   its download ended: its slot is free (not
--                                                    sent with the chain's E or C, which free it)
--   X domain ok throttled pause_ms sent_ms           answers seen (AIMD), a Retry-After pause, and how
--                                                    long ago the last request to it left ('': none
--                                                    since the last sync)
--   E chain page items refund                        its chain ended (page, refund: 1 or 0)
--   F domain floor_ms conc rate                      robots.txt Crawl-delay
--   R                                                a page refunded (a chain of no lease)
--   S                                                start requests all added
--   L                                                the start requests are local: a worker's
--                                                    block_private_addresses=auto is off (each
--                                                    reply says so, reply[14])
--   O output position marks                          an output's committed size; marks (with
--                                                    max_items): "p0,p1,...", its size before the
--                                                    batch's items and after each of them
-- Every claim gets a new chain id, so a lease is one claim by one worker: a worker whose
-- lease expired (it was presumed dead) and its requests were claimed again can only find
-- its ids gone. A batch with an E of such a chain is refused as a whole: its E and O are not
-- applied, its chains still held are requeued, and the worker cuts its outputs back to their
-- last committed size. seq makes a call idempotent: a worker that lost the reply and sends
-- the same batch again gets the first reply back, and nothing is applied twice.
--
-- max_items is the whole crawl's and exact: a batch whose items would take the crawl past it
-- keeps only the first ones that fit (each output is committed at the mark after them), and
-- the reply says how many (cut, else -1): the worker cuts its outputs back to that. A worker
-- not in the crawl (its state is gone: see common.lua) is answered {'gone'}.
--
-- Late sends: a request that left well after its claim (a middleware held it) is reported
-- with the worker's next call; the reply to a call that claims from that domain within a gap
-- of it names the domain and how long (ms) until a gap after that send, by the domain's rate
-- here (autothrottle's, if lower): the claiming worker's door waits that long (Pace.door).
--
-- The seen log: the fingerprints each call found new are appended to a short shared list
-- (when more than one worker is alive), and each call returns what other workers appended
-- since the caller's cursor. Workers find most links of a site on many pages, so without it
-- each URL would come to Redis once per worker; with it, a worker knows what the others
-- queued a sync later, and the same add costs neither side anything. It is only a hint: a
-- worker that falls behind the list's end just sends a few more duplicates.
local WANT = tonumber(ARGV[3])
local LEASE_MS = tonumber(ARGV[4])
local AUTOTHROTTLE = ARGV[5] == '1'
local MIN_RATE = tonumber(ARGV[6])
local SEQ = ARGV[8]
local MAX_ITEMS = tonumber(ARGV[10])
local K_REPLIES, K_SLOTS = P .. 'replies', P .. 'slots'

if crawl_gone() then return {'gone'} end
local previous = redis.call('HGET', K_REPLIES, WORKER)
if previous then
  local nl = string.find(previous, '\n', 1, true)
  if string.sub(previous, 1, nl - 1) == SEQ then
    local again = cjson.decode(string.sub(previous, nl + 1))
    again[#again + 1] = tonumber(ARGV[9]) -- (the seen log is a hint: nothing new this time)
    again[#again + 1] = ''
    return again
  end
end
local OPS = cjson.decode(ARGV[7])

-- the seen-set: linear hashing over intsets, each kept under 512 entries (Redis' intset limit)
local seenmeta = redis.call('HMGET', P .. 'seenmeta', 'level', 'split', 'count')
local level = tonumber(seenmeta[1] or '4')
local split = tonumber(seenmeta[2] or '0')
local seen_count = tonumber(seenmeta[3] or '0')
local seen_changed = false

local function mod_decimal(s, m) -- (signed decimal string) mod m, two's complement
  local neg = string.byte(s, 1) == 45
  local r = 0
  for k = neg and 2 or 1, #s do r = (r * 10 + string.byte(s, k) - 48) % m end
  if neg and r ~= 0 then r = m - r end
  return r
end

local function bucket_of(low)
  local b = low % (2 ^ level)
  if b < split then b = low % (2 ^ (level + 1)) end
  return b
end

local function split_one()
  local old = P .. 'seen:' .. split
  local members = redis.call('SMEMBERS', old)
  redis.call('DEL', old)
  local wide = 2 ^ (level + 1)
  local parts = {}
  for _, m in ipairs(members) do
    local b = mod_decimal(m, wide)
    local part = parts[b]
    if not part then part = {}; parts[b] = part end
    part[#part + 1] = m
  end
  for b, part in pairs(parts) do
    for k = 1, #part, 500 do
      redis.call('SADD', P .. 'seen:' .. b, unpack(part, k, math.min(k + 499, #part)))
    end
  end
  split = split + 1
  if split == 2 ^ level then level = level + 1; split = 0 end
end

-- the seen log: entries kept, fingerprints per entry, entries one call returns at most (a
-- worker far behind gets the latest: a call stays short, and old entries matter least)
local LOG_ENTRIES, LOG_FPS, LOG_READ = 128, 256, 64
local logged = {} -- fingerprints this call found new (for the seen log)
local function see(fp, low)
  if redis.call('SADD', P .. 'seen:' .. bucket_of(low), fp) == 0 then return false end
  if #logged < LOG_FPS then logged[#logged + 1] = fp end
  seen_count = seen_count + 1
  seen_changed = true
  if seen_count > 200 * (2 ^ level + split) then split_one() end
  return true
end

-- A domain's gap between requests (ms): its Crawl-delay floor, or its rate's if longer.
local function gap_of(rate, floor)
  if rate > 0 then return math.max(floor, 1000 / rate) end
  return floor
end

-- Per call: what was already done for a domain, and counters written once at the end.
local known, woken, prioritized = {}, {}, {}
local inflight_delta, mine_delta, unfull = {}, {}, {}
local fresh_delta, cont_delta = 0, 0

local function domain(d, conc, rate)
  if known[d] then return end
  known[d] = true
  local dk = P .. 'd:' .. d
  if redis.call('HSETNX', dk, 'conc', conc) == 1 then
    redis.call('HSET', dk, 'crate', rate, 'rate', rate, 'ceil', rate, 'inflight', 0, 'last', 0, 'paused', 0,
      'floor', 0, 'streak', 0, 'step', 0, 'thr', 0, 'gapavg', 0)
  end
end

local function wake_once(d)
  if woken[d] then return end
  woken[d] = true
  wake(d)
end

-- Writes of one kind are gathered and sent as one command per key (each redis.call from
-- Lua costs about as much as the work of a small command): a batch of a few dozen pages
-- makes a few dozen commands rather than hundreds.
local function bulk(cmd, key, args)
  for k = 1, #args, 1000 do redis.call(cmd, key, unpack(args, k, math.min(k + 999, #args))) end
end

local function bulk_read(cmd, key, args)
  local all = {}
  for k = 1, #args, 1000 do
    for _, v in ipairs(redis.call(cmd, key, unpack(args, k, math.min(k + 999, #args)))) do all[#all + 1] = v end
  end
  return all
end

-- This worker's slot of domain d is free (checked and counted after the operations, written
-- before the claims).
local freed, to_free, to_free_domain = {}, {}, {}
local function free_mine(chain, d)
  if freed[chain] then return end -- (a chain's download end and its end, in one call)
  freed[chain] = true
  to_free[#to_free + 1] = chain
  to_free_domain[#to_free] = d
end

local ended = {} -- chains whose lease ends (deleted after the operations)
local function end_lease(chain)
  ended[#ended + 1] = chain
end

local pushes, pushed_domains = {}, {} -- domain -> fresh requests to append to its queue

local function observe(d, ok, throttled, pause_ms, sent_ms)
  local dk = P .. 'd:' .. d
  if pause_ms > 0 then
    local paused = tonumber(redis.call('HGET', dk, 'paused') or '0')
    if NOW + pause_ms > paused then redis.call('HSET', dk, 'paused', NOW + pause_ms) end
  end
  local f = redis.call('HMGET', dk, 'rate', 'crate', 'ceil', 'step', 'streak', 'gapavg', 'floor', 'last', 'sent')
  local rate, crate, ceil, step = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
  local streak, gapavg = tonumber(f[5]), tonumber(f[6])
  if rate == nil then return end
  -- A paced domain's request that left well after its claim (a middleware held it): its
  -- send goes to the next claims of the domain, whose worker keeps a gap after it at its
  -- door (Pace.door). The claims keep their own schedule: a hold and a gap overlap.
  if sent_ms then
    local gap = gap_of(rate, tonumber(f[7]))
    local sent = NOW - math.max(sent_ms, 0)
    if gap > 0 and sent > math.max(tonumber(f[8]), tonumber(f[9]) or 0) + 0.05 * gap then
      redis.call('HSET', dk, 'sent', sent)
    end
  end
  if throttled > 0 then
    redis.call('HINCRBY', dk, 'thr', throttled)
    streak = 0
    if AUTOTHROTTLE then
      for _ = 1, throttled do
        if rate == 0 then
          if gapavg > 0 then rate = 1000 / gapavg else rate = 10 end
          ceil = rate
        end
        step = math.max(ceil * 0.1, MIN_RATE)
        rate = math.max(rate * 0.5, MIN_RATE)
      end
    end
  end
  if rate ~= crate then
    streak = streak + ok
    while streak >= 10 and rate ~= crate do
      streak = streak - 10
      rate = rate + step
      if rate >= ceil then rate = crate end
    end
  elseif throttled == 0 then
    return
  end
  redis.call('HSET', dk, 'rate', rate, 'ceil', ceil, 'step', step, 'streak', streak)
end

local function refund()
  if redis.call('GET', K_BUDGET) and redis.call('INCR', K_BUDGET) > 0 then
    for _, d in ipairs(redis.call('SMEMBERS', K_OVER)) do wake(d) end
    redis.call('DEL', K_OVER)
  end
end

-- 1. Is the batch refused? (an E of a chain this worker no longer holds)
local held = {}
local refused = false
local ends = {}
for _, f in ipairs(OPS) do
  if f[1] == 'E' then ends[#ends + 1] = f[2] end
end
if #ends > 0 then
  for k, rec in ipairs(bulk_read('HMGET', K_LEASE, ends)) do
    held[ends[k]] = rec
    if not rec then refused = true end
  end
end

-- 1b. Does it take the crawl past max_items? (only if every output sent its marks: else its
-- items cannot be cut back, and all are kept)
local cut = -1
if MAX_ITEMS >= 0 and not refused then
  local batch_items, marked, outputs = 0, true, 0
  for _, f in ipairs(OPS) do
    if f[1] == 'E' then batch_items = batch_items + tonumber(f[4])
    elseif f[1] == 'O' then outputs = outputs + 1; marked = marked and f[4] ~= nil and f[4] ~= '' end
  end
  local allowed = math.max(0, MAX_ITEMS - tonumber(redis.call('HGET', P .. 'totals', 'items') or '0'))
  if batch_items > allowed and outputs > 0 and marked then cut = allowed end
end

-- The mark after the first n items ("p0,p1,...": n = 0 is p0).
local function mark(marks, n)
  local k = 0
  for p in string.gmatch(marks, '[^,]+') do
    if k == n then return p end
    k = k + 1
  end
  error('an output has no mark ' .. n)
end

-- 2. Apply it.
local dups = 0
local pages, items = 0, 0
for _, f in ipairs(OPS) do
  local op = f[1]
  if op == 'A' then
    if see(f[2], tonumber(f[3])) or f[5] == 1 then
      local d = f[4]
      domain(d, f[7], f[8])
      local priority = tonumber(f[6])
      if priority == 0 then
        local list = pushes[d]
        if not list then
          list = {}
          pushes[d] = list
          pushed_domains[#pushed_domains + 1] = d
        end
        list[#list + 1] = f[9]
      else -- higher first, in order within one (score: -priority * 2^32 + a sequence number)
        local seq = redis.call('HINCRBY', K_N, 'pseq', 1) % 4294967296
        redis.call('ZADD', P .. 'qp:' .. d, -priority * 4294967296 + seq, seq .. '\t' .. f[9])
        if not prioritized[d] then
          prioritized[d] = true
          redis.call('HSET', P .. 'd:' .. d, 'prio', 1)
        end
      end
      fresh_delta = fresh_delta + 1
      if not woken[d] and redis.call('SISMEMBER', K_OVER, d) == 0 then wake_once(d) end
    else
      dups = dups + 1
    end
  elseif op == 'C' then
    local chain = f[2]
    local rec = redis.call('HGET', K_LEASE, chain)
    if rec then -- (else: the lease expired and the request is queued again already)
      local _, _, old = parse_lease(rec)
      free_mine(chain, old)
      end_lease(chain)
      local d, delay = f[3], tonumber(f[4])
      if f[8] ~= '' and not see(f[8], tonumber(f[9])) and f[10] ~= 1 then
        dups = dups + 1 -- a redirect to a URL the crawl has already seen: the chain ends here
        refund()
      else
        domain(d, f[5], f[6])
        if delay > 0 then
          redis.call('ZADD', K_DELAYED, NOW + delay, d .. '\t' .. chain .. '\t' .. f[7])
        else
          redis.call('RPUSH', P .. 'qc:' .. d, f[7])
          redis.call('SREM', K_OVER, d)
          wake_once(d)
        end
        cont_delta = cont_delta + 1
      end
    end
  elseif op == 'D' then
    free_mine(f[2], f[3])
  elseif op == 'X' then
    observe(f[2], tonumber(f[3]), tonumber(f[4]), tonumber(f[5]), tonumber(f[6]))
  elseif op == 'E' then
    local chain = f[2]
    local rec = held[chain]
    if rec then
      if refused then
        requeue(chain, rec) -- its items are cut from the output: done again
      else
        local _, _, d = parse_lease(rec)
        free_mine(chain, d)
        end_lease(chain)
        pages = pages + tonumber(f[3])
        items = items + tonumber(f[4])
        if f[5] == 1 then refund() end
      end
      held[chain] = nil
    end
  elseif op == 'F' then
    local d = f[2]
    domain(d, f[4], f[5])
    local dk = P .. 'd:' .. d
    if tonumber(f[3]) > tonumber(redis.call('HGET', dk, 'floor')) then
      redis.call('HSET', dk, 'floor', f[3])
    end
  elseif op == 'R' then
    refund()
  elseif op == 'L' then
    redis.call('HSET', K_N, 'local', 1)
  elseif op == 'S' then
    if redis.call('GET', P .. 'start') == WORKER then redis.call('SET', P .. 'start', 'done') end
  elseif op == 'O' then
    if not refused then
      redis.call('HSET', P .. 'outputs', f[2], WORKER .. '\t' .. (cut >= 0 and mark(f[4], cut) or f[3]))
    end
  end
end
for _, d in ipairs(pushed_domains) do bulk('RPUSH', P .. 'q:' .. d, pushes[d]) end
if #to_free > 0 then
  local held_slot = bulk_read('SMISMEMBER', K_SLOTS, to_free)
  local gone = {}
  for k, chain in ipairs(to_free) do
    if held_slot[k] == 1 then
      local d = to_free_domain[k]
      inflight_delta[d] = (inflight_delta[d] or 0) - 1
      mine_delta[d] = (mine_delta[d] or 0) - 1
      unfull[d] = true
      gone[#gone + 1] = chain
    end
  end
  if #gone > 0 then bulk('SREM', K_SLOTS, gone) end
end
if #ended > 0 then
  bulk('HDEL', K_LEASE, ended)
  bulk('SREM', P .. 'wl:' .. WORKER, ended)
end
if seen_changed then
  redis.call('HSET', P .. 'seenmeta', 'level', level, 'split', split, 'count', seen_count)
end
if cut >= 0 then items = cut end
if pages + items > 0 then
  redis.call('HINCRBY', P .. 'totals', 'pages', pages)
  redis.call('HINCRBY', P .. 'totals', 'items', items)
end
local K_MINE = P .. 'wd:' .. WORKER
for d, delta in pairs(inflight_delta) do
  redis.call('HINCRBY', P .. 'd:' .. d, 'inflight', delta)
  redis.call('HINCRBY', K_MINE, d, mine_delta[d])
  if unfull[d] and redis.call('SREM', K_FULL, d) == 1 then redis.call('ZADD', K_READY, 'NX', NOW, d) end
end
redis.call('ZADD', K_WORKERS, NOW + LEASE_MS, WORKER)

-- 3. Retries whose time has come, leases of workers presumed dead, then the claims.
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOW, 'LIMIT', 0, 200)) do
  local a = string.find(entry, '\t', 1, true)
  local b = string.find(entry, '\t', a + 1, true)
  local d = string.sub(entry, 1, a - 1)
  redis.call('RPUSH', P .. 'qc:' .. d, string.sub(entry, b + 1))
  redis.call('ZREM', K_DELAYED, entry)
  redis.call('SREM', K_OVER, d)
  wake(d)
end
expire_leases()

-- A domain's next fresh request: priority above 0 first, then the plain FIFO, then below 0.
local function pop_fresh(d, prio)
  local top
  if prio then
    top = redis.call('ZRANGE', P .. 'qp:' .. d, 0, 0, 'WITHSCORES')
    if #top > 0 and tonumber(top[2]) < 0 then
      redis.call('ZREM', P .. 'qp:' .. d, top[1])
      return string.sub(top[1], string.find(top[1], '\t', 1, true) + 1)
    end
  end
  local json = redis.call('LPOP', P .. 'q:' .. d)
  if json or not prio or #top == 0 then return json end
  redis.call('ZREM', P .. 'qp:' .. d, top[1])
  return string.sub(top[1], string.find(top[1], '\t', 1, true) + 1)
end

-- Each worker takes at most its share of a domain's concurrency (of the workers alive), so
-- that one worker freeing and retaking slots in the same call cannot keep the others out.
-- A domain's fields are read once per call and written back once at the end.
local out = {}
local soonest = -1
local budget = tonumber(redis.call('GET', K_BUDGET) or '-1')
local live = math.max(redis.call('ZCOUNT', K_WORKERS, NOW, '+inf'), 1)
local chain_next, chain_last = 0, -1 -- chain ids, taken from the counter in blocks
local cache = {}

-- Up to n next requests of domain d (ready, under its limits): continuations first.
local function take(d, c, n)
  local got = {}
  if not c.no_cont then
    local list = redis.call('LPOP', P .. 'qc:' .. d, n)
    if list then
      for _, json in ipairs(list) do got[#got + 1] = json end
      cont_delta = cont_delta - #list
    end
    if #got == n then return got end
    c.no_cont = true -- (nothing is added to it during the claims)
  end
  if budget ~= 0 then
    local m = n - #got
    if budget > 0 then m = math.min(m, budget) end
    local fresh = 0
    if c.prio then
      for _ = 1, m do
        local json = pop_fresh(d, true)
        if not json then break end
        got[#got + 1] = json
        fresh = fresh + 1
      end
    else
      local list = redis.call('LPOP', P .. 'q:' .. d, m)
      if list then
        for _, json in ipairs(list) do got[#got + 1] = json end
        fresh = #list
      end
    end
    if fresh > 0 then
      fresh_delta = fresh_delta - fresh
      if budget > 0 then budget = redis.call('DECRBY', K_BUDGET, fresh) end
    end
    if #got == n or fresh < m or budget ~= 0 then return got end
  end
  if redis.call('LLEN', P .. 'q:' .. d) > 0 or (c.prio and redis.call('ZCARD', P .. 'qp:' .. d) > 0) then
    redis.call('SADD', K_OVER, d) -- only fresh requests, and max_pages is spent
  end
  return got
end

local late_sends = {} -- "domain<TAB>ms until a gap after its late send" of the domains claimed here

-- json is leased to this worker under a new chain id (written after the claims).
local new_leases, new_slots = {}, {}
local function lease_out(d, c, json)
  if chain_next > chain_last then
    chain_last = redis.call('HINCRBY', K_N, 'chain', 64)
    chain_next = chain_last - 63
  end
  local chain = tostring(chain_next)
  chain_next = chain_next + 1
  new_leases[#new_leases + 1] = chain
  new_leases[#new_leases + 1] = WORKER .. '\t1\t' .. d .. '\t' .. json
  new_slots[#new_slots + 1] = chain
  if c.last > 0 then c.gapavg = c.gapavg + 0.1 * ((NOW - c.last) - c.gapavg) end
  c.inflight = c.inflight + 1
  c.mine = c.mine + 1
  c.claimed = c.claimed + 1
  c.last = NOW
  out[#out + 1] = chain
  out[#out + 1] = d
  -- one newline-joined reply: an entry this crawl did not write may hold raw newlines
  -- (whitespace to JSON, which never has them inside strings)
  if string.find(json, '\n', 1, true) then json = string.gsub(json, '\n', ' ') end
  out[#out + 1] = json
end

local guard, skip, turn = 0, 0, 0
local limit = 3 * WANT + 100
while #out < 3 * WANT and guard < limit do
  guard = guard + 1
  local top = redis.call('ZRANGE', K_READY, skip, skip, 'WITHSCORES')
  if #top == 0 then break end
  local d, at = top[1], tonumber(top[2])
  if at > NOW + 1 then soonest = at - NOW; break end -- (within 1 ms: the turns taken in this call)
  local c = cache[d]
  if not c then
    local f = redis.call('HMGET', P .. 'd:' .. d, 'conc', 'inflight', 'rate', 'floor', 'last', 'paused', 'gapavg',
      'prio', 'sent')
    if f[1] then
      c = {
        conc = tonumber(f[1]), inflight = tonumber(f[2]), rate = tonumber(f[3]), floor = tonumber(f[4]),
        last = tonumber(f[5]), paused = tonumber(f[6]), gapavg = tonumber(f[7]),
        mine = tonumber(redis.call('HGET', K_MINE, d) or '0'), claimed = 0, prio = f[8] == '1',
        sent = tonumber(f[9]) or 0,
      }
      cache[d] = c
    end
  end
  if not c then
    redis.call('ZREM', K_READY, d) -- its state is gone (cleared): nothing to claim from it
  else
    local gap = gap_of(c.rate, c.floor)
    local ready = math.max(NOW, c.paused)
    if c.last > 0 then ready = math.max(ready, c.last + gap) end
    local share = math.ceil(c.conc / live)
    if c.inflight >= c.conc then
      redis.call('ZREM', K_READY, d)
      redis.call('SADD', K_FULL, d)
    elseif c.mine >= share then
      skip = skip + 1 -- this worker has its share: the domain stays ready for the others
    elseif ready > NOW then
      redis.call('ZADD', K_READY, ready, d)
      if ready <= NOW + 1 then skip = skip + 1 end -- still at the head: look past it
    else
      local json = take(d, c, 1)[1]
      if not json then
        redis.call('ZREM', K_READY, d) -- nothing (more) to hand out: an add wakes it
      else
        lease_out(d, c, json)
        if c.sent + gap > NOW and not c.told then
          c.told = true -- a late send of this domain is still within a gap: the worker waits
          late_sends[#late_sends + 1] = d .. '\t' .. (c.sent + gap - NOW)
        end
        if gap == 0 then
          -- No gap to keep, and no other domain due: more of this one at once, rather than
          -- a turn each (the whole crawl of a single site goes through here).
          local second = redis.call('ZRANGE', K_READY, skip + 1, skip + 1, 'WITHSCORES')
          if #second == 0 or tonumber(second[2]) > NOW + 1 then
            local n = math.min(WANT - #out / 3, c.conc - c.inflight, share - c.mine)
            if n > 0 then
              for _, more in ipairs(take(d, c, n)) do lease_out(d, c, more) end
            end
          end
        end
        if c.inflight >= c.conc then
          redis.call('ZREM', K_READY, d)
          redis.call('SADD', K_FULL, d)
        else
          -- Its next turn: after its gap, and behind every domain already due (round robin;
          -- a thousandth of a millisecond per claim keeps the turns of one call in order).
          turn = turn + 0.001
          redis.call('ZADD', K_READY, math.max(NOW + math.max(gap, turn), c.paused), d)
        end
      end
    end
  end
end
if guard >= limit and soonest < 0 then soonest = 0 end -- more to look at: come back at once
if #new_slots > 0 then
  bulk('HSET', K_LEASE, new_leases)
  bulk('SADD', P .. 'wl:' .. WORKER, new_slots)
  bulk('SADD', K_SLOTS, new_slots)
end
for d, c in pairs(cache) do
  if c.claimed > 0 then
    redis.call('HSET', P .. 'd:' .. d, 'inflight', c.inflight, 'last', c.last, 'gapavg', c.gapavg)
    redis.call('HINCRBY', K_MINE, d, c.claimed)
  end
end
if fresh_delta ~= 0 then redis.call('HINCRBY', K_N, 'fresh', fresh_delta) end
if cont_delta ~= 0 then redis.call('HINCRBY', K_N, 'cont', cont_delta) end
if soonest < 0 then
  local nxt = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if #nxt > 0 then soonest = math.max(tonumber(nxt[2]) - NOW, 0) end
end

local counts = redis.call('HMGET', K_N, 'fresh', 'cont', 'local')
local start = redis.call('GET', P .. 'start') or ''
if start ~= 'done' and start ~= WORKER and (start == '' or not worker_alive(start)) then
  start = 'orphaned' -- the worker adding the start requests left or died before it was done
end
local reply = {
  table.concat(out, '\n'),
  refused and 1 or 0,
  dups,
  soonest,
  tonumber(counts[1] or '0'),
  tonumber(counts[2] or '0'),
  redis.call('HLEN', K_LEASE),
  start,
  budget,
}
local totals = redis.call('HMGET', P .. 'totals', 'items', 'pages')
reply[#reply + 1] = tonumber(totals[1] or '0')
reply[#reply + 1] = tonumber(totals[2] or '0')
reply[#reply + 1] = cut
reply[#reply + 1] = table.concat(late_sends, '\n')
reply[#reply + 1] = counts[3] and 1 or 0
redis.call('HSET', K_REPLIES, WORKER, SEQ .. '\n' .. cjson.encode(reply))

-- The seen log: entries "worker<TAB>fp,fp,..." numbered from 1 (n.seenlog is the last one's).
local K_LOG = P .. 'seenlog'
local cursor = tonumber(ARGV[9])
local last = tonumber(redis.call('HGET', K_N, 'seenlog') or '0')
local news = ''
if last > cursor then
  local first = last - redis.call('LLEN', K_LOG) + 1
  local mine, theirs = WORKER .. '\t', {}
  for _, entry in ipairs(redis.call('LRANGE', K_LOG, math.max(cursor + 1, first, last - LOG_READ + 1) - first, -1)) do
    if string.sub(entry, 1, #mine) ~= mine then theirs[#theirs + 1] = entry end
  end
  news = table.concat(theirs, '\n')
end
if #logged > 0 and live > 1 then
  last = redis.call('HINCRBY', K_N, 'seenlog', 1)
  redis.call('RPUSH', K_LOG, WORKER .. '\t' .. table.concat(logged, ','))
  if last % 32 == 0 then redis.call('LTRIM', K_LOG, -LOG_ENTRIES, -1) end
end
reply[#reply + 1] = last
reply[#reply + 1] = news
return reply
