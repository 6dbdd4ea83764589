"""Scripted readings for resource-manager tests: one ResourceMetrics per check, on a fake clock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from gpufleet.resources.metrics import ResourceMetrics

T0 = 1_800_000_000.0

BASE = ResourceMetrics(
    timestamp_s=T0,
    scope="process",
    memory_used_mb=100.0,
    memory_percent=1.0,
    cpu_percent=10.0,
    gpu_memory_mb=0.0,
    gpu_utilization=0.0,
    power_watts=None,
    temperature_celsius=None,
)


class ScriptedReader:
    """Gives the scripted readings in order, ``step_s`` apart; the last one repeats."""

    def __init__(self, readings: Iterable[Mapping[str, float | None]], step_s: float = 1.0):
        self.readings = [dict(r) for r in readings]
        self.step_s = step_s
        self.calls = 0
        self.closed = False

    def read(self) -> ResourceMetrics:
        i = min(self.calls, len(self.readings) - 1)
        at = T0 + self.calls * self.step_s
        self.calls += 1
        return replace(BASE, timestamp_s=at, **self.readings[i])  # type: ignore[arg-type]

    def close(self) -> None:
        self.closed = True


def ramp(metric: str, start: float, per_step: float, steps: int) -> list[dict[str, float]]:
    """``steps`` readings of ``metric`` rising by ``per_step`` from ``start``."""
    return [{metric: start + i * per_step} for i in range(steps)]
