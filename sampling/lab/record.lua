-- record.lua: store a batch of lab results for one round, each with its journal
-- entry, in one atomic step. The same result twice is stored once; a result that
-- disagrees with the stored one is held for review, never overwrites it; a result
-- for a tube no one bound in the round is queued as an orphan. With a holder lab
-- (a lab device reports), a result for a bound tube is stored only when the tube
-- is with that lab: in a box addressed to it whose intake is still open, or
-- scanned in at its intake; any other row is refused and changes nothing.
--
-- KEYS[1]  {rd:R}:meta       HASH    round state (must exist)
-- KEYS[2]  {rd:R}:result     HASH    tube -> packed result
-- KEYS[3]  {rd:R}:review     HASH    "<tube>|<packed>" -> received at (ms)
-- KEYS[4]  {rd:R}:orphans    HASH    tube -> packed result
-- KEYS[5]  {rd:R}:journal    STREAM  accepted changes
-- KEYS[6]  {rd:R}:labcount   HASH    counters
-- KEYS[7]  {rd:R}:due:result ZSET    boxing's tubes awaiting a result (taken off here)
-- KEYS[8]  {rd:R}:positive   HASH    positive pool tube -> residents:ms
-- then four keys per result i (1-based), at KEYS[5+4i] .. KEYS[8+4i], all read only:
--   {rd:R}:t:<tube> STRING tube record, {rd:R}:tbox:<nnn> HASH tube -> box,
--   {rd:R}:b:<B> HASH the tube's box, {rd:R}:in:<B> HASH its lab intake
--   (the tube key again for the last two when the tube is in no box)
--
-- ARGV[1] device id   ARGV[2] '1' for a dry run (classify, write nothing)
-- ARGV[3] holder lab ('' = any: an admin or the CLI reports for every lab)
-- then eight values per result i, at ARGV[4+8(i-1)] .. ARGV[11+8(i-1)]:
--   tube code, packed result, outcome, ct_orf1ab, ct_n, lab, tested_at (ms),
--   the box the tube was in when the caller looked ('' none)
--
-- Returns {'round_not_found'} when the round does not exist; otherwise one
-- status word per result: stored | duplicate | held | orphan, or
-- refused:<why> (other_lab, not_boxed, not_received, tube_moved) for a holder.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'round_not_found'}
end

local device, dry, holder = ARGV[1], ARGV[2] == '1', ARGV[3]
local t = redis.call('TIME')
local now = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
-- A dry run sees its own earlier rows as if they had been written.
local overlay = {}

local function hget(key, field)
  local k = key .. '\0' .. field
  if overlay[k] ~= nil then return overlay[k] end
  return redis.call('HGET', key, field)
end

local function hset(key, field, value)
  if dry then
    overlay[key .. '\0' .. field] = value
  else
    redis.call('HSET', key, field, value)
  end
end

local function journal(kind, a)
  if dry then return end
  redis.call('XADD', KEYS[5], '*', 'k', kind, 'd', device, 'site', '', 'seq', '', 'op', '',
    'tube', ARGV[a], 'r', '', 'x', '', 'outcome', ARGV[a + 2], 'ct_orf1ab', ARGV[a + 3],
    'ct_n', ARGV[a + 4], 'lab', ARGV[a + 5], 'tested_at', ARGV[a + 6])
end

local function hold(a)
  local field = ARGV[a] .. '|' .. ARGV[a + 1]
  if not hget(KEYS[3], field) then
    hset(KEYS[3], field, now)
    journal('result_held', a)
  end
  return 'held'
end

-- The live figures' counters for a newly stored result: outcomes, the re-sample
-- orders a positive or invalid pool makes (one per resident), re-samples resulted;
-- an invalid re-sample makes the resident's next order (binding/apply.lua lets it).
local function counted(rec, a)
  local tube, outcome = ARGV[a], ARGV[a + 2]
  redis.call('HINCRBY', KEYS[6], 'outcome:' .. outcome, 1)
  redis.call('ZREM', KEYS[7], tube)
  local hl, _, _, purpose = struct.unpack('>BBBB', rec)
  local residents = (#rec - hl) / 12
  if purpose == 1 then
    redis.call('HINCRBY', KEYS[6], 'resample_resulted', residents)
    if outcome == 'invalid' then redis.call('HINCRBY', KEYS[6], 'resample_ordered', residents) end
  elseif outcome == 'positive' or outcome == 'invalid' then
    redis.call('HINCRBY', KEYS[6], 'resample_ordered', residents)
    if outcome == 'positive' then
      redis.call('HSET', KEYS[8], tube, residents .. ':' .. now)
    end
  end
end

-- Why the holder lab may not report the bound tube at ARGV[a] (keys from KEYS[k]), or nil.
local function not_held(k, a)
  if holder == '' then return nil end
  local box = ARGV[a + 7]
  if (redis.call('HGET', KEYS[k + 1], ARGV[a]) or '') ~= box then return 'tube_moved' end
  if box == '' then return 'not_boxed' end
  local b_lab, state = unpack(redis.call('HMGET', KEYS[k + 2], 'lab', 'state'))
  if b_lab ~= holder then return 'other_lab' end
  if state == 'intake_closed' and redis.call('HEXISTS', KEYS[k + 3], ARGV[a]) == 0 then
    return 'not_received'
  end
  return nil
end

local out = {}
local n = (#ARGV - 3) / 8
for i = 1, n do
  local a = 4 + 8 * (i - 1)
  local k = 5 + 4 * i
  local tube, packed = ARGV[a], ARGV[a + 1]
  local status
  local home = KEYS[2]
  local kind = 'result'
  local why = nil
  local rec = redis.call('GET', KEYS[k])
  if not rec then
    home, kind = KEYS[4], 'result_orphan'
  else
    why = not_held(k, a)
  end
  local existing = hget(home, tube)
  if why then
    status = 'refused:' .. why
  elseif not existing then
    hset(home, tube, packed)
    journal(kind, a)
    status = home == KEYS[2] and 'stored' or 'orphan'
    if status == 'stored' and not dry then counted(rec, a) end
  elseif existing == packed then
    status = 'duplicate'
  else
    status = hold(a)
  end
  if not dry and not why then redis.call('HINCRBY', KEYS[6], status, 1) end
  out[#out + 1] = status
end
return out
