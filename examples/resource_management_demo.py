"""Watch this process with gpufleet's resource manager, optionally under a simulated load.

    python examples/resource_management_demo.py
    python examples/resource_management_demo.py --simulate-load
    python examples/resource_management_demo.py --strategy adaptive \\
        --max-memory-mb 2000 --max-cpu-percent 90 --duration 300

Prints one line per reading and every limit report, and saves the readings to
``resource_metrics.json`` (``--output``) at the end. Ctrl-C stops early and still saves.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from gpufleet import LimitViolation, ResourceMetrics, create_resource_manager
from gpufleet.resources import STRATEGIES


def _fmt(value: float | None, unit: str) -> str:
    return "n/a" if value is None else f"{value:.1f}{unit}"


def show(metrics: ResourceMetrics) -> None:
    """One line per reading."""
    print(
        f"memory {_fmt(metrics.memory_used_mb, ' MB')}  cpu {_fmt(metrics.cpu_percent, '%')}  "
        f"gpu memory {_fmt(metrics.gpu_memory_mb, ' MB')}  "
        f"gpu {_fmt(metrics.gpu_utilization, '%')}  power {_fmt(metrics.power_watts, ' W')}  "
        f"temperature {_fmt(metrics.temperature_celsius, ' °C')}",
        flush=True,
    )


def report(violation: LimitViolation) -> None:
    """Every limit report."""
    print(f"  ! {violation.kind}: {violation.message}", flush=True)


def simulate_load(stop: threading.Event, step_mb: int = 20) -> None:
    """Grow memory by ``step_mb`` a second and keep a core busy, until ``stop``."""
    held: list[bytearray] = []
    while not stop.is_set():
        block = bytearray(step_mb * 1024 * 1024)
        for i in range(0, len(block), 4096):  # touch the pages so they count as resident
            block[i] = 1
        held.append(block)
        end = time.monotonic() + 1.0
        while time.monotonic() < end and not stop.is_set():
            sum(range(1000))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", choices=STRATEGIES, default="dynamic")
    parser.add_argument("--max-memory-mb", type=float)
    parser.add_argument("--max-cpu-percent", type=float)
    parser.add_argument("--max-gpu-memory-mb", type=float)
    parser.add_argument("--max-power-watts", type=float)
    parser.add_argument("--max-temp-celsius", type=float)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run")
    parser.add_argument("--scope", choices=("process", "machine"), default="process")
    parser.add_argument("--simulate-load", action="store_true", help="grow memory, burn CPU")
    parser.add_argument("--output", default="resource_metrics.json")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    try:
        manager = create_resource_manager(
            strategy=args.strategy,
            callback=show,
            monitoring_interval=args.interval,
            scope=args.scope,
            on_violation=report,
            max_memory_mb=args.max_memory_mb,
            max_cpu_percent=args.max_cpu_percent,
            max_gpu_memory_mb=args.max_gpu_memory_mb,
            max_power_watts=args.max_power_watts,
            max_temp_celsius=args.max_temp_celsius,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    load = threading.Thread(target=simulate_load, args=(stop,), daemon=True)
    with manager:
        if args.simulate_load:
            load.start()
        try:
            stop.wait(args.duration)
        except KeyboardInterrupt:
            print("stopped early", file=sys.stderr)
        stop.set()
        if load.is_alive():
            load.join()
        path = manager.save_metrics(args.output)
    print(f"{len(manager.get_metrics_history())} readings saved to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
