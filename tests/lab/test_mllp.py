"""HL7 v2 over MLLP: a real listener on a free port, a real TCP client, real Redis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import hl7
import pytest
from click.testing import CliRunner
from hl7.client import MLLPClient

from sampling.cli import main
from sampling.lab import keys
from sampling.lab.mllp import Running
from sampling.store.embedded import free_port
from tests.boxing.field import Field
from tests.conftest import SECRET, Api

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import redis

    from sampling.settings import Settings
    from sampling.store.embedded import EmbeddedServer


def _oru(control: str, tube: str, outcome: str = "Negative", lab: str = "LA") -> str:
    ct = ["OBX|2|NM|ORF1ab^ORF1ab gene Ct||23.4||||||F", "OBX|3|NM|N^N gene Ct||25.1||||||F"]
    return "\r".join(
        [
            f"MSH|^~\\&|LIS|{lab}|SAMPLING|CDC|20220501120000||ORU^R01|{control}|P|2.5.1",
            f"OBR|1||{tube}|94500-6|||20220501110000",
            f"OBX|1|CWE|94500-6||{outcome}||||||F",
            *(ct if outcome == "Positive" else []),
        ]
    )


class Feed:
    def __init__(self, port: int) -> None:
        self.client = MLLPClient("127.0.0.1", port)
        self.client.socket.settimeout(10)

    def send(self, message: str | bytes) -> hl7.Message:
        raw = self.client.send_message(message)
        assert raw.startswith(b"\x0b") and raw.endswith(b"\x1c\r"), raw
        return hl7.parse(raw[1:-2].decode())


@pytest.fixture
def field(api: Api) -> Field:
    return Field(api)


@pytest.fixture
def feed(field: Field, settings: Settings) -> Iterator[Feed]:
    port = free_port()
    running = Running(
        settings, settings.redis_url, host="127.0.0.1", port=port, device_id="lab-A"
    ).start()
    f = Feed(port)
    try:
        yield f
    finally:
        f.client.close()
        running.stop()


def _msa(ack: hl7.Message) -> tuple[str, str, str]:
    msa = ack.segment("MSA")
    return str(msa.extract_field(1, 1)), str(msa.extract_field(1, 2)), str(msa.extract_field(1, 3))


def test_results_over_mllp_are_acked_and_stored_once(
    field: Field, feed: Feed, r: redis.Redis
) -> None:
    box, (t1, t2) = field.delivered(tubes=2, n=3)
    for t in (t1, t2):
        assert field.intake(box, t).status_code == 200

    first = feed.send(_oru("C-1", t1))
    assert _msa(first)[:2] == ("AA", "C-1")
    assert "1 stored" in _msa(first)[2]
    assert str(first.segment("MSH").extract_field(1, 9, 1, 1)) == "ACK"
    assert r.hget(keys.result("r1"), t1).startswith(b"negative|")
    # the same control id again: the same answer, nothing stored twice
    again = feed.send(_oru("C-1", t1))
    assert _msa(again) == _msa(first)
    entries = [e for _, e in r.xrange(keys.journal("r1")) if e[b"k"].startswith(b"result")]
    assert len(entries) == 1
    assert r.hget(keys.count("r1"), "stored") == b"1"
    assert r.hget(keys.count("r1"), "duplicate") is None

    # a second result that disagrees: held, AE with the reason in MSA-3 and ERR
    held = feed.send(_oru("C-2", t1, "Positive"))
    code, control, text = _msa(held)
    assert (code, control) == ("AE", "C-2") and f"tube {t1} held" in text
    err = held.segment("ERR")
    assert str(err.extract_field(1, 4)) == "E" and "held" in str(err.extract_field(1, 8))
    assert r.hget(keys.result("r1"), t1).startswith(b"negative|")

    # non-default separators: read by the message's own MSH-1/MSH-2, answered in them
    odd = _oru("C-3", t2, "Positive").translate(str.maketrans("|^", "#$"))
    raw = feed.client.send_message(odd)
    assert raw[1:4] == b"MSH" and raw[4:5] == b"#"
    assert _msa(hl7.parse(raw[1:-2].decode()))[0] == "AA"
    assert r.hget(keys.result("r1"), t2).startswith(b"positive|23.4|25.1|")


def test_gb18030_message(field: Field, feed: Feed, r: redis.Redis) -> None:
    box, (t1,) = field.delivered(tubes=1, n=2)
    assert field.intake(box, t1).status_code == 200
    text = _oru("G-1", t1, "阴性") + "\rNTE|1||结果：阴性"
    ack = feed.send(text.encode("gb18030"))
    assert _msa(ack)[0] == "AA"
    assert r.hget(keys.result("r1"), t1).startswith(b"negative|")


def test_mllp_refusals(field: Field, feed: Feed, r: redis.Redis) -> None:
    box, (t1,) = field.delivered(tubes=1, n=2)
    assert field.intake(box, t1).status_code == 200
    # another lab's results on this lab's feed
    code, _, text = _msa(feed.send(_oru("X-1", t1, lab="LB")))
    assert code == "AR" and "LB" in text
    # not a result message
    adt = "MSH|^~\\&|HIS|H|SAMPLING|CDC|20220501120000||ADT^A01|X-2|P|2.5.1\rPID|1"
    code, control, text = _msa(feed.send(adt))
    assert (code, control) == ("AR", "X-2") and "ORU^R01" in text
    # no control id
    code, _, text = _msa(feed.send(_oru("", t1)))
    assert code == "AR" and "MSH-10" in text
    # a garbled tube code: AE with the row's reason
    code, _, text = _msa(feed.send(_oru("X-3", t1[:-1] + ("0" if t1[-1] != "0" else "1"))))
    assert code == "AE" and "check digit" in text
    # not HL7 at all
    code, _, text = _msa(feed.send(b"hello"))
    assert code == "AR"
    assert not r.hexists(keys.result("r1"), t1)
    # after the refusals the feed still takes a good message on the same connection
    assert _msa(feed.send(_oru("X-4", t1)))[0] == "AA"
    # a revoked lab device's feed stores nothing more
    assert field.api.post("/v1/devices/lab-A/revoke", field.api.admin, {}).status_code < 300
    code, _, text = _msa(feed.send(_oru("X-5", t1, "Positive")))
    assert code == "AR" and "revoked" in text
    assert r.hget(keys.result("r1"), t1).startswith(b"negative|")


def test_serve_mllp_needs_its_lab_device(
    server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SAMPLING_REDIS_URL", server.url)
    monkeypatch.setenv("SAMPLING_SECRET", SECRET)
    monkeypatch.setenv("SAMPLING_DATA_DIR", str(tmp_path))
    got = CliRunner().invoke(main, ["serve", "--mllp-port", str(free_port())])
    assert got.exit_code == 2
    assert "--mllp-port needs --mllp-device" in got.output


def test_a_feed_stores_results_only_for_tubes_its_lab_holds(
    field: Field, feed: Feed, r: redis.Redis
) -> None:
    # A box sealed for lab LB: the LA feed may not report its tubes, whatever MSH-4 says.
    _, (elsewhere, _) = field.sealed_box(lab="LB")
    answer = feed.send(_oru("C-9", elsewhere))
    code, control, text = _msa(answer)
    assert (code, control) == ("AE", "C-9")
    assert "went to another lab" in text
    assert r.hget(keys.result("r1"), elsewhere) is None
