-- resolve.lua: a supervisor's decision on a held (conflicting) result, applied and
-- journaled in one atomic step. The decision covers exactly the held values the
-- supervisor saw; a value held after they looked stays held for the next decision.
--
-- KEYS[1]  {rd:R}:meta       HASH    round state (must exist)
-- KEYS[2]  {rd:R}:result     HASH    tube -> packed result
-- KEYS[3]  {rd:R}:orphans    HASH    tube -> packed result (tubes no one bound)
-- KEYS[4]  {rd:R}:review     HASH    "<tube>|<packed>" -> received at (ms)
-- KEYS[5]  {rd:R}:journal    STREAM  accepted changes
-- KEYS[6]  {rd:R}:labcount   HASH    counters
-- KEYS[7]  {rd:R}:t:<tube>   STRING  the tube's record (read only: bound or orphan)
--
-- ARGV[1] device id   ARGV[2] decision: keep | held | retest   ARGV[3] reason
-- ARGV[4] tube        ARGV[5] the stored packed result the supervisor saw ('' if none)
-- ARGV[6] the packed result chosen ('' for retest; the stored one for keep)
-- ARGV[7..] the held packed values the decision covers (at least one)
--
-- Returns {'ok'} | {'round_not_found'} | {'not_held', packed} (a value is no longer
-- held: decided already) | {'result_changed'} (the stored result is not the one seen)
-- | {'bad_choice'} (a chosen value that is neither stored nor held).

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'round_not_found'}
end
local device, decision, reason, tube = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local seen, chosen = ARGV[5], ARGV[6]
local home = KEYS[2]
if redis.call('EXISTS', KEYS[7]) == 0 then home = KEYS[3] end

local covered = {}
for i = 7, #ARGV do
  if redis.call('HEXISTS', KEYS[4], tube .. '|' .. ARGV[i]) == 0 then
    return {'not_held', ARGV[i]}
  end
  covered[ARGV[i]] = true
end
local stored = redis.call('HGET', home, tube) or ''
if stored ~= seen then
  return {'result_changed'}
end
if decision == 'keep' and chosen ~= stored then return {'bad_choice'} end
if decision == 'held' and not covered[chosen] then return {'bad_choice'} end
if decision == 'retest' and chosen ~= '' then return {'bad_choice'} end

if decision == 'held' then
  redis.call('HSET', home, tube, chosen)
elseif decision == 'retest' then
  redis.call('HDEL', home, tube)
end
for i = 7, #ARGV do
  redis.call('HDEL', KEYS[4], tube .. '|' .. ARGV[i])
end
redis.call('HINCRBY', KEYS[6], 'resolved_' .. decision, 1)

-- The entry carries the tube's result after the decision (empty for a re-test), so
-- the archive's "last result entry of a tube wins" reads the decision as it reads
-- a result.
local outcome, ct1, ctn, lab, at = '', '', '', '', ''
if chosen ~= '' then
  outcome, ct1, ctn, lab, at = string.match(chosen, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
end
redis.call('XADD', KEYS[5], '*', 'k', 'result_resolved', 'd', device, 'site', '', 'seq', '',
  'op', '', 'tube', tube, 'r', '', 'x', '', 'decision', decision, 'reason', reason,
  'outcome', outcome, 'ct_orf1ab', ct1, 'ct_n', ctn, 'lab', lab, 'tested_at', at,
  'was', stored, 'held', table.concat(ARGV, ';', 7))
return {'ok'}
