-- risk_derive.lua: set a round's register-derived risk flags, in a range of its
-- risk buckets, to exactly the given set, in one atomic step, each resident whose
-- flags change journaled. The caller covers all 256 buckets in a few such steps,
-- so no one step keeps the server busy for long however many are flagged.
--
-- Derived flags live in field 'd'..<tail> of the resident's bucket; the flags
-- apply.lua checks (field <tail>) are their union with the manual ones
-- ('m'..<tail>, risk.lua), which this script reads and never changes. A derived
-- flag the register no longer gives is cleared. A version older than the one
-- last applied (two imports racing) changes nothing, so the newest register wins.
--
-- KEYS[1]        {rd:R}:meta       HASH    round state; field 'register' = the
--                                          register version last applied
-- KEYS[2]        {rd:R}:journal    STREAM  accepted changes
-- KEYS[3..]      {rd:R}:risk:<hh>  HASH    consecutive risk buckets, from hh = ARGV[3]
--
-- ARGV[1] who   ARGV[2] register version (integer)   ARGV[3] first bucket (0 .. 255)
-- then two values per flagged resident of these buckets: resident hash (8 bytes),
-- flags (Y/R/I, sorted)
--
-- Journal entry per changed resident: k=risk, flags = the resident's flags now,
-- src = register.
--
-- Returns {status, flagged, changed}: status 1 applied, 0 unknown round, 2 round
-- not open, 3 stale version (for 0, 2, 3 nothing is written); flagged = residents
-- the register flags; changed = residents whose flags in the round changed.

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0, 0, 0} end
if state ~= 'open' then return {2, 0, 0} end
local version = tonumber(ARGV[2])
local applied = tonumber(redis.call('HGET', KEYS[1], 'register') or '-1')
if applied > version then return {3, 0, 0} end
redis.call('HSET', KEYS[1], 'register', ARGV[2])

local function union(a, b)
  local out = ''
  for _, c in ipairs({'I', 'R', 'Y'}) do
    if string.find(a, c, 1, true) or string.find(b, c, 1, true) then out = out .. c end
  end
  return out
end

local first = tonumber(ARGV[3])
local changed = 0
local function settle(rhash, derived)
  local bucket = KEYS[3 + string.byte(rhash, 1) - first]
  local tail = string.sub(rhash, 2)
  if derived == '' then
    redis.call('HDEL', bucket, 'd' .. tail)
  else
    redis.call('HSET', bucket, 'd' .. tail, derived)
  end
  local old = redis.call('HGET', bucket, tail) or ''
  local new = union(derived, redis.call('HGET', bucket, 'm' .. tail) or '')
  if new == old then return end
  if new == '' then
    redis.call('HDEL', bucket, tail)
  else
    redis.call('HSET', bucket, tail, new)
  end
  redis.call('XADD', KEYS[2], '*', 'k', 'risk', 'd', ARGV[1], 'r', rhash, 'flags', new,
    'src', 'register')
  changed = changed + 1
end

local want = {}
local flagged = 0
for i = 4, #ARGV, 2 do
  want[ARGV[i]] = true
  flagged = flagged + 1
end
-- Derived flags the register no longer gives (8-byte fields 'd'..tail).
for b = 0, #KEYS - 3 do
  local prefix = string.char(first + b)
  for _, f in ipairs(redis.call('HKEYS', KEYS[3 + b])) do
    if #f == 8 and string.sub(f, 1, 1) == 'd' then
      local rhash = prefix .. string.sub(f, 2)
      if not want[rhash] then settle(rhash, '') end
    end
  end
end
for i = 4, #ARGV, 2 do settle(ARGV[i], ARGV[i + 1]) end
return {1, flagged, changed}
