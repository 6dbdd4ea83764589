"""Start and measure the processes a benchmark compares (our agent, Glances)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gpufleet_cmd() -> list[str]:
    """The installed console script of this checkout's virtualenv."""
    exe = VENV_BIN / "gpufleet"
    if not exe.exists():
        raise SystemExit("gpufleet is not installed in this virtualenv: run `make venv` first")
    return [str(exe)]


def glances_cmd() -> list[str]:
    """Glances from $GLANCES, PATH, or bench/.glances-venv (see bench/README.md)."""
    candidates = [
        os.environ.get("GLANCES"),
        shutil.which("glances"),
        str(ROOT / "bench" / ".glances-venv" / "bin" / "glances"),
    ]
    for cand in candidates:
        if cand and Path(cand).exists():
            return [cand]
    raise SystemExit(
        "glances not found: python3 -m venv bench/.glances-venv && "
        "bench/.glances-venv/bin/pip install glances fastapi uvicorn jinja2"
    )


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    """Block until ``url`` answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def tree_cpu_s(proc: psutil.Process) -> float:
    """User + system CPU seconds of a process and its children."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def tree_rss_bytes(proc: psutil.Process) -> int:
    """Resident memory of a process and its children."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
