-- claim.lua: claim a tube barcode for a round, once ever ("a tube barcode is
-- opened once, ever" across rounds). The claim lives outside the round's slot,
-- so it is its own step, taken before the round's open step and only for an open
-- the round's step is expected to accept; a claim names its round, so a retried
-- or repeated open in the same round still reaches the round's own check (which
-- refuses a second open there).
--
-- A claim this request took is pending (field "p:<tube>" = the request's nonce)
-- until settle.lua keeps it or, when the round's step refused the open after all,
-- releases it. Another open of the tube in the same round joins the claim: it
-- drops the pending mark, so no request can release a claim someone else relies on.
--
-- KEYS[1] sampling:tubes:<nnn>  HASH  tube code -> round id; "p:" tube code -> nonce
-- ARGV[1] tube code   ARGV[2] round id   ARGV[3] this request's nonce (optional:
-- without it the claim is final at once; boxing claims box codes that way)
-- Returns 2 when this request took the claim now (pending), 1 when the round
-- already held it, 0 when another round holds it.
local holder = redis.call('HGET', KEYS[1], ARGV[1])
if not holder then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  if ARGV[3] then redis.call('HSET', KEYS[1], 'p:' .. ARGV[1], ARGV[3]) end
  return 2
end
if holder == ARGV[2] then
  redis.call('HDEL', KEYS[1], 'p:' .. ARGV[1])
  return 1
end
return 0
