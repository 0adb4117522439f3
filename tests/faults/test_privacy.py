"""Privacy (DESIGN invariant 8): after a demo round, no raw resident code in Redis (keys,
values, the AOF on disk), in the logs or in the archived Parquet; and the stored 8-byte
hashes resist a dictionary attack by anyone without the server's secret."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

import polars as pl
import pytest
import redis

from sampling.demo.run import run_demo
from sampling.demo.synth import district
from sampling.privacy import ResidentHasher
from sampling.store.embedded import EmbeddedServer, free_port
from tests.binding import snapshot

RESIDENTS, SITES, SEED = 400, 3, 11


def _leaks(blob: bytes, codes: list[str]) -> list[str]:
    return [c for c in codes if c.encode() in blob]


def _stored_hashes(r: redis.Redis, round_id: str) -> set[bytes]:
    """The full 8-byte keyed hashes: 2 bytes in the bucket's name, 6 in the field."""
    out = set()
    for key in r.scan_iter(match=f"{{rd:{round_id}}}:res:*", count=1000):
        head = bytes.fromhex(key.decode().rsplit(":", 1)[1])
        for tail in r.hkeys(key):
            out.add(head + tail.removeprefix(b"r") if len(tail) == 7 else head + tail)
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    root = logging.getLogger()
    capture = _Capture()
    root.addHandler(capture)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        summary = run_demo(out, residents=RESIDENTS, n_sites=SITES, seed=SEED, quiet=True)
    finally:
        root.removeHandler(capture)
        root.setLevel(old)
    assert summary["lost"] == 0
    assert summary["bound"] > RESIDENTS // 2
    (out / "captured.log").write_text("\n".join(capture.lines), encoding="utf-8")
    return out


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + repr(record.args))


@pytest.mark.slow
def test_no_raw_resident_code_anywhere(demo: Path) -> None:
    codes = [p.code for p in district(RESIDENTS, SITES, SEED).residents]
    data = demo / "data"
    # Logs of every logger of the run, and the server's own log.
    logs = (demo / "captured.log").read_bytes() + (data / "valkey" / "valkey.log").read_bytes()
    assert len(logs) > 0
    assert _leaks(logs, codes) == []
    # The AOF on disk: everything Redis was ever sent, byte for byte.
    aof = b"".join(p.read_bytes() for p in (data / "valkey").rglob("*.aof*") if p.is_file())
    assert len(aof) > 10_000
    assert _leaks(aof, codes) == []
    # Every key and value, on a server restarted from that AOF.
    with EmbeddedServer(data / "valkey", port=free_port()) as srv:
        r = redis.Redis.from_url(srv.url)
        dump = repr(snapshot(r)).encode()
        r.close()
    assert _leaks(dump, codes) == []
    # The archived journal and every table derived from it.
    parquet = sorted((data / "archive").rglob("*.parquet"))
    assert parquet
    for path in parquet:
        frame = pl.read_parquet(path)
        text = frame.select(pl.all().cast(pl.Utf8)).write_csv().encode()
        assert _leaks(text, codes) == [], path


@pytest.mark.slow
def test_dictionary_attack_without_the_secret(demo: Path) -> None:
    codes = [p.code for p in district(RESIDENTS, SITES, SEED).residents]
    data = demo / "data"
    secret = bytes.fromhex((data / "secret").read_text().strip())
    with EmbeddedServer(data / "valkey", port=free_port()) as srv:
        r = redis.Redis.from_url(srv.url)
        stored = _stored_hashes(r, "demo")
        r.close()
    assert len(stored) > RESIDENTS // 2
    # With the server's secret every stored hash is found (the attack below is fair)...
    right = ResidentHasher(secret)
    assert stored <= {right.digest(c) for c in codes}
    # ...without it, nothing: plain hashes, and HMACs with guessed keys.
    guesses = {
        "sha256": lambda c: hashlib.sha256(c.encode()).digest(),
        "sha1": lambda c: hashlib.sha1(c.encode()).digest(),
        "md5": lambda c: hashlib.md5(c.encode()).digest(),
        "blake2b": lambda c: hashlib.blake2b(c.encode()).digest(),
        "hmac-empty": lambda c: hmac.new(b"", c.encode(), hashlib.sha256).digest(),
        "hmac-wrong": lambda c: hmac.new(b"\0" * 32, c.encode(), hashlib.sha256).digest(),
        "hmac-near": lambda c: hmac.new(
            secret[:-1] + bytes([secret[-1] ^ 1]), c.encode(), hashlib.sha256
        ).digest(),
    }
    for name, fn in guesses.items():
        for cut in (slice(0, 8), slice(-8, None)):
            found = {fn(c)[cut] for c in codes} & stored
            assert found == set(), name
