-- One round trip of a worker with the shared frontier: apply its batch of operations (in
-- the order it made them), then claim up to WANT requests of domains that may send now.
-- ARGV: prefix, worker, want, lease_ms, autothrottle (0/1), min_rate, ops (a JSON array of arrays:
-- one packed argument costs the worker far less than thousands; fingerprints and chains are
-- strings, since Lua numbers are doubles). Operations (a letter, then its fields):
--   A parent fp low domain force head conc rate json   a new request (deduped on fp)
--   C chain domain delay_ms conc rate json             the chain goes on (retry, redirect hop)
--   D chain                                            its download ended: its slot is free
--   X domain ok throttled pause_ms                     answers seen (AIMD) and a Retry-After pause
--   E chain page items                                 its chain ended (page: 1 or 0)
--   F domain floor_ms conc rate                        robots.txt Crawl-delay
--   R                                                  a page refunded to max_pages
--   S                                                  start requests all added
--   O output position                                  an output's committed size
-- A batch with an E of a chain this worker no longer holds (its lease expired: it was
-- presumed dead) is refused as a whole: its E and O are not applied, the batch's chains
-- still held are requeued, and the worker cuts its outputs back to their last committed size.
local WANT = tonumber(ARGV[3])
local LEASE_MS = tonumber(ARGV[4])
local AUTOTHROTTLE = ARGV[5] == '1'
local MIN_RATE = tonumber(ARGV[6])
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

local function see(fp, low)
  if redis.call('SADD', P .. 'seen:' .. bucket_of(low), fp) == 0 then return false end
  seen_count = seen_count + 1
  seen_changed = true
  if seen_count > 200 * (2 ^ level + split) then split_one() end
  return true
end

local function domain(d, conc, rate)
  local dk = P .. 'd:' .. d
  if redis.call('HSETNX', dk, 'conc', conc) == 1 then
    redis.call('HSET', dk, 'crate', rate, 'rate', rate, 'ceil', rate, 'inflight', 0, 'last', 0, 'paused', 0,
      'floor', 0, 'streak', 0, 'step', 0, 'thr', 0, 'gapavg', 0)
  end
end

local function observe(d, ok, throttled, pause_ms)
  local dk = P .. 'd:' .. d
  if pause_ms > 0 then
    local paused = tonumber(redis.call('HGET', dk, 'paused') or '0')
    if NOW + pause_ms > paused then redis.call('HSET', dk, 'paused', NOW + pause_ms) end
  end
  local f = redis.call('HMGET', dk, 'rate', 'crate', 'ceil', 'step', 'streak', 'gapavg')
  local rate, crate, ceil, step = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
  local streak, gapavg = tonumber(f[5]), tonumber(f[6])
  if rate == nil then return end
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
  local left = redis.call('GET', K_BUDGET)
  if left and redis.call('INCR', K_BUDGET) > 0 then
    for _, d in ipairs(redis.call('SMEMBERS', K_OVER)) do wake(d) end
    redis.call('DEL', K_OVER)
  end
end

-- 1. Is the batch refused? (an E of a chain this worker does not hold)
local refused = false
for _, f in ipairs(OPS) do
  if f[1] == 'E' and not is_ours(redis.call('HGET', K_LEASE, f[2])) then refused = true end
end

