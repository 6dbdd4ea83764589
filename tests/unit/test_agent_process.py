"""`gpufleet agent` as a process: HTTP on loopback, Ctrl-C flushes, kill -9 keeps the store."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gpufleet.store import open_store
from gpufleet.store.base import Resolution

GPUFLEET = [sys.executable, "-c", "from gpufleet.cli.main import main; main()"]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"agent exited with {proc.returncode}: {out}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail("agent never became ready")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    port = _port()
    db = tmp_path / "agent.db"
    proc = subprocess.Popen(
        [
            *GPUFLEET,
            "agent",
            "--source",
            "sim",
            "--sim-gpus",
            "4",
            "--interval",
            "0.2",
            "--db",
            str(db),
            "--port",
            str(port),
            "--cluster",
            "proc-test",
            "--node",
            "n1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={"GPUFLEET_FLUSH_INTERVAL_S": "0.5", "PATH": "/usr/bin:/bin"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        yield base, proc, db
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_serves_over_http_and_flushes_on_ctrl_c(
    agent: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    base, proc, db = agent
    metrics = httpx.get(f"{base}/gpu/metrics").json()
    assert metrics["gpu_count"] == 4
    assert metrics["instance_id"] == "proc-test/n1"
    assert httpx.get(f"{base}/system/all").status_code == 200
    assert "DCGM_FI_DEV_GPU_UTIL" in httpx.get(f"{base}/metrics").text
    time.sleep(1.0)
    served = httpx.get(f"{base}/health/detailed").json()["components"]["sampler"]["samples_taken"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0
    store = open_store(str(db))
    try:
        series = store.gpu_series(
            metric="util_gpu_pct",
            start_s=time.time() - 600,
            end_s=time.time() + 1,
            resolution=Resolution.RAW,
        )
        assert len(series) == 4
        # Everything sampled before the stop was flushed on the way out.
        assert min(len(s.points) for s in series) >= served
    finally:
        store.close()


def test_kill_9_leaves_a_store_that_opens(agent: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    _base, proc, db = agent
    time.sleep(1.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = open_store(str(db))
    try:
        assert len(store.inventory()) == 4
        assert store.health().writable
    finally:
        store.close()


def test_sigterm_flushes_like_ctrl_c(agent: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    base, proc, db = agent
    time.sleep(1.0)
    served = httpx.get(f"{base}/health/detailed").json()["components"]["sampler"]["samples_taken"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert "history flushed" in out
    store = open_store(str(db))
    try:
        series = store.gpu_series(
            metric="util_gpu_pct",
            start_s=time.time() - 600,
            end_s=time.time() + 1,
            resolution=Resolution.RAW,
        )
        assert min(len(s.points) for s in series) >= served
    finally:
        store.close()
