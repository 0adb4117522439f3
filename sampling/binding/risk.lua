-- risk.lua: set or clear residents' manual risk flags in a round, each change
-- journaled, in one atomic step.
--
-- A resident's flags in the round (field <tail>, what apply.lua checks) are the
-- union of two sources kept beside it in the same bucket: 'm'..<tail>, flags set
-- by hand (this script), and 'd'..<tail>, flags derived from the register
-- (risk_derive.lua). Clearing a manual flag leaves the register's in place, and
-- a re-derivation never touches a manual one.
--
-- KEYS[1]  {rd:R}:meta        HASH    round state (must exist)
-- KEYS[2]  {rd:R}:journal     STREAM  accepted changes
-- KEYS[3..] {rd:R}:risk:<hh>  HASH    one risk bucket per resident, in ARGV order
--
-- ARGV[1] who   ARGV[2] reason ('' if none)
-- then three values per resident i (0-based), at ARGV[3+3i] .. ARGV[5+3i]:
--   bucket field (the hash's last 7 bytes), manual flags ('' clears them),
--   resident hash (8 bytes)
--
-- Journal entry per resident: flags = the resident's flags now (the union),
-- manual = the manual flags given, src = manual.
--
-- Returns the number of residents written, or -1 for an unknown round (nothing written).

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end

local function union(a, b)
  local out = ''
  for _, c in ipairs({'I', 'R', 'Y'}) do
    if string.find(a, c, 1, true) or string.find(b, c, 1, true) then out = out .. c end
  end
  return out
end

local n = 0
for i = 3, #ARGV, 3 do
  local bucket, tail, manual = KEYS[3 + (i - 3) / 3], ARGV[i], ARGV[i + 1]
  if manual == '' then
    redis.call('HDEL', bucket, 'm' .. tail)
  else
    redis.call('HSET', bucket, 'm' .. tail, manual)
  end
  local flags = union(manual, redis.call('HGET', bucket, 'd' .. tail) or '')
  if flags == '' then
    redis.call('HDEL', bucket, tail)
  else
    redis.call('HSET', bucket, tail, flags)
  end
  redis.call('XADD', KEYS[2], '*', 'k', 'risk', 'd', ARGV[1], 'r', ARGV[i + 2],
    'flags', flags, 'manual', manual, 'reason', ARGV[2], 'src', 'manual')
  n = n + 1
end
return n
