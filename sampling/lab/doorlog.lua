-- doorlog.lua: what a grid team found at one household's door, for each of the
-- household's residents, with one journal entry per resident, in one atomic step.
-- A retried operation (same op id, same payload) is answered again and changes
-- nothing; the same op id with another payload is refused.
--
-- KEYS[1]  {rd:R}:meta       HASH    round state (must exist)
-- KEYS[2]  {rd:R}:door       HASH    rhash (8 bytes) -> "outcome|at ms|device|tube"
-- KEYS[3]  {rd:R}:journal    STREAM  accepted changes
-- KEYS[4]  {rd:R}:doorcount  HASH    outcome -> residents recorded with it
-- KEYS[5]  {rd:R}:doorops    HASH    op id -> payload fingerprint
--
-- ARGV[1] device id  ARGV[2] site  ARGV[3] op id  ARGV[4] payload fingerprint
-- ARGV[5] outcome    ARGV[6] tube ('' unless sampled)  ARGV[7] grid
-- ARGV[8..] the residents' keyed hashes (8 raw bytes each)
--
-- Returns {'round_not_found'} | {'op_reused'} | {'replayed', n} | {'ok', n}

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'round_not_found'}
end
local device, site, op, print_, outcome, tube, grid =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local seen = redis.call('HGET', KEYS[5], device .. '|' .. op)
if seen then
  if seen ~= print_ then return {'op_reused'} end
  return {'replayed', #ARGV - 7}
end
local t = redis.call('TIME')
local now = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
for i = 8, #ARGV do
  local rh = ARGV[i]
  local before = redis.call('HGET', KEYS[2], rh)
  if before then
    local old = string.match(before, '^([^|]*)')
    redis.call('HINCRBY', KEYS[4], old, -1)
  end
  redis.call('HSET', KEYS[2], rh, outcome .. '|' .. now .. '|' .. device .. '|' .. tube)
  redis.call('HINCRBY', KEYS[4], outcome, 1)
  redis.call('XADD', KEYS[3], '*', 'k', 'door', 'd', device, 'site', site, 'seq', '',
    'op', op, 'tube', tube, 'r', rh, 'x', outcome, 'grid', grid)
end
redis.call('HSET', KEYS[5], device .. '|' .. op, print_)
return {'ok', #ARGV - 7}
