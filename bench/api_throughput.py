"""API requests per second beside Glances' REST API, with wrk, in the same run.

Starts `gpufleet agent --source sim --sim-gpus 8` and `glances -w --disable-webui`, then runs
wrk (Debian package `wrk`) against /system/cpu and /gpu/metrics of ours and /api/4/cpu of
Glances, --rounds times each in turn, and reports the medians and ratios.

    .venv/bin/python bench/api_throughput.py --write
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from _procs import free_port, glances_cmd, gpufleet_cmd, stop, wait_http
from _report import median, write_section


def wrk_rps(url: str, seconds: int, connections: int) -> float:
    """Requests per second wrk measured for ``url`` (non-2xx responses fail the run)."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"{url} answered errors under load:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise SystemExit(f"cannot read wrk output:\n{out}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        port, gport = free_port(), free_port()
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
                str(Path(tmp) / "a.db"),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        glances = subprocess.Popen(
            [
                *glances_cmd(),
                "-w",
                "--disable-webui",
                "-B",
                "127.0.0.1",
                "-p",
                str(gport),
                "-t",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/health/ready")
            wait_http(f"http://127.0.0.1:{gport}/api/4/cpu", timeout_s=60)
            targets = {
                "gpufleet /system/cpu": f"http://127.0.0.1:{port}/system/cpu",
                "gpufleet /gpu/metrics (8 GPUs)": f"http://127.0.0.1:{port}/gpu/metrics",
                "Glances /api/4/cpu": f"http://127.0.0.1:{gport}/api/4/cpu",
            }
            results: dict[str, list[float]] = {k: [] for k in targets}
            for _ in range(args.rounds):
                for name, url in targets.items():
                    results[name].append(wrk_rps(url, args.seconds, args.connections))
        finally:
            stop(agent)
            stop(glances)
    peer = median(results["Glances /api/4/cpu"])
    lines = [
        "| endpoint | requests/s (median) | runs | vs Glances /api/4/cpu |",
        "| --- | ---: | --- | ---: |",
    ]
    for name, values in results.items():
        lines.append(
            f"| {name} | {median(values):,.0f} | {', '.join(f'{v:,.0f}' for v in values)} | "
            f"{median(values) / peer:.2f}x |"
        )
    lines += [
        "",
        f"wrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds "
        "interleaved; target: at least 3x Glances.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section(
            "api_throughput",
            "API throughput (beside Glances' REST API)",
            "python bench/api_throughput.py --write",
            body,
        )


if __name__ == "__main__":
    main()
