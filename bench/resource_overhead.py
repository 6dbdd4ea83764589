"""What the in-process resource manager costs its host program at a 1 s interval.

Each variant runs in a fresh Python process whose main thread sleeps, so every CPU-second
the process uses beyond an idle twin's is the monitor's. The peer is the ad-hoc script
people write instead: a thread calling psutil's ``Process().cpu_percent()`` and
``memory_info()`` every second. Variants run interleaved, ``--rounds`` times; medians are
reported, and the per-check CPU time is measured directly with ``time.thread_time``.

    .venv/bin/python bench/resource_overhead.py --seconds 20 --rounds 3 --write
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

from _report import median, write_section

VARIANTS = ("idle", "psutil-loop", "process", "process+4-children", "machine")


def _child(variant: str, seconds: float) -> None:
    """Run one variant and print CPU-seconds used during ``seconds`` after a warm-up."""
    kids: list[subprocess.Popen[bytes]] = []
    if variant == "process+4-children":
        kids = [
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
            for _ in range(4)
        ]
    stop = threading.Event()
    manager = None
    if variant == "psutil-loop":
        import psutil

        def loop() -> None:
            me = psutil.Process()
            while not stop.wait(1.0):
                me.cpu_percent()
                me.memory_info()

        threading.Thread(target=loop, daemon=True).start()
    elif variant != "idle":
        from gpufleet import create_resource_manager

        manager = create_resource_manager(
            max_memory_mb=10_000,
            max_cpu_percent=400,
            monitoring_interval=1.0,
            scope="machine" if variant == "machine" else "process",
        )
        manager.start_monitoring()
    time.sleep(2.0)  # warm-up: imports, first readings
    start = time.process_time()  # CLOCK_PROCESS_CPUTIME_ID: every thread, ns resolution
    time.sleep(seconds)
    used = time.process_time() - start
    per_check_ms = None
    if manager is not None:
        manager.stop_monitoring()
        samples = []
        for _ in range(50):
            t0 = time.thread_time()
            manager.check_once()
            samples.append((time.thread_time() - t0) * 1000)
        per_check_ms = median(samples)
        manager.close()
    stop.set()
    for kid in kids:
        kid.kill()
        kid.wait()
    print(f"{used} {per_check_ms if per_check_ms is not None else ''}")


def _measure(variant: str, seconds: float) -> tuple[float, float | None]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), (float(out[1]) if len(out) > 1 else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.seconds)
        return
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    check_ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            used, per_check = _measure(variant, args.seconds)
            cpu[variant].append(used)
            if per_check is not None:
                check_ms[variant].append(per_check)
    idle = median(cpu["idle"])
    rows = []
    for variant in VARIANTS[1:]:
        extra_pct = max(0.0, median(cpu[variant]) - idle) / args.seconds * 100
        ms = f"{median(check_ms[variant]):.2f}" if check_ms[variant] else "-"
        rows.append(f"| {variant} | {extra_pct:.3f} % | {ms} |")
    peer = max(1e-9, median(cpu["psutil-loop"]) - idle)
    ours = max(0.0, median(cpu["process"]) - idle)
    body = (
        "| variant | CPU beyond an idle twin (% of one core) | CPU per check (ms) |\n"
        "| --- | ---: | ---: |\n" + "\n".join(rows) + "\n\n"
        f"Process-scope monitoring at 1 s costs {ours / args.seconds * 100:.3f} % of a core "
        f"(target: under 1 %), {ours / peer:.1f}x a bare psutil loop reading CPU and memory. "
        "CPU per check is the monitor thread's own time for one check, taken after the run; "
        "at 1 s, 1 ms per check is 0.1 % of a core. Figures are "
        f"medians of {args.rounds} interleaved rounds of {args.seconds:.0f} s, each variant in "
        "its own process. This machine has no GPU, so no NVML reads are included."
    )
    print(body)
    if args.write:
        write_section(
            "resource_overhead",
            "In-process resource manager overhead at a 1 s interval",
            f"python bench/resource_overhead.py --seconds {args.seconds:.0f} "
            f"--rounds {args.rounds} --write",
            body,
        )


if __name__ == "__main__":
    main()
