-- risk.lua: set or clear residents' risk flags in a round, each change journaled,
-- in one atomic step.
--
-- KEYS[1]  {rd:R}:meta        HASH    round state (must exist)
-- KEYS[2]  {rd:R}:journal     STREAM  accepted changes
-- KEYS[3..] {rd:R}:risk:<hh>  HASH    one risk bucket per resident, in ARGV order
--
-- ARGV[1] who   ARGV[2] reason ('' if none)
-- then three values per resident i (0-based), at ARGV[3+3i] .. ARGV[5+3i]:
--   bucket field (the hash's last 7 bytes), flags ('' clears them), resident hash (8 bytes)
--
-- Returns the number of residents written, or -1 for an unknown round (nothing written).

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = 0
for i = 3, #ARGV, 3 do
  local bucket = KEYS[3 + (i - 3) / 3]
  if ARGV[i + 1] == '' then
    redis.call('HDEL', bucket, ARGV[i])
  else
    redis.call('HSET', bucket, ARGV[i], ARGV[i + 1])
  end
  redis.call('XADD', KEYS[2], '*', 'k', 'risk', 'd', ARGV[1], 'r', ARGV[i + 2],
    'flags', ARGV[i + 1], 'reason', ARGV[2])
  n = n + 1
end
return n
