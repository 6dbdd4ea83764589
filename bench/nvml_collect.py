"""Time NvmlGpuSource.sample() beside an nvidia-smi subprocess reading the same fields.

Run on a machine with an NVIDIA GPU, with nothing but the standard library and nvidia-ml-py:

    python3 bench/nvml_collect.py [--iterations 200] [--smi-iterations 30] [--write]

``--write`` puts the figures into docs/BENCHMARKS.md (section ``nvml``). Without a GPU the
script exits with status 1 and a one-line reason.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

# bench/ itself is sys.path[0] when run as a script, so its helper imports by name.
from _report import median, write_section

from gpufleet.collectors.nvml import NvmlGpuSource, probe_nvml

SMI_FIELDS = (
    "index,uuid,utilization.gpu,utilization.memory,memory.total,memory.used,temperature.gpu,"
    "power.draw,power.limit,clocks.gr,clocks.sm,clocks.mem,pstate,fan.speed"
)
COMMAND = "python3 bench/nvml_collect.py --write"


def p95(values: list[float]) -> float:
    """95th percentile by nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def time_ms(call: Callable[[], object], iterations: int, warmup: int) -> list[float]:
    """Wall time of each of ``iterations`` calls, in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        call()
    durations: list[float] = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        call()
        durations.append((time.perf_counter_ns() - start) / 1e6)
    return durations


def run_smi(smi: str) -> None:
    """One nvidia-smi query of SMI_FIELDS, as a monitoring script would run it."""
    subprocess.run(
        [smi, f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def main() -> int:
    """Measure, print, and with --write record the figures. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200, help="NVML samples to time")
    parser.add_argument("--smi-iterations", type=int, default=30, help="nvidia-smi runs to time")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()

    status = probe_nvml()
    if not status.available:
        print(f"nvml_collect: no NVIDIA GPU to measure: {status.reason}", file=sys.stderr)
        return 1

    rows: list[tuple[str, list[float]]] = []
    full = NvmlGpuSource()
    no_pcie = NvmlGpuSource(read_pcie=False)
    try:
        first = full.sample(time.time())
        models = sorted({s.name or "unknown" for s in first})
        rows.append(
            (
                "`NvmlGpuSource().sample()`, all fields",
                time_ms(lambda: full.sample(0.0), args.iterations, 5),
            )
        )
        rows.append(
            (
                "`NvmlGpuSource(read_pcie=False).sample()`",
                time_ms(lambda: no_pcie.sample(0.0), args.iterations, 5),
            )
        )
    finally:
        full.close()
        no_pcie.close()
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        rows.append(
            (
                "`nvidia-smi --query-gpu=...` subprocess (14 fields)",
                time_ms(lambda: run_smi(smi), args.smi_iterations, 2),
            )
        )

    lines = [
        f"{status.gpu_count} × {', '.join(models)}; driver {status.driver_version}, "
        f"NVML {status.nvml_version}. Times are per call, for all GPUs together.",
        "",
        "| what | median ms | p95 ms | calls |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {what} | {median(d):.2f} | {p95(d):.2f} | {len(d)} |" for what, d in rows]
    lines.append("")
    if smi is None:
        lines.append("nvidia-smi is not on PATH here, so there is no ratio.")
    else:
        smi_ms, nvml_ms, full_ms = median(rows[2][1]), median(rows[1][1]), median(rows[0][1])
        lines.append(
            f"nvidia-smi takes {smi_ms / nvml_ms:.1f}× as long as an in-process NVML sample "
            f"without PCIe ({smi_ms / full_ms:.1f}× with it). Reading PCIe throughput adds "
            f"{full_ms - nvml_ms:.1f} ms: NVML counts bytes over a window on each call."
        )
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section("nvml", "NVML sampling vs nvidia-smi", COMMAND, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
