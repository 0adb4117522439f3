-- unresulted.lua: the tubes received at intake longer ago than a cutoff that still
-- have no result and were not found damaged or leaking (no result is to come for
-- those). record.lua takes a tube off the index with its result; one it missed is
-- dropped here as it is met. At most 10,000 entries are looked at per call.
--
-- KEYS[1] {rd:R}:due:result  ZSET  tube -> intake ms
-- KEYS[2] {rd:R}:result      HASH  tube -> packed result (the lab's; read only)
-- KEYS[3] {rd:R}:lost        HASH  tube -> intake condition (read only)
-- ARGV[1] cutoff ms   ARGV[2] most tubes to return
-- Returns {tube, intake ms, tube, intake ms, ...}, oldest first.
local cutoff, want = ARGV[1], tonumber(ARGV[2])
local out, found, start, seen = {}, 0, 0, 0
while found < want and seen < 10000 do
  local page = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'WITHSCORES',
    'LIMIT', start, 200)
  if #page == 0 then break end
  for i = 1, #page, 2 do
    seen = seen + 1
    if redis.call('HEXISTS', KEYS[2], page[i]) == 1 then
      redis.call('ZREM', KEYS[1], page[i])
    elseif redis.call('HEXISTS', KEYS[3], page[i]) == 1 then
      start = start + 1
    elseif found < want then
      out[#out + 1] = page[i]
      out[#out + 1] = page[i + 1]
      found = found + 1
      start = start + 1
    end
  end
  if #page < 400 then break end
end
return out