-- 2. Apply it.
local dups, dropped = 0, 0
local pages, items = 0, 0
for _, f in ipairs(OPS) do
  local op = f[1]
  if op == 'A' then
    local parent = f[2]
    local owner = parent ~= '' and redis.call('HGET', K_LEASE, parent)
    if owner and not is_ours(owner) then
      dropped = dropped + 1 -- found by a page whose lease another worker holds now
    elseif see(f[3], tonumber(f[4])) or f[6] == 1 then
      local d = f[5]
      domain(d, f[8], f[9])
      if f[7] == 1 then
        redis.call('LPUSH', P .. 'q:' .. d, f[10])
      else
        redis.call('RPUSH', P .. 'q:' .. d, f[10])
      end
      redis.call('HINCRBY', K_N, 'fresh', 1)
      if redis.call('SISMEMBER', K_OVER, d) == 0 then wake(d) end
    else
      dups = dups + 1
    end
  elseif op == 'C' then
    local chain = f[2]
    local rec = redis.call('HGET', K_LEASE, chain)
    if is_ours(rec) then
      local _, slot, old = parse_lease(rec)
      if slot == '1' then free_slot(old, WORKER) end
      redis.call('HDEL', K_LEASE, chain)
      redis.call('ZREM', K_LEASES, chain)
      local d, delay = f[3], tonumber(f[4])
      domain(d, f[5], f[6])
      if delay > 0 then
        redis.call('ZADD', K_DELAYED, NOW + delay, d .. '\t' .. chain .. '\t' .. f[7])
      else
        redis.call('RPUSH', P .. 'qc:' .. d, chain .. '\t' .. f[7])
        redis.call('SREM', K_OVER, d)
        wake(d)
      end
      redis.call('HINCRBY', K_N, 'cont', 1)
    else
      dropped = dropped + 1
    end
  elseif op == 'D' then
    local chain = f[2]
    local rec = redis.call('HGET', K_LEASE, chain)
    if is_ours(rec) then
      local w, slot, d, json = parse_lease(rec)
      if slot == '1' then
        redis.call('HSET', K_LEASE, chain, w .. '\t0\t' .. d .. '\t' .. json)
        free_slot(d, w)
      end
    end
  elseif op == 'X' then
    observe(f[2], tonumber(f[3]), tonumber(f[4]), tonumber(f[5]))
  elseif op == 'E' then
    local chain = f[2]
    local rec = redis.call('HGET', K_LEASE, chain)
    if is_ours(rec) then
      if refused then
        requeue(chain, rec)
      else
        local _, slot, d = parse_lease(rec)
        if slot == '1' then free_slot(d, WORKER) end
        redis.call('HDEL', K_LEASE, chain)
        redis.call('ZREM', K_LEASES, chain)
        pages = pages + tonumber(f[3])
        items = items + tonumber(f[4])
      end
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
  elseif op == 'S' then
    redis.call('SET', P .. 'start', 'done')
  elseif op == 'O' then
    if not refused then redis.call('HSET', P .. 'outputs', f[2], WORKER .. '\t' .. f[3]) end
  end
end
if seen_changed then
  redis.call('HSET', P .. 'seenmeta', 'level', level, 'split', split, 'count', seen_count)
end
if pages + items > 0 then
  redis.call('HINCRBY', P .. 'totals', 'pages', pages)
  redis.call('HINCRBY', P .. 'totals', 'items', items)
end
redis.call('ZADD', K_WORKERS, NOW + LEASE_MS, WORKER)

-- 3. Retries whose time has come, leases of workers presumed dead, then the claims.
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOW, 'LIMIT', 0, 200)) do
  local a = string.find(entry, '\t', 1, true)
  local d = string.sub(entry, 1, a - 1)
  redis.call('RPUSH', P .. 'qc:' .. d, string.sub(entry, a + 1))
  redis.call('ZREM', K_DELAYED, entry)
  redis.call('SREM', K_OVER, d)
  wake(d)
end
expire_leases()

