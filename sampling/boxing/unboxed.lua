-- unboxed.lua: fold tubes named by journal entries (open, close, undo) into the
-- index of closed tubes not yet in a box and the index of open tubes, in the same
-- slot as the boxing script, so neither index disagrees with the tube records.
--
-- KEYS[1] {rd:R}:due:unboxed  ZSET   tube -> closed-at ms (closed, not boxed)
-- KEYS[2] {rd:R}:due:cursor   STRING the last journal id folded in
-- KEYS[3] {rd:R}:due:open     ZSET   tube -> opened-at ms (still open)
-- KEYS[4..] {rd:R}:t:<tube>   STRING the tube records, one per ARGV[2..]
-- ARGV[1] the journal id these tubes were read up to   ARGV[2..] tube codes
-- Returns the number of tubes now in the unboxed index.
for i = 4, #KEYS do
  local rec = redis.call('GET', KEYS[i])
  local tube = ARGV[i - 2]
  local state = rec and struct.unpack('>B', rec, 2)
  if state == 1 then
    local closed = struct.unpack('>I4', rec, 9)
    redis.call('ZADD', KEYS[1], closed * 1000, tube)
  else
    redis.call('ZREM', KEYS[1], tube)
  end
  if state == 0 then
    local opened = struct.unpack('>I4', rec, 5)
    redis.call('ZADD', KEYS[3], opened * 1000, tube)
  else
    redis.call('ZREM', KEYS[3], tube)
  end
end
redis.call('SET', KEYS[2], ARGV[1])
return redis.call('ZCARD', KEYS[1])
