"""One reading of what a program (or the machine) uses, in seed 004's field names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The readings a limit can watch; the other fields describe the reading.
METRIC_FIELDS = (
    "memory_used_mb",
    "memory_percent",
    "cpu_percent",
    "gpu_memory_mb",
    "gpu_utilization",
    "power_watts",
    "temperature_celsius",
)

SCOPES = ("process", "machine")


@dataclass(frozen=True)
class ResourceMetrics:
    """What the watched scope uses at one time.

    Field names follow seed 004 so its examples run unchanged; units are in the names or
    below. A reading the machine cannot give (no GPU, no power sensor) is None, never 0.

    Attributes:
        timestamp_s: Epoch seconds of the reading.
        scope: ``process`` (this process and its children) or ``machine``.
        memory_used_mb: Resident memory of the process tree (process scope) or memory in use
            on the machine, in MiB.
        memory_percent: ``memory_used_mb`` as a percentage of the machine's memory.
        cpu_percent: CPU used since the previous reading: percent of one core for a process
            tree (200 = two cores), percent of all cores for the machine.
        gpu_memory_mb: GPU memory held by the process tree's processes (NVML's per-process
            figure) or in use on all GPUs, in MiB; None without a GPU or when NVML does not
            report per-process memory.
        gpu_utilization: Percent: for a process tree, the sum of its processes' SM utilization
            (NVML per-process samples); for the machine, the mean over GPUs.
        power_watts: Draw of the GPUs in scope (those the process tree uses, or all).
        temperature_celsius: Hottest sensor among the GPUs in scope and the CPU package.
        gpu_count: GPUs in scope.
        gpu_uuids: Their UUIDs.
        process_count: Processes in the tree (process scope), else None.
        threads: Threads in the tree (process scope), else None.
    """

    timestamp_s: float
    scope: str
    memory_used_mb: float
    memory_percent: float
    cpu_percent: float | None
    gpu_memory_mb: float | None = None
    gpu_utilization: float | None = None
    power_watts: float | None = None
    temperature_celsius: float | None = None
    gpu_count: int = 0
    gpu_uuids: tuple[str, ...] = field(default=())
    process_count: int | None = None
    threads: int | None = None

    def value(self, metric: str) -> float | None:
        """The reading called ``metric`` (one of :data:`METRIC_FIELDS`)."""
        if metric not in METRIC_FIELDS:
            raise KeyError(f"unknown metric {metric!r}; choose one of {', '.join(METRIC_FIELDS)}")
        value = getattr(self, metric)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (UUIDs as a list)."""
        out = asdict(self)
        out["gpu_uuids"] = list(self.gpu_uuids)
        return out
