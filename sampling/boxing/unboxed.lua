-- unboxed.lua: fold tubes named by journal entries (close, undo) into the index of
-- closed tubes not yet in a box, in the same slot as the boxing script, so the
-- index never disagrees with the tube records it was built from.
--
-- KEYS[1] {rd:R}:due:unboxed  ZSET   tube -> closed-at ms
-- KEYS[2] {rd:R}:due:cursor   STRING the last journal id folded in
-- KEYS[3..] {rd:R}:t:<tube>   STRING the tube records, one per ARGV[2..]
-- ARGV[1] the journal id these tubes were read up to   ARGV[2..] tube codes
-- Returns the number of tubes now in the index.
for i = 3, #KEYS do
  local rec = redis.call('GET', KEYS[i])
  local tube = ARGV[i - 1]
  if rec and struct.unpack('>B', rec, 2) == 1 then
    local closed = struct.unpack('>I4', rec, 9)
    redis.call('ZADD', KEYS[1], closed * 1000, tube)
  else
    redis.call('ZREM', KEYS[1], tube)
  end
end
redis.call('SET', KEYS[2], ARGV[1])
return redis.call('ZCARD', KEYS[1])
