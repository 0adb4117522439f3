"""The click commands, as the main CLI will mount them."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from sampling import codes
from sampling.scan import synth
from sampling.scan.cli import bench_decode_command, decode_command

TUBE = codes.make_tube(42)


def _write(path: Path, img: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), img)
    return path


def test_decode_prints_one_json_line_per_image(tmp_path: Path) -> None:
    tube = _write(
        tmp_path / "tube.png", np.pad(synth.render_code128(TUBE), 30, constant_values=255)
    )
    blank = _write(tmp_path / "blank.jpg", np.full((100, 100), 90, np.uint8))
    r = CliRunner().invoke(decode_command, [str(tube), str(blank)])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert lines[0]["image"] == str(tube)
    assert lines[0]["codes"] == [{"text": TUBE, "format": "Code128", "kind": "tube", "valid": True}]
    assert lines[1]["codes"] == []
    assert all(isinstance(x["ms"], float) for x in lines)


def test_decode_frames_prints_one_line(tmp_path: Path) -> None:
    blank = _write(tmp_path / "a.png", np.full((200, 300), 90, np.uint8))
    tube = _write(tmp_path / "b.png", np.pad(synth.render_code128(TUBE), 30, constant_values=255))
    r = CliRunner().invoke(decode_command, ["--frames", str(blank), str(tube)])
    assert r.exit_code == 0, r.output
    (line,) = [json.loads(x) for x in r.output.splitlines()]
    assert line["frames_used"] == [1]
    assert line["codes"][0]["text"] == TUBE


def test_missing_file_and_not_an_image_exit_2(tmp_path: Path) -> None:
    r = CliRunner().invoke(decode_command, [str(tmp_path / "nope.png")])
    assert r.exit_code == 2
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"hello")
    r = CliRunner().invoke(decode_command, [str(bad)])
    assert r.exit_code == 2
    assert "not an image" in r.output


def test_bench_json_is_the_last_line() -> None:
    r = CliRunner().invoke(bench_decode_command, ["--json", "--count", "13", "--seed", "1"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    for key in (
        "rate_zxing",
        "rate_zbar",
        "rate_ours",
        "median_ms_ours",
        "p95_ms_ours",
        "glare_rate_zxing",
        "glare_rate_zbar",
        "glare_rate_ours",
        "glare_gain",
    ):
        assert key in summary
    assert set(summary["per_condition"]) == set(synth.CONDITIONS)
    assert summary["count"] == 13
    # Ours starts with the same raw zxing call, so it never reads fewer.
    assert summary["rate_ours"] >= summary["rate_zxing"]
