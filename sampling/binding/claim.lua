-- claim.lua: claim a tube barcode for a round, once ever ("a tube barcode is
-- opened once, ever" across rounds). The claim lives outside the round's slot,
-- so it is its own step, taken before the round's open step; a claim names its
-- round, so a retried or repeated open in the same round still reaches the
-- round's own check (which refuses a second open there).
--
-- KEYS[1] sampling:tubes:<nnn>  HASH  tube code -> round id
-- ARGV[1] tube code   ARGV[2] round id
-- Returns 1 when the claim is (now) this round's, 0 when another round holds it.
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if not holder then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
if holder == ARGV[2] then return 1 end
return 0
