-- round_create.lua: create a round's state in its own slot, in one atomic step: the
-- round record, its state, its copy of the revoked devices and its journal entry.
--
-- KEYS[1]  {rd:R}:meta     HASH    state, pool, round (msgpack Round)
-- KEYS[2]  {rd:R}:revoked  SET     the round's copy of {sampling}:revoked
-- KEYS[3]  {rd:R}:journal  STREAM  accepted changes
--
-- ARGV[1] round record (msgpack)   ARGV[2] pool   ARGV[3] who   ARGV[4] name
-- ARGV[5..] revoked device ids at this moment
--
-- Returns 1 when created, 0 when the round exists (nothing written).

if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'open', 'pool', ARGV[2], 'round', ARGV[1])
for i = 5, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
redis.call('XADD', KEYS[3], '*', 'k', 'round_create', 'd', ARGV[3],
  'name', ARGV[4], 'pool', ARGV[2])
return 1
