-- apply.lua: apply one device's binding operations in order, each exactly once,
-- each with its journal entry, all in one atomic step.
--
-- KEYS[1]  {rd:R}:meta             HASH   round state and default pool
-- KEYS[2]  {rd:R}:count            HASH   counters
-- KEYS[3]  {rd:R}:journal          STREAM accepted changes
-- KEYS[4]  {rd:R}:ops:<device>     STRING 8-byte op record per sequence number
-- KEYS[5]  {rd:R}:revoked          SET    revoked device ids
-- KEYS[6]  {rd:R}:spm              HASH   minute (epoch s) -> scans accepted
-- KEYS[7]  {rd:R}:dev:seen         ZSET   device -> last operation (ms)
-- KEYS[8]  {rd:R}:dev:site         HASH   device -> site
-- KEYS[9]  {rd:R}:dev:gap          HASH   device -> sequence numbers missing below its highest
-- KEYS[10] {rd:R}:result           HASH   tube -> packed lab result (lab; read only)
-- KEYS[11] {rd:R}:lost             HASH   tube -> intake condition (boxing; read only)
-- then three keys per operation i (0-based), at KEYS[12+3i] .. KEYS[14+3i]:
--   tube record {rd:R}:t:<tube>, resident bucket {rd:R}:res:<hhhh>,
--   risk bucket {rd:R}:risk:<hh> (the tube key again where an op has no resident)
--
-- ARGV[1] device id   ARGV[2] device site   ARGV[3] how far past its highest
-- sequence number a device may jump   ARGV[4] highest sequence number allowed
-- then ten values per operation i, at ARGV[5+10i] .. ARGV[14+10i]:
--   seq, fingerprint (6 bytes: op-id hash 3, payload hash 3), op id,
--   kind (open|scan|undo|close), tube code, tube serial, capacity,
--   purpose (0 pool, 1 re-sample), resident hash (8 bytes, '' when none),
--   clock: the trusted device time in Unix ms, '' (none given) or 'u' (given but
--   not trusted); times are then the server's, and 'u' is journalled as clk=u,
-- and for `open` the capacity field is "<capacity>:<claim>" where claim is 1
-- when this round holds the tube's ever-opened claim, 0 when another round does.
--
-- Returns {'revoked'} for a revoked device, {'round_not_found'} for an unknown
-- round (nothing written); otherwise four values per op:
--   status word, aux (count in the tube after the op), closed (1 when the op
--   left the tube closed), replayed (1 when answered from the op record).
--
-- A re-sample binding (field 'r'..tail) holds the re-sample tube's code: a
-- resident is re-sampled again only when that tube's result is invalid, or it has
-- no result and intake recorded it missing or damaged (KEYS[10], KEYS[11]).
--
-- Op record (8 bytes at (seq-1)*8): fingerprint(6) status-index(1) aux(1),
-- aux's high bit = closed. Refusals are recorded too, so a retry answers the same;
-- seq_out_of_range, seq_conflict and operation_reused are not, they change nothing.

local STATUS = {'ok', 'round_closed', 'round_not_found', 'tube_used', 'tube_not_found',
  'tube_other_site', 'tube_closed', 'tube_full', 'tube_empty', 'resident_already_sampled',
  'risk_needs_single_tube', 'undo_not_last', 'resample_without_binding', 'tube_boxed'}
local INDEX = {}
for i, w in ipairs(STATUS) do INDEX[w] = i end

if redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 1 then
  return {'revoked'}
end

