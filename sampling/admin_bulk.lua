-- admin_bulk.lua: write many records of one registry and one admin journal entry for
-- them, all or nothing, in one atomic step (a bulk registration: sites, devices).
--
-- KEYS[1]  {sampling}:sites|devices  HASH    the registry written to
-- KEYS[2]  {sampling}:admin          STREAM  the admin journal
--
-- ARGV[1] N, the number of rows
-- then three values per row i (0-based), at ARGV[2+3i] .. ARGV[4+3i]:
--   record id; the record the caller read ('' = none: the id must still be free);
--   the record to write ('' = leave the one there as it is)
-- then the journal entry, field/value pairs (none: nothing is journaled, as when a
-- retried call finds every row already written)
--
-- Returns 0 when written; i (1-based) when row i's record is no longer the one the
-- caller read (nothing written: the caller reads again and decides again).

local n = tonumber(ARGV[1])
-- Check every row before writing any: one stale row and nothing is written.
for i = 0, n - 1 do
  local base = 2 + 3 * i
  local now = redis.call('HGET', KEYS[1], ARGV[base])
  if (now or '') ~= ARGV[base + 1] then return i + 1 end
end
for i = 0, n - 1 do
  local base = 2 + 3 * i
  if ARGV[base + 2] ~= '' then
    redis.call('HSET', KEYS[1], ARGV[base], ARGV[base + 2])
  end
end
local journal = 2 + 3 * n
if #ARGV >= journal then
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, journal))
end
return 0
