-- pair.lua: exchange a one-time pairing code for a new device token, once.
--
-- The code's key and the device registry share a slot (the code key carries the
-- hash tag {sampling:devices}), so consuming the code and replacing the token's
-- digest are one atomic step on a single Redis and on Redis Cluster.
--
-- KEYS[1] sampling:pair:{sampling:devices}:<sha256 of code>  STRING device id (TTL)
-- KEYS[2] sampling:devices                                    HASH   device id -> record
-- ARGV[1] device id   ARGV[2] the device's record as the caller read it
-- ARGV[3] the record with the new token's digest
-- Returns 1 paired (code consumed), 0 the code is gone (used, expired or never
-- made), -1 the device's record changed since it was read (revoked meanwhile):
-- nothing is written then.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
