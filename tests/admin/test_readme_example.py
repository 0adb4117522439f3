"""The README's Example runs as written on a fresh data directory.

The shell lines of the Example block are taken from README.md itself: ``serve``
is started on a free port with a temporary data directory, every other command
runs in one shell (so ``export TOKEN=...`` carries over) with the port put in
for 8000, and each command must succeed and print what the README shows after
it (``...`` stands for the rest of the line).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.admin.serve import env_for, serving

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> list[tuple[str, list[str]]]:
    """(command, the lines the README shows after it), in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Example") :]
    block = section[section.index("```sh\n") + 6 :]
    block = block[: block.index("```")]
    steps: list[tuple[str, list[str]]] = []
    pending = ""
    for line in block.splitlines():
        if pending:
            pending += "\n" + line
            if not line.endswith("\\"):
                steps.append((pending, []))
                pending = ""
        elif line.startswith("$ "):
            command = line[2:]
            if command.endswith("\\"):
                pending = command
            else:
                steps.append((command, []))
        elif line.strip():
            steps[-1][1].append(line)
    return steps


def _pattern(shown: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in shown.split("...")))


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the README's example uses curl")
    steps = example()
    assert steps[0][0].split("#")[0].strip().endswith("sampling serve &")
    assert any("round create" in c for c, _ in steps), "the example must create its round"
    sampling = f"{shlex.quote(sys.executable)} -m sampling.cli"
    data = tmp_path / "d"
    with serving(data) as (_, port):
        script = ["set -u"]
        for i, (command, _) in enumerate(steps[1:]):
            command = command.replace(".venv/bin/sampling", sampling)
            command = command.replace("localhost:8000", f"localhost:{port}")
            script += [f"echo '@@step {i}'", command, 'echo; echo "@@rc $?"']
        done = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            env=env_for(data),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    outputs = re.split(r"^@@step \d+\n", done.stdout, flags=re.M)[1:]
    assert len(outputs) == len(steps) - 1, done.stdout + done.stderr
    for (command, shown), out in zip(steps[1:], outputs, strict=True):
        body, _, rc = out.rpartition("@@rc ")
        assert rc.strip() == "0", f"{command}\n{out}\n{done.stderr}"
        got = [line for line in body.splitlines() if line.strip()]
        for line in shown:
            assert any(_pattern(line).fullmatch(g) for g in got), (
                f"{command}\nREADME shows: {line}\ngot: {got}"
            )
    print(done.stdout)
