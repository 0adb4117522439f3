-- admin.lua: write one registry record and its admin journal entry in one atomic step.
--
-- KEYS[1]  {sampling}:rounds|sites|devices  HASH    the registry written to
-- KEYS[2]  {sampling}:admin                 STREAM  the admin journal
-- KEYS[3]  {sampling}:revoked               SET     (optional) a set ARGV[1] joins
--
-- ARGV[1] record id (the hash field)   ARGV[2] record (msgpack)
-- ARGV[3] mode: 'new' (refused when the id exists) or 'update' (refused when it does not)
-- ARGV[4..] the journal entry: field, value pairs
--
-- Returns 1 when written, 0 when refused (nothing written).

local exists = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
if (ARGV[3] == 'new') == exists then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[1]) end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
return 1
