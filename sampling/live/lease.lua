-- lease.lua: renew or release a lease, only for the worker that holds it (a worker
-- whose lease expired and was taken must not extend or drop the new one).
--
-- KEYS[1]  sampling:archiver:lease or {rd:R}:archive:lock   STRING  the holder's id,
--          with a PX expiry
-- ARGV[1]  holder id   ARGV[2] lease length in ms, or 0 to release
--
-- Returns 1 when this holder held the lease (now renewed or released), else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