-- Each worker takes at most its share of a domain's concurrency (of the workers alive), so
-- that one worker freeing and retaking slots in the same call cannot keep the others out.
local out = {}
local soonest = -1
local budget = tonumber(redis.call('GET', K_BUDGET) or '-1')
local live = math.max(redis.call('ZCOUNT', K_WORKERS, NOW, '+inf'), 1)
local K_MINE = P .. 'wd:' .. WORKER
local guard, skip = 0, 0
while #out < 3 * WANT and guard < 3 * WANT + 20 do
  guard = guard + 1
  local top = redis.call('ZRANGE', K_READY, skip, skip, 'WITHSCORES')
  if #top == 0 then break end
  local d, at = top[1], tonumber(top[2])
  if at > NOW then soonest = at - NOW; break end
  local dk = P .. 'd:' .. d
  local f = redis.call('HMGET', dk, 'conc', 'inflight', 'rate', 'floor', 'last', 'paused', 'gapavg')
  local mine = tonumber(redis.call('HGET', K_MINE, d) or '0')
  local conc, inflight, rate, floor = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
  local last, paused, gapavg = tonumber(f[5]), tonumber(f[6]), tonumber(f[7])
  local gap = floor
  if rate > 0 then gap = math.max(gap, 1000 / rate) end
  local ready = math.max(NOW, paused)
  if last > 0 then ready = math.max(ready, last + gap) end
  if inflight >= conc then
    redis.call('ZREM', K_READY, d)
    redis.call('SADD', K_FULL, d)
  elseif mine >= math.ceil(conc / live) then
    skip = skip + 1 -- this worker has its share: the domain stays ready for the others
  elseif ready > NOW then
    redis.call('ZADD', K_READY, ready, d)
  else
    local chain, json
    local entry = redis.call('LPOP', P .. 'qc:' .. d)
    if entry then
      local a = string.find(entry, '\t', 1, true)
      chain, json = string.sub(entry, 1, a - 1), string.sub(entry, a + 1)
      redis.call('HINCRBY', K_N, 'cont', -1)
    elseif budget == 0 then
      if redis.call('LLEN', P .. 'q:' .. d) > 0 then redis.call('SADD', K_OVER, d) end
      redis.call('ZREM', K_READY, d)
    else
      json = redis.call('LPOP', P .. 'q:' .. d)
      if json then
        redis.call('HINCRBY', K_N, 'fresh', -1)
        if budget > 0 then budget = redis.call('DECR', K_BUDGET) end
        chain = tostring(redis.call('HINCRBY', K_N, 'chain', 1))
      end
    end
    if json then
      redis.call('HSET', K_LEASE, chain, WORKER .. '\t1\t' .. d .. '\t' .. json)
      redis.call('ZADD', K_LEASES, NOW + LEASE_MS, chain)
      if last > 0 then gapavg = gapavg + 0.1 * ((NOW - last) - gapavg) end
      inflight = inflight + 1
      redis.call('HSET', dk, 'inflight', inflight, 'last', NOW, 'gapavg', gapavg)
      redis.call('HINCRBY', K_MINE, d, 1)
      if redis.call('LLEN', P .. 'qc:' .. d) + redis.call('LLEN', P .. 'q:' .. d) == 0 then
        redis.call('ZREM', K_READY, d)
      elseif inflight >= conc then
        redis.call('ZREM', K_READY, d)
        redis.call('SADD', K_FULL, d)
      else
        redis.call('ZADD', K_READY, math.max(NOW + gap, paused), d)
      end
      out[#out + 1] = chain
      out[#out + 1] = d
      -- one newline-joined reply: an entry this crawl did not write may hold raw newlines
      -- (whitespace to JSON, which never has them inside strings)
      if string.find(json, '\n', 1, true) then json = string.gsub(json, '\n', ' ') end
      out[#out + 1] = json
    elseif not entry then
      redis.call('ZREM', K_READY, d)
    end
  end
end
if soonest < 0 then
  local nxt = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
  if #nxt > 0 then soonest = math.max(tonumber(nxt[2]) - NOW, 0) end
end

local counts = redis.call('HMGET', K_N, 'fresh', 'cont')
local start = redis.call('GET', P .. 'start') or ''
if start ~= 'done' and start ~= WORKER and (start == '' or not worker_alive(start)) then
  start = 'orphaned' -- the worker adding the start requests left or died before it was done
end
return {
  table.concat(out, '\n'),
  refused and 1 or 0,
  dups + dropped,
  soonest,
  tonumber(counts[1] or '0'),
  tonumber(counts[2] or '0'),
  redis.call('ZCARD', K_LEASES),
  start,
  budget,
  tonumber(redis.call('HGET', P .. 'totals', 'items') or '0'),
}
