-- custody.lua: one boxing or custody operation of one device, exactly once, with
-- its journal entry, in one atomic step. Kinds: open, add, remove, seal (the
-- sealer), handover (the sealer, naming the courier), pickup (the courier),
-- receive, intake, intake_close (the lab desk).
--
-- KEYS[1]  {rd:R}:meta            HASH   round state (exists = the round exists)
-- KEYS[2]  {rd:R}:journal         STREAM accepted changes
-- KEYS[3]  {rd:R}:ops:<device>    STRING 8-byte op record per sequence number
-- KEYS[4]  {rd:R}:revoked         SET    revoked device ids
-- KEYS[5]  {rd:R}:b:<box>         HASH   the box
-- KEYS[6]  {rd:R}:bt:<box>        HASH   tube -> "residents:boxed_ms"
-- KEYS[7]  {rd:R}:tbox:<nnn>      HASH   tube -> box (KEYS[5] again when no tube)
-- KEYS[8]  {rd:R}:t:<tube>        STRING packed tube record (KEYS[5] again when no tube)
-- KEYS[9]  {rd:R}:in:<box>        HASH   tube -> "condition:ms:where:residents"
-- KEYS[10..13] {rd:R}:due:unboxed, :sealed, :transit, :intake   ZSETs scored in ms
-- KEYS[14] {rd:R}:boxcount        HASH   counters
-- KEYS[15] {rd:R}:dev:seen        ZSET   device -> last operation (ms)
-- KEYS[16] {rd:R}:dev:site        HASH   device -> site (or lab)
-- KEYS[17] {rd:R}:dev:gap         HASH   device -> sequence numbers missing below its highest
-- KEYS[18] {rd:R}:boxalarm        HASH   seal|<box> -> code:ms, intake|<box> -> m:e:d:ms
-- KEYS[19] {rd:R}:due:result      ZSET   tubes scanned at intake awaiting a result (ms)
-- seal only: KEYS[20..] the tube record of every tube in the box, as read just before
-- intake and intake_close only: KEYS[20] {rd:R}:lost  HASH  tube -> condition of every
--   tube intake found damaged, leaking or missing (the binding core reads it to let a
--   lost re-sample be tried again)
--
-- ARGV[1] device id  ARGV[2] device site  ARGV[3] device lab  ARGV[4] how far past its
-- highest sequence number a device may jump  ARGV[5] highest sequence number allowed
-- ARGV[6] seq  ARGV[7] fingerprint (6 bytes)  ARGV[8] op id  ARGV[9] kind
-- ARGV[10] box code  ARGV[11] tube code ('' when none)  ARGV[12..14] per kind, named
-- by each kind's call in boxing/scripts.py (Custody.values; '' where a kind has fewer):
--   open (BoxOpen): capacity, lab, claimed (1 when this round holds the box code's claim)
--   remove (BoxRemove): reason
--   seal (BoxSeal): tubes (counted), samples (counted), lab
--   handover (BoxHandover): courier, lab       pickup (BoxPickup): place
--   intake (TubeIntake): condition (ok|damaged|leaking)
--   add, receive, intake_close (BoxAdd, BoxReceive, IntakeClose): none
-- seal only: ARGV[15..] the tube codes matching KEYS[20..] (BoxSeal.inside)
--
-- Returns {'revoked'} for a revoked device, {'box_changed'} when the seal's tube list
-- is stale (nothing changed; the caller reads again and retries); otherwise
-- {status, replayed, box state, tubes in the box, samples in the box}.
--
-- Op record (8 bytes at (seq-1)*8, as apply.lua): fingerprint(6) status-index(1)
-- aux(1, unused: 0). Refusals are recorded so a retry answers the same;
-- seq_out_of_range, seq_conflict and operation_reused change nothing.

local STATUS = {'ok', 'round_not_found', 'box_used', 'box_not_found', 'box_other_site',
  'box_sealed', 'box_full', 'tube_not_found', 'tube_other_site', 'tube_open', 'tube_in_box',
  'tube_not_in_box', 'box_empty', 'box_has_open_tube', 'tube_count_mismatch',
  'sample_count_mismatch', 'box_no_lab', 'lab_mismatch', 'box_not_sealed',
  'box_already_handed_over', 'box_not_handed_over', 'courier_mismatch',
  'box_already_picked_up', 'box_not_picked_up', 'wrong_lab', 'box_already_received',
  'box_not_received', 'intake_closed', 'tube_already_scanned'}
local INDEX = {}
for i, w in ipairs(STATUS) do INDEX[w] = i end
-- Custody moves only forward along this order.
local RANK = {open = 0, sealed = 1, picked_up = 2, received = 3, intake_closed = 4}

if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then return {'revoked'} end

local device, site, lab = ARGV[1], ARGV[2], ARGV[3]
local ahead, seq_max = tonumber(ARGV[4]), tonumber(ARGV[5])
local seq, fp, op, kind = tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9]
local box, tube = ARGV[10], ARGV[11]
local BOX, BT, TBOX, TUBE, IN = KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local DUE_UNBOXED, DUE_SEALED, DUE_TRANSIT, DUE_INTAKE = KEYS[10], KEYS[11], KEYS[12], KEYS[13]
local COUNT, SEEN, DEVSITE, GAP, ALARM, AWAIT = KEYS[14], KEYS[15], KEYS[16], KEYS[17], KEYS[18],
  KEYS[19]
