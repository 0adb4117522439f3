-- record.lua: store a batch of lab results for one round, each with its journal
-- entry, in one atomic step. The same result twice is stored once; a result that
-- disagrees with the stored one is held for review, never overwrites it; a result
-- for a tube no one bound in the round is queued as an orphan.
--
-- KEYS[1]  {rd:R}:meta       HASH    round state (must exist)
-- KEYS[2]  {rd:R}:result     HASH    tube -> packed result
-- KEYS[3]  {rd:R}:review     HASH    "<tube>|<packed>" -> received at (ms)
-- KEYS[4]  {rd:R}:orphans    HASH    tube -> packed result
-- KEYS[5]  {rd:R}:journal    STREAM  accepted changes
-- KEYS[6]  {rd:R}:labcount   HASH    counters
-- KEYS[7]  {rd:R}:due:result ZSET    boxing's tubes awaiting a result (taken off here)
-- KEYS[8]  {rd:R}:positive   HASH    positive pool tube -> residents:ms
-- KEYS[8+i] {rd:R}:t:<tube>  STRING  tube record of result i (1-based; read only)
--
-- ARGV[1] device id   ARGV[2] '1' for a dry run (classify, write nothing)
-- then seven values per result i, at ARGV[3+7(i-1)] .. ARGV[9+7(i-1)]:
--   tube code, packed result, outcome, ct_orf1ab, ct_n, lab, tested_at (ms)
--
-- Returns {'round_not_found'} when the round does not exist; otherwise one
-- status word per result: stored | duplicate | held | orphan.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'round_not_found'}
end

local device, dry = ARGV[1], ARGV[2] == '1'
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

local out = {}
local n = (#ARGV - 2) / 7
for i = 1, n do
  local a = 3 + 7 * (i - 1)
  local tube, packed = ARGV[a], ARGV[a + 1]
  local status
  local home = KEYS[2]
  local kind = 'result'
  local rec = redis.call('GET', KEYS[8 + i])
  if not rec then
    home, kind = KEYS[4], 'result_orphan'
  end
  local existing = hget(home, tube)
  if not existing then
    hset(home, tube, packed)
    journal(kind, a)
    status = home == KEYS[2] and 'stored' or 'orphan'
    if status == 'stored' and not dry then counted(rec, a) end
  elseif existing == packed then
    status = 'duplicate'
  else
    status = hold(a)
  end
  if not dry then redis.call('HINCRBY', KEYS[6], status, 1) end
  out[#out + 1] = status
end
return out
