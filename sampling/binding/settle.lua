-- settle.lua: keep or release a claim this very request took (claim.lua returned 2),
-- once the round's step has answered the open. The round's keys are in another
-- slot, so this is a step of its own; the pending mark makes it safe: it is still
-- this request's nonce only if no other open of the tube (which might have been
-- accepted) has joined the claim since.
--
-- KEYS[1] sampling:tubes:<nnn>  HASH  tube code -> round id; "p:" tube code -> nonce
-- ARGV[1] tube code   ARGV[2] round id   ARGV[3] the request's nonce
-- ARGV[4] '1' when the round's step accepted the open, '0' when it refused it
-- Returns 1 when the claim was released, 0 when it was kept (or was not ours).
local mark = 'p:' .. ARGV[1]
if redis.call('HGET', KEYS[1], mark) ~= ARGV[3]
    or redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  return 0
end
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[1], mark)
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1], mark)
return 1