local device, site = ARGV[1], ARGV[2]
local ahead, seq_max = tonumber(ARGV[3]), tonumber(ARGV[4])
local round_state = redis.call('HGET', KEYS[1], 'state')
-- An unknown round changes nothing: no op record, no counter, no key of its own.
if round_state == false then return {'round_not_found'} end
local highest = math.floor(redis.call('STRLEN', KEYS[4]) / 8)
local t = redis.call('TIME')
local now = tonumber(t[1])
local now_ms = now * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Scans accepted and sequence numbers left missing by this batch, for the live figures.
-- spm: scans accepted per minute of their time (the device's when trusted).
local spm, gap, recorded = {}, 0, false
-- Counters and tube records are kept in Lua while the batch runs and written
-- once at the end: a batch of 100 scans into 10 tubes is 10 SETs, not 100.
local counts = {}
local function bump(name, n) counts[name] = (counts[name] or 0) + n end
local recs, dirty = {}, {}
local function get_rec(tkey)
  local rec = recs[tkey]
  if rec == nil then
    rec = redis.call('GET', tkey) or false
    recs[tkey] = rec
  end
  return rec
end
local function put_rec(tkey, rec)
  recs[tkey] = rec
  dirty[tkey] = true
end

-- Tube record header: hl(1) state(1) capacity(1) purpose(1) opened(4) closed(4)
-- then "site\0device"; members follow from hl+1, 12 bytes each (hash 8, time 4).
local function header(rec)
  local hl, state, cap, purpose, opened, closed = struct.unpack('>BBBBI4I4', rec)
  local names = string.sub(rec, 13, hl)
  local nul = string.find(names, '\0', 1, true)
  return hl, state, cap, purpose, opened, closed, string.sub(names, 1, nul - 1)
end

local function with_state(rec, hl, state, closed_at)
  local _, _, cap, purpose, opened = struct.unpack('>BBBBI4I4', rec)
  return struct.pack('>BBBBI4I4', hl, state, cap, purpose, opened, closed_at)
    .. string.sub(rec, 13)
end

-- A re-sample attempt ended without a usable result: invalid, or lost at intake
-- (a result, when there is one, decides over the intake record).
local function failed(prev_tube)
  local res = redis.call('HGET', KEYS[10], prev_tube)
  if res then return string.sub(res, 1, 8) == 'invalid|' end
  return redis.call('HEXISTS', KEYS[11], prev_tube) == 1
end

-- The operation's time (seconds) and its clock field, set before each apply():
-- the device's time when trusted, else the server's.
local op_at, op_clock = now, ''

local function journal(kind, seq, op, tube, resident, extra)
  if op_clock == '' then
    redis.call('XADD', KEYS[3], '*', 'k', kind, 'd', device, 'site', site, 'seq', seq,
      'op', op, 'tube', tube, 'r', resident, 'x', extra)
  else
    redis.call('XADD', KEYS[3], '*', 'k', kind, 'd', device, 'site', site, 'seq', seq,
      'op', op, 'tube', tube, 'r', resident, 'x', extra,
      op_clock == 'u' and 'clk' or 'at', op_clock)
  end
end

local function apply(seq, op, kind, tkey, rkey, xkey, tube, serial, cap_arg, purpose, rhash)
  if round_state ~= 'open' then return 'round_closed', 0, 0 end
  if kind == 'open' then
    local colon = string.find(cap_arg, ':', 1, true)
    local cap = tonumber(string.sub(cap_arg, 1, colon - 1))
    if string.sub(cap_arg, colon + 1) ~= '1' then return 'tube_used', 0, 0 end
    if get_rec(tkey) then return 'tube_used', 0, 0 end
    local names = site .. '\0' .. device
    local hl = 12 + #names
    put_rec(tkey, struct.pack('>BBBBI4I4', hl, 0, cap, tonumber(purpose), op_at, 0) .. names)
    bump('tubes_opened', 1)
    journal('open', seq, op, tube, '', tostring(cap) .. ':' .. purpose)
    return 'ok', 0, 0
  end
  local rec = get_rec(tkey)
  if not rec then return 'tube_not_found', 0, 0 end
  local hl, state, cap, tpurpose, _, _, tsite = header(rec)
  if tsite ~= site then return 'tube_other_site', 0, 0 end
  if state == 2 then return 'tube_boxed', 0, 0 end
  local n = (#rec - hl) / 12
  if kind == 'scan' then
    if state ~= 0 then return 'tube_closed', n, 1 end
    if n >= cap then return 'tube_full', n, 1 end
    local tail = string.sub(rhash, 3)
    if tpurpose == 1 then
      if not redis.call('HGET', rkey, tail) then return 'resample_without_binding', n, 0 end
      local prev = redis.call('HGET', rkey, 'r' .. tail)
      if prev and not failed(prev) then return 'resident_already_sampled', n, 0 end
      redis.call('HSET', rkey, 'r' .. tail, tube)
    else
      if cap > 1 and redis.call('HEXISTS', xkey, string.sub(rhash, 2)) == 1 then
        return 'risk_needs_single_tube', n, 0
      end
      if redis.call('HSETNX', rkey, tail, serial) == 0 then
        return 'resident_already_sampled', n, 0
      end
    end
    n = n + 1
    local closed = 0
    if n >= cap then
      rec = with_state(rec, hl, 1, op_at)
      closed = 1
      bump('tubes_closed', 1)
    end
    put_rec(tkey, rec .. rhash .. struct.pack('>I4', op_at))
    bump(tpurpose == 1 and 'resampled' or 'bound', 1)
    local minute = op_at - op_at % 60
    spm[minute] = (spm[minute] or 0) + 1
    journal('scan', seq, op, tube, rhash, tostring(n))
    if closed == 1 then journal('close', seq, op, tube, '', tostring(n) .. ':full') end
    return 'ok', n, closed
  elseif kind == 'undo' then
    if n == 0 then return 'tube_empty', 0, 0 end
    local last = string.sub(rec, #rec - 11, #rec - 4)
    if last ~= rhash then return 'undo_not_last', n, state end
    local tail = string.sub(rhash, 3)
    redis.call('HDEL', rkey, tpurpose == 1 and ('r' .. tail) or tail)
    if state == 1 then bump('tubes_closed', -1) end
    put_rec(tkey, with_state(string.sub(rec, 1, #rec - 12), hl, 0, 0))
    bump(tpurpose == 1 and 'resampled' or 'bound', -1)
    bump('undone', 1)
    journal('undo', seq, op, tube, rhash, tostring(n - 1))
    return 'ok', n - 1, 0
  elseif kind == 'close' then
    if state ~= 0 then return 'tube_closed', n, 1 end
    if n == 0 then return 'tube_empty', 0, 0 end
    put_rec(tkey, with_state(rec, hl, 1, op_at))
    bump('tubes_closed', 1)
    journal('close', seq, op, tube, '', tostring(n) .. ':hand')
    return 'ok', n, 1
  end
  return redis.error_reply('unknown op kind ' .. kind)
end

local out = {}
local nops = (#ARGV - 4) / 10
-- Every operation is checked for form before the first write: Redis does not
-- roll a script back, so an error halfway would leave half a batch applied.
local KINDS = {open = true, scan = true, undo = true, close = true}
if nops ~= math.floor(nops) or #KEYS ~= 11 + 3 * nops then
  return redis.error_reply('ERR apply.lua: ARGV/KEYS do not hold whole operations')
end
for i = 0, nops - 1 do
  local a = 5 + 10 * i
  local kind, fp, rh, clk = ARGV[a + 3], ARGV[a + 1], ARGV[a + 8], ARGV[a + 9]
  if not KINDS[kind] or #fp ~= 6 or (rh ~= '' and #rh ~= 8)
      or not (clk == '' or clk == 'u' or string.find(clk, '^%d+$'))
      or (kind == 'open' and not string.find(ARGV[a + 6], '^%d+:[01]$')) then
    return redis.error_reply('ERR apply.lua: malformed operation ' .. (i + 1))
  end
end
for i = 0, nops - 1 do
  local a = 5 + 10 * i
  local k = 12 + 3 * i
  local seq = tonumber(ARGV[a])
  local fp = ARGV[a + 1]
  local status, aux, closed, replayed = nil, 0, 0, 0
  if seq == nil or seq < 1 or seq > seq_max or seq > highest + ahead then
    status = 'seq_out_of_range'
  else
    local offset = (seq - 1) * 8
    local old = redis.call('GETRANGE', KEYS[4], offset, offset + 7)
    if #old == 8 and old ~= '\0\0\0\0\0\0\0\0' then
      if string.sub(old, 1, 3) ~= string.sub(fp, 1, 3) then
        status = 'seq_conflict'
      elseif string.sub(old, 4, 6) ~= string.sub(fp, 4, 6) then
        status = 'operation_reused'
      else
        local si, ab = string.byte(old, 7, 8)
        status, aux, closed, replayed = STATUS[si], ab % 128, math.floor(ab / 128), 1
      end
    else
      op_clock = ARGV[a + 9]
      op_at = now
      if op_clock ~= '' and op_clock ~= 'u' then op_at = math.floor(tonumber(op_clock) / 1000) end
      status, aux, closed = apply(seq, ARGV[a + 2], ARGV[a + 3], KEYS[k], KEYS[k + 1],
        KEYS[k + 2], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8])
      if status ~= 'ok' then bump('refused:' .. status, 1) end
      if op_clock == 'u' then bump('clock_untrusted', 1) end
      redis.call('SETRANGE', KEYS[4], offset, fp .. string.char(INDEX[status], aux + 128 * closed))
      recorded = true
      -- A number past the highest leaves the ones between missing; an empty slot
      -- below it filled now was one of them.
      if seq > highest then
        gap = gap + seq - highest - 1
        highest = seq
      else
        gap = gap - 1
      end
    end
  end
  out[#out + 1] = status
  out[#out + 1] = aux
  out[#out + 1] = closed
  out[#out + 1] = replayed
end
for tkey in pairs(dirty) do redis.call('SET', tkey, recs[tkey]) end
for name, n in pairs(counts) do
  if n ~= 0 then redis.call('HINCRBY', KEYS[2], name, n) end
end
for minute, n in pairs(spm) do redis.call('HINCRBY', KEYS[6], tostring(minute), n) end
-- Only a newly recorded op counts as activity: a replay changes nothing.
if recorded then
  redis.call('ZADD', KEYS[7], now_ms, device)
  redis.call('HSET', KEYS[8], device, site)
end
if gap ~= 0 and redis.call('HINCRBY', KEYS[9], device, gap) <= 0 then
  redis.call('HDEL', KEYS[9], device)
end
return out
