"""The live picture of a round: the background archiver (one leader by a lease in
Redis) and the live figures document (:mod:`~sampling.live.service`), answered from
counters the atomic steps keep and the latest archived tables, never by scanning
the round."""