local FIRST_SEALED = 20
-- Seal refusals that say the box's contents disagree: an alarm until it is sealed.
local SEAL_ALARM = {box_empty = true, box_has_open_tube = true, tube_count_mismatch = true,
  sample_count_mismatch = true}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function journal(k, ...)
  redis.call('XADD', KEYS[2], '*', 'k', k, 'd', device, 'site', site, 'seq', ARGV[6],
    'op', op, 'tube', tube, 'r', '', 'box', box, ...)
end

-- Tube record header (binding/tube.py): hl(1) state(1) cap(1) purpose(1) opened(4)
-- closed(4) "site\0device"; 12 bytes per resident after the header.
local function tube_header(rec)
  local hl, state, _, _, _, closed = struct.unpack('>BBBBI4I4', rec)
  local names = string.sub(rec, 13, hl)
  local nul = string.find(names, '\0', 1, true)
  return state, string.sub(names, 1, nul - 1), (#rec - hl) / 12, closed
end

local function residents_of(entry)
  return tonumber(string.match(entry, '^(%d+):'))
end

-- The sealer's checks shared by open-box operations.
local function sealer_box()
  local b_site, state = unpack(redis.call('HMGET', BOX, 'site', 'state'))
  if not state then return 'box_not_found' end
  if b_site ~= site then return 'box_other_site' end
  return nil, state
end

local function lab_box(want)
  local b_lab, state = unpack(redis.call('HMGET', BOX, 'lab', 'state'))
  if not state then return 'box_not_found' end
  if b_lab ~= lab then return 'wrong_lab' end
  if RANK[state] < RANK['received'] then
    return RANK[state] < RANK['picked_up'] and 'box_not_picked_up' or 'box_not_received'
  end
  if want == 'received' and state ~= 'received' then
    return 'intake_closed'
  end
  return nil, state
end

local apply = {}

function apply.open()
  if ARGV[14] ~= '1' or redis.call('EXISTS', BOX) == 1 then return 'box_used' end
  redis.call('HSET', BOX, 'state', 'open', 'site', site, 'lab', ARGV[13], 'cap', ARGV[12],
    'n', 0, 'opened_at', now, 'opened_by', device)
  redis.call('HINCRBY', KEYS[14], 'boxes_opened', 1)
  journal('box_open', 'x', ARGV[12], 'lab', ARGV[13])
  return 'ok'
end

function apply.add()
  local err, state = sealer_box()
  if err then return err end
  if state ~= 'open' then return 'box_sealed' end
  local rec = redis.call('GET', TUBE)
  if not rec then return 'tube_not_found' end
  local tstate, tsite, n, closed = tube_header(rec)
  if tsite ~= site then return 'tube_other_site' end
  if redis.call('HEXISTS', TBOX, tube) == 1 or tstate == 2 then return 'tube_in_box' end
  if tstate == 0 then return 'tube_open' end
  if redis.call('HLEN', BT) >= tonumber(redis.call('HGET', BOX, 'cap')) then
    return 'box_full'
  end
  redis.call('SETRANGE', TUBE, 1, '\2')
  redis.call('HSET', BT, tube, n .. ':' .. now)
  redis.call('HSET', TBOX, tube, box)
  redis.call('ZREM', DUE_UNBOXED, tube)
  redis.call('HINCRBY', BOX, 'n', n)
  redis.call('HINCRBY', COUNT, 'tubes_boxed', 1)
  journal('box_add', 'x', tostring(n))
  return 'ok'
end

function apply.remove()
  local err, state = sealer_box()
  if err then return err end
  if state ~= 'open' then return 'box_sealed' end
  local entry = redis.call('HGET', BT, tube)
  if not entry then return 'tube_not_in_box' end
  redis.call('HDEL', BT, tube)
  redis.call('HDEL', TBOX, tube)
  redis.call('HINCRBY', BOX, 'n', -residents_of(entry))
  redis.call('HINCRBY', COUNT, 'tubes_boxed', -1)
  local rec = redis.call('GET', TUBE)
  if rec then
    redis.call('SETRANGE', TUBE, 1, '\1')
    local _, _, _, closed = tube_header(rec)
    redis.call('ZADD', DUE_UNBOXED, closed * 1000, tube)
  end
  journal('box_remove', 'x', ARGV[12])
  return 'ok'
end

function apply.seal()
  local err, state = sealer_box()
  if err then return err end
  if state ~= 'open' then return 'box_sealed' end
  local scanned = redis.call('HLEN', BT)
  if scanned == 0 then return 'box_empty' end
  for i = FIRST_SEALED, #KEYS do
    local rec = redis.call('GET', KEYS[i])
    if not rec or struct.unpack('>B', rec, 2) ~= 2 then return 'box_has_open_tube' end
  end
  local samples = tonumber(redis.call('HGET', BOX, 'n'))
  if tonumber(ARGV[12]) ~= scanned then return 'tube_count_mismatch' end
  if tonumber(ARGV[13]) ~= samples then return 'sample_count_mismatch' end
  local to = ARGV[14]
  if to == '' then to = redis.call('HGET', BOX, 'lab') end
  redis.call('HSET', BOX, 'state', 'sealed', 'sealed_at', now, 'sealed_by', device,
    'tubes', scanned, 'samples', samples, 'lab', to)
  redis.call('ZADD', DUE_SEALED, now, box)
  redis.call('HINCRBY', KEYS[14], 'boxes_sealed', 1)
  redis.call('HINCRBY', COUNT, 'tubes_sealed', scanned)
  redis.call('HDEL', ALARM, 'seal|' .. box)
  journal('box_seal', 'x', scanned .. ':' .. samples, 'lab', to)
  return 'ok'
end

function apply.handover()
  local err, state = sealer_box()
  if err then return err end
  if state == 'open' then return 'box_not_sealed' end
  if state ~= 'sealed' then return 'box_already_picked_up' end
  if redis.call('HEXISTS', BOX, 'handed_by') == 1 then return 'box_already_handed_over' end
  local to, want = redis.call('HGET', BOX, 'lab'), ARGV[13]
  if to ~= '' and want ~= '' and want ~= to then return 'lab_mismatch' end
  if to == '' then to = want end
  if to == '' then return 'box_no_lab' end
  redis.call('HSET', BOX, 'handed_at', now, 'handed_by', device, 'handed_place', site,
    'courier', ARGV[12], 'lab', to)
  journal('box_handover', 'x', site, 'courier', ARGV[12], 'lab', to)
  return 'ok'
end

function apply.pickup()
  local state = redis.call('HGET', BOX, 'state')
  if not state then return 'box_not_found' end
  if state == 'open' then return 'box_not_sealed' end
  if state ~= 'sealed' then return 'box_already_picked_up' end
  local courier = redis.call('HGET', BOX, 'courier')
  if not courier then return 'box_not_handed_over' end
  if courier ~= device then return 'courier_mismatch' end
  redis.call('HSET', BOX, 'state', 'picked_up', 'picked_at', now, 'pickup_place', ARGV[12])
  redis.call('ZREM', DUE_SEALED, box)
  redis.call('ZADD', DUE_TRANSIT, now, box)
  redis.call('HINCRBY', KEYS[14], 'boxes_picked_up', 1)
  redis.call('HINCRBY', COUNT, 'tubes_picked_up', redis.call('HLEN', BT))
  journal('box_pickup', 'x', ARGV[12], 'courier', device)
  return 'ok'
end

function apply.receive()
  local b_lab, state = unpack(redis.call('HMGET', BOX, 'lab', 'state'))
  if not state then return 'box_not_found' end
  if b_lab ~= lab then return 'wrong_lab' end
  if RANK[state] < RANK['picked_up'] then return 'box_not_picked_up' end
  if RANK[state] > RANK['picked_up'] then return 'box_already_received' end
  redis.call('HSET', BOX, 'state', 'received', 'received_at', now, 'received_by', device)
  redis.call('ZREM', DUE_TRANSIT, box)
  redis.call('ZADD', DUE_INTAKE, now, box)
  redis.call('HINCRBY', KEYS[14], 'boxes_received', 1)
  redis.call('HINCRBY', COUNT, 'tubes_received', redis.call('HLEN', BT))
  journal('box_receive', 'lab', lab)
  return 'ok'
end

function apply.intake()
  local err = lab_box('received')
  if err then return err end
  if redis.call('HEXISTS', IN, tube) == 1 then return 'tube_already_scanned' end
  local where, n = 'manifest', 0
  local entry = redis.call('HGET', BT, tube)
  if entry then
    n = residents_of(entry)
  else
    local rec = redis.call('GET', TUBE)
    if rec then
      local _, _, members = tube_header(rec)
      n = members
      where = redis.call('HGET', TBOX, tube) and 'other_box' or 'unboxed'
    else
      where = 'unbound'
    end
  end
  local cond = ARGV[12]
  redis.call('HSET', IN, tube, cond .. ':' .. now .. ':' .. where .. ':' .. n)
  -- A bound tube now waits for its result (lab/record.lua takes it off).
  if where ~= 'unbound' then redis.call('ZADD', AWAIT, 'NX', now, tube) end
  if cond ~= 'ok' then redis.call('HSET', KEYS[20], tube, cond) end
  journal('intake', 'x', cond .. ':' .. where .. ':' .. n, 'lab', lab)
  return 'ok'
end

function apply.intake_close()
  local err = lab_box('received')
  if err then return err end
  local received, missing, extra, damaged = 0, 0, 0, 0
  local scanned = redis.call('HGETALL', IN)
  for i = 1, #scanned, 2 do
    local cond, _, where = string.match(scanned[i + 1], '^(%a+):(%d+):([%a_]+):')
    if where ~= 'manifest' then extra = extra + 1 end
    if cond ~= 'ok' then damaged = damaged + 1 elseif where == 'manifest' then
      received = received + 1
    end
  end
  local listed = redis.call('HGETALL', BT)
  for i = 1, #listed, 2 do
    if redis.call('HEXISTS', IN, listed[i]) == 0 then
      missing = missing + 1
      redis.call('HSET', KEYS[20], listed[i], 'missing')
      redis.call('XADD', KEYS[2], '*', 'k', 'missing', 'd', device, 'site', site,
        'seq', ARGV[6], 'op', op, 'tube', listed[i], 'r', '', 'box', box,
        'x', tostring(residents_of(listed[i + 1])), 'lab', lab)
    end
  end
  redis.call('HSET', BOX, 'state', 'intake_closed', 'intake_closed_at', now,
    'intake_closed_by', device, 'received_ok', received, 'missing', missing, 'extra', extra,
    'damaged', damaged)
  redis.call('ZREM', DUE_INTAKE, box)
  redis.call('HINCRBY', KEYS[14], 'intakes_closed', 1)
  if missing + extra + damaged > 0 then
    redis.call('HINCRBY', KEYS[14], 'discrepant', 1)
    redis.call('HSET', ALARM, 'intake|' .. box,
      missing .. ':' .. extra .. ':' .. damaged .. ':' .. now)
  end
  journal('intake_close', 'x', received .. ':' .. missing .. ':' .. extra .. ':' .. damaged,
    'lab', lab)
  return 'ok'
end

local function answer(status, replayed)
  local state, n = unpack(redis.call('HMGET', BOX, 'state', 'n'))
  return {status, replayed, state or '', redis.call('HLEN', BT), tonumber(n or 0)}
end

local highest = math.floor(redis.call('STRLEN', KEYS[3]) / 8)
if seq == nil or seq < 1 or seq > seq_max or seq > highest + ahead then
  return answer('seq_out_of_range', 0)
end
local offset = (seq - 1) * 8
local old = redis.call('GETRANGE', KEYS[3], offset, offset + 7)
if #old == 8 and old ~= '\0\0\0\0\0\0\0\0' then
  if string.sub(old, 1, 3) ~= string.sub(fp, 1, 3) then return answer('seq_conflict', 0) end
  if string.sub(old, 4, 6) ~= string.sub(fp, 4, 6) then return answer('operation_reused', 0) end
  return answer(STATUS[string.byte(old, 7)], 1)
end
if kind == 'seal' then
  -- The caller read the box's tubes before this step; if another sealer changed
  -- them since, nothing is written and the caller reads again.
  if #KEYS - FIRST_SEALED + 1 ~= redis.call('HLEN', BT) then return {'box_changed'} end
  for i = 15, #ARGV do
    if redis.call('HEXISTS', BT, ARGV[i]) == 0 then return {'box_changed'} end
  end
end
local fn = apply[kind]
if not fn then return redis.error_reply('unknown op kind ' .. kind) end
local status
if redis.call('EXISTS', KEYS[1]) == 0 then status = 'round_not_found' else status = fn() end
if status ~= 'ok' then redis.call('HINCRBY', KEYS[14], 'refused:' .. status, 1) end
if kind == 'seal' and SEAL_ALARM[status] then
  redis.call('HSET', ALARM, 'seal|' .. box, status .. ':' .. now)
end
redis.call('SETRANGE', KEYS[3], offset, fp .. string.char(INDEX[status], 0))
-- Device activity for the live figures: last seen, where, and sequence gaps (a
-- number past the highest leaves those between missing; an empty slot below it
-- filled now was one of them).
redis.call('ZADD', SEEN, now, device)
redis.call('HSET', DEVSITE, device, site ~= '' and site or lab)
local gap = seq > highest and seq - highest - 1 or -1
if gap ~= 0 and redis.call('HINCRBY', GAP, device, gap) <= 0 then
  redis.call('HDEL', GAP, device)
end
return answer(status, 0)
