"""One server per data directory, and admin commands that do not wait for nothing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx

from sampling.store.embedded import answers, free_port
from sampling.store.lock import DataDirLock, DirectoryLocked, holder_of
from tests.admin.serve import sampling, serving, start_serve, stop

if TYPE_CHECKING:
    from pathlib import Path


def _whoami(port: int, token: str) -> httpx.Response:
    return httpx.get(
        f"http://127.0.0.1:{port}/v1/whoami",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_second_serve_is_refused_and_the_first_keeps_working(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with serving(data) as (first, port):
        before = sampling(data, "device", "create", "adm1", "--role", "admin")
        assert before.returncode == 0, before.stderr
        second = start_serve(data, free_port())
        try:
            _, err = second.communicate(timeout=30)
        finally:
            stop(second)
        assert second.returncode != 0
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert f"pid {first.pid}" in lines[0] and "serve" in lines[0], lines[0]
        # The first server still answers, and tokens made before and after work.
        after = sampling(data, "device", "create", "adm2", "--role", "admin")
        assert after.returncode == 0, after.stderr
        for out in (before, after):
            resp = _whoami(port, out.stdout.strip())
            assert resp.status_code == 200, resp.text
        assert first.poll() is None


def test_a_stopped_serve_stops_its_embedded_server(tmp_path: Path) -> None:
    # SIGTERM, as a service manager stops it: uvicorn re-raises the signal once it
    # has shut down, which must not end the process before it stops the server.
    data = tmp_path / "d"
    with serving(data) as (first, _):
        socket = next(data.glob("**/*.sock"))
        assert answers(socket)
    assert first.returncode == 128 + 15
    assert not answers(socket)


def test_admin_command_without_a_server_is_quick(tmp_path: Path) -> None:
    data = tmp_path / "d"
    sampling(data, "round", "list")  # first run makes the secret and the AOF
    started = time.monotonic()
    done = sampling(data, "round", "create", "r1", "--name", "one")
    took = time.monotonic() - started
    print(f"sampling round create, no server running: {took:.2f} s")
    assert done.returncode == 0, done.stderr
    # Was ~8.9 s (redis-py retrying a probe of a missing socket); now ~0.7 s,
    # most of it Python start-up. A generous bound, as a sanity check only.
    assert took < 5.0
    assert sampling(data, "round", "list").stdout.count("r1") == 1


def test_the_lock_names_its_holder(tmp_path: Path) -> None:
    with DataDirLock(tmp_path, command="sampling serve --port 1"):
        try:
            DataDirLock(tmp_path).acquire()
        except DirectoryLocked as exc:
            assert exc.holder.serving
            assert str(exc.holder).startswith("pid ")
        else:
            raise AssertionError("a second lock on the same directory was granted")
    # Released: the next owner gets it.
    with DataDirLock(tmp_path, command="sampling round list") as again:
        assert not holder_of(again.directory).serving


def test_a_server_left_running_is_not_taken_over(tmp_path: Path) -> None:
    from sampling.store.embedded import EmbeddedServer, ServerStartError

    with EmbeddedServer(tmp_path / "valkey") as first:
        try:
            EmbeddedServer(tmp_path / "valkey").start()
        except ServerStartError as exc:
            assert "already answers" in str(exc)
        else:
            raise AssertionError("a second server started on the same files")
        assert first.socket_path.exists() and first._ping()


def test_a_demo_on_a_folder_in_use_is_refused_and_wipes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    keep = out / "data" / "valkey" / "appendonly.aof"
    keep.parent.mkdir(parents=True)
    keep.write_text("a running server's data")
    with DataDirLock(out, command="sampling demo --out demo-out"):
        done = sampling(tmp_path, "demo", "--out", str(out), "--residents", "50")
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "sampling demo" in lines[0], done.stderr
    assert keep.read_text() == "a running server's data"


def test_serve_waits_for_a_short_command_but_not_for_a_server(tmp_path: Path) -> None:
    import threading

    from sampling.settings import Settings
    from sampling.store.runtime import serve_lock

    cfg = Settings(data_dir=tmp_path)
    short = DataDirLock(tmp_path, command="sampling round list").acquire()
    threading.Timer(0.3, short.release).start()
    started = time.monotonic()
    with serve_lock(cfg):  # waits for the admin command, then has the directory
        assert time.monotonic() - started >= 0.25
        assert holder_of(tmp_path).pid != 0
    with DataDirLock(tmp_path, command="sampling serve --port 1"):
        started = time.monotonic()
        try:
            serve_lock(cfg)
        except DirectoryLocked as exc:
            assert "sampling serve --port 1" in str(exc)
        else:
            raise AssertionError("a second serve was let in")
        assert time.monotonic() - started < 1.0  # refused at once, not after a wait
