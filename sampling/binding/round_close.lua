-- round_close.lua: close a round and journal it, in one atomic step.
--
-- KEYS[1]  {rd:R}:meta     HASH    state, pool, round (msgpack Round)
-- KEYS[2]  {rd:R}:journal  STREAM  accepted changes
--
-- ARGV[1] the closed round record (msgpack)   ARGV[2] who   ARGV[3] reason ('' if none)
--
-- Returns 1 when closed, 0 when the round does not exist, 2 when it was already
-- closed (nothing written either way).

local state = redis.call('HGET', KEYS[1], 'state')
if state == false then return 0 end
if state == 'closed' then return 2 end
redis.call('HSET', KEYS[1], 'state', 'closed', 'round', ARGV[1])
redis.call('XADD', KEYS[2], '*', 'k', 'round_close', 'd', ARGV[2], 'reason', ARGV[3])
return 1
