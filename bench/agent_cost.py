"""Agent cost at a 1 s interval beside Glances, measured in the same run.

Runs `gpufleet agent --source sim --sim-gpus 8 --interval 1` and `glances -q -t 1 --export csv`
side by side for --seconds (default 90), sampling each one's CPU time and RSS every 5 s.
Reports CPU-seconds per minute, peak RSS and RSS growth from the first to the last third.

    .venv/bin/python bench/agent_cost.py --seconds 90 --write
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from _procs import free_port, glances_cmd, gpufleet_cmd, stop, tree_cpu_s, tree_rss_bytes, wait_http
from _report import write_section

MIB = 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        agent = subprocess.Popen(
            [
                *gpufleet_cmd(),
                "agent",
                "--source",
                "sim",
                "--sim-gpus",
                "8",
                "--interval",
                "1",
                "--db",
                str(Path(tmp) / "agent.db"),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        glances = subprocess.Popen(
            [
                *glances_cmd(),
                "-q",
                "-t",
                "1",
                "--export",
                "csv",
                "--export-csv-file",
                str(Path(tmp) / "glances.csv"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/health/ready")
            time.sleep(5)  # both past start-up: imports and first samples are not steady state
            procs = {"gpufleet": psutil.Process(agent.pid), "glances": psutil.Process(glances.pid)}
            cpu0 = {k: tree_cpu_s(p) for k, p in procs.items()}
            rss: dict[str, list[int]] = {k: [] for k in procs}
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.seconds:
                for k, p in procs.items():
                    rss[k].append(tree_rss_bytes(p))
                time.sleep(5)
            elapsed = time.monotonic() - t0
            cpu = {k: tree_cpu_s(p) - cpu0[k] for k, p in procs.items()}
        finally:
            stop(agent)
            stop(glances)
    rows = []
    for k in procs:
        third = max(len(rss[k]) // 3, 1)
        growth = (max(rss[k][-third:]) - max(rss[k][:third])) / MIB
        rows.append((k, cpu[k] / elapsed * 60, max(rss[k]) / MIB, growth))
    ratio = rows[0][1] / rows[1][1] if rows[1][1] else float("inf")
    body = "\n".join(
        [
            "| process | CPU-seconds per minute | peak RSS (MiB) "
            "| RSS growth first->last third (MiB) |",
            "| --- | ---: | ---: | ---: |",
        ]
        + [f"| {k} | {c:.2f} | {r:.1f} | {g:+.1f} |" for k, c, r, g in rows]
        + [
            "",
            f"gpufleet uses {ratio:.2f}x Glances' CPU time (target: at most 0.25x); "
            f"{elapsed:.0f} s measured after a 5 s warm-up, 8 simulated GPUs plus the real host, "
            "SQLite history on, both sampling every 1 s.",
        ]
    )
    print(body)
    if args.write:
        write_section(
            "agent_cost",
            "Agent cost at a 1 s interval (beside Glances)",
            f"python bench/agent_cost.py --seconds {args.seconds:g} --write",
            body,
        )


if __name__ == "__main__":
    main()
