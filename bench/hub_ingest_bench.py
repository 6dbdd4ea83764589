"""Sustained hub ingest: 100 simulated agents x 8 GPUs at 1 sample/s (issue 5).

Starts a real ``gpufleet hub`` process (SQLite file, or PostgreSQL with ``--pg URL``), joins
``--agents`` nodes, and has each push a batch of its last ``--batch-s`` seconds of samples
(8 sim GPUs each, attributed processes) every ``--batch-s`` seconds over HTTP, as the agent
does, from a pool of client threads. It runs for ``--seconds`` and reports the snapshots the
hub stored per second against the fleet's 100/s, how far behind the schedule the pushes fell
(p50/p95 of each batch's lateness) and the hub's answer times. The hub must keep up: a
growing lateness means it cannot. Repeated ``--repeat`` times; medians are reported.

    python bench/hub_ingest_bench.py [--agents 100] [--seconds 30] [--pg URL] [--write]
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _report import median, write_section

from gpufleet.collectors.sim import SimGpuSource
from gpufleet.model import Snapshot
from gpufleet.model_wire import snapshot_to_wire

SRC = str(Path(__file__).resolve().parent.parent / "src")
GPUFLEET = [sys.executable, "-c", "from gpufleet.cli.main import main; main()"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_hub(db: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC}
    handle = log.open("ab")
    proc = subprocess.Popen(
        [*GPUFLEET, "hub", "--db", db, "--port", str(port)], env=env, stdout=handle, stderr=handle
    )
    handle.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the hub did not start; see {log}")


def _token(db: str) -> str:
    out = subprocess.run(
        [
            *GPUFLEET,
            "hub",
            "token",
            "create",
            "--db",
            db,
            "--name",
            "bench",
            "--scope",
            "node-join",
        ],
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        check=True,
        timeout=60,
    )
    return out.stdout.decode().strip()


def one_run(db: str, agents: int, seconds: float, batch_s: float, workers: int) -> dict[str, float]:
    port = _port()
    run = secrets.token_hex(4)  # a PostgreSQL store is reused between runs: new batch ids
    url = f"http://127.0.0.1:{port}"
    token = _token(db)
    hub = _run_hub(db, port, Path(tempfile.gettempdir()) / "gpufleet-hub-bench.log")
    headers = {"Authorization": f"Bearer {token}"}
    sims = [SimGpuSource(gpus=8, seed=i, node=f"bench-{i:03d}") for i in range(agents)]
    client = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=workers))
    try:
        for i in range(agents):
            client.post(
                url + "/fleet/v1/join",
                json={"cluster": "bench", "node": f"bench-{i:03d}"},
                headers=headers,
            ).raise_for_status()
        lateness: list[float] = []
        answer_ms: list[float] = []
        stored = 0
        lock = threading.Lock()
        start = time.time()

        def push(i: int, k: int) -> None:
            nonlocal stored
            due = start + (k + 1) * batch_s + (i / agents) * batch_s  # spread over the period
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            node = f"bench-{i:03d}"
            t0 = start + k * batch_s
            snaps = [
                Snapshot(t0 + s, "bench", node, sims[i].sample(t0 + s), None, 1.0)
                for s in range(int(batch_s))
            ]
            body = {
                "cluster": "bench",
                "node": node,
                "batch_id": f"{run}:{node}:{k}",
                "snapshots": [snapshot_to_wire(s) for s in snaps],
            }
            sent = time.time()
            r = client.post(url + "/fleet/v1/ingest", json=body, headers=headers)
            r.raise_for_status()
            with lock:
                lateness.append(max(sent - due, 0.0))
                answer_ms.append(1000.0 * (time.time() - sent))
                stored += len(snaps)

        rounds = int(seconds / batch_s)
        with ThreadPoolExecutor(workers) as pool:
            # Round by round, so a late round delays the next (the schedule is sustained).
            for k in range(rounds):
                list(pool.map(lambda i, k=k: push(i, k), range(agents)))
        # The first batch is due one period after the start: samples cover elapsed - batch_s.
        elapsed = time.time() - start - batch_s
    finally:
        client.close()
        hub.send_signal(signal.SIGTERM)
        hub.wait(30)
    lateness.sort()
    answer_ms.sort()
    return {
        "snapshots_per_s": stored / elapsed,
        "lateness_p50_s": lateness[len(lateness) // 2],
        "lateness_p95_s": lateness[int(0.95 * (len(lateness) - 1))],
        "answer_p50_ms": answer_ms[len(answer_ms) // 2],
        "answer_p95_ms": answer_ms[int(0.95 * (len(answer_ms) - 1))],
        "snapshots": float(stored),
        "elapsed_s": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch-s", type=float, default=5.0, help="seconds of samples per push")
    parser.add_argument("--workers", type=int, default=16, help="client threads")
    parser.add_argument("--pg", help="postgresql:// URL of an empty database or schema")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            db = args.pg or str(Path(tmp) / "hub.db")
            runs.append(one_run(db, args.agents, args.seconds, args.batch_s, args.workers))
        print({k: round(v, 2) for k, v in runs[-1].items()}, flush=True)
    med = {k: median([r[k] for r in runs]) for k in runs[0]}
    need = args.agents * 1.0
    backend = "PostgreSQL" if args.pg else "SQLite"
    rate = med["snapshots_per_s"]
    late = f"{med['lateness_p50_s']:.2f} s / {med['lateness_p95_s']:.2f} s"
    answer = f"{med['answer_p50_ms']:.0f} ms / {med['answer_p95_ms']:.0f} ms"
    body = f"""
{args.agents} agents x 8 sim GPUs, one sample per second each ({need:.0f} snapshots/s,
{need * 8:.0f} GPU samples/s), each pushing its last {args.batch_s:g} s as one batch over HTTP
to a `gpufleet hub` process on {backend}, for {args.seconds:g} s; {args.workers} client threads
in another process on the same machine. Median of {args.repeat} runs.

| stored snapshots/s | needed | ratio | push lateness p50 / p95 | hub answer p50 / p95 |
|---:|---:|---:|---:|---:|
| {rate:,.0f} | {need:,.0f} | {rate / need:.2f} | {late} | {answer} |

A ratio of 1.00 with small lateness means the hub keeps up with the fleet: every batch was
stored on schedule (the rate cannot exceed what the agents produce). Lateness is how long a
push started after its due time, so it grows when the hub falls behind. Machine: 2 cores shared
by the hub, the 100 simulated agents and other jobs.
"""
    if args.write:
        write_section(
            f"hub-ingest-{backend.lower()}",
            f"Hub ingest: {args.agents} agents x 8 GPUs at 1 sample/s ({backend})",
            f"python bench/hub_ingest_bench.py --agents {args.agents} --seconds {args.seconds:g}"
            + (" --pg URL" if args.pg else "")
            + " --write",
            body,
        )


if __name__ == "__main__":
    main()
