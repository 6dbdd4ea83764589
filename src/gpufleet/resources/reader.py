"""Readings for the resource manager, built on the agent's own collectors.

A process-scope reading is the process tree's memory and CPU (``collectors.process_usage``)
plus, from the NVML source the agent uses, what the tree's processes hold on each GPU. A
machine-scope reading is the agent's host sample plus every GPU.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from gpufleet.collectors.base import GpuSource, SystemSource
from gpufleet.collectors.process_usage import ProcessUsageReader, cpu_temperature_c
from gpufleet.collectors.registry import open_gpu_source
from gpufleet.collectors.system import PsutilSystemSource
from gpufleet.model import GpuSample
from gpufleet.resources.metrics import SCOPES, ResourceMetrics

MIB = 1024 * 1024


class MetricsReader(Protocol):
    """Gives one :class:`ResourceMetrics` per call; tests script one."""

    def read(self) -> ResourceMetrics:
        """Take a reading now."""
        ...

    def close(self) -> None:
        """Release what the reader opened."""
        ...


class LocalReader:
    """Reads this process tree (or the machine) and its GPUs.

    Args:
        scope: ``process`` or ``machine``.
        pid: For process scope: the process to watch (default: this one).
        include_children: For process scope: count its children too.
        gpu_source: A GPU source to read; None opens NVML (``auto``: no GPUs when
            nvidia-ml-py or the driver is missing) and closes it with the reader.
        system_source: For machine scope: the host source (default psutil).
        process_reader: For process scope: the process-tree reader (default psutil).
        temperature: Reads the CPU package temperature (default: psutil's sensors).
        clock: Epoch seconds, for timestamps.

    Raises:
        ValueError: unknown scope.
        ProcessLookupError: ``pid`` is not running.
    """

    def __init__(
        self,
        scope: str = "process",
        *,
        pid: int | None = None,
        include_children: bool = True,
        gpu_source: GpuSource | None = None,
        system_source: SystemSource | None = None,
        process_reader: ProcessUsageReader | None = None,
        temperature: Callable[[], float | None] | None = cpu_temperature_c,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        self.scope = scope
        self._clock = clock
        self._temperature = temperature
        self._own_gpu = gpu_source is None
        self._gpu = gpu_source or open_gpu_source(
            "auto", node=socket.gethostname(), read_pcie=False
        )
        self._proc: ProcessUsageReader | None = None
        self._system: SystemSource | None = None
        if scope == "process":
            self._proc = process_reader or ProcessUsageReader(
                pid, include_children=include_children
            )
        else:
            self._system = system_source or PsutilSystemSource()
        self._has_gpus = self._gpu.status().available

    @property
    def pid(self) -> int:
        """The watched process (this one for machine scope)."""
        return self._proc.pid if self._proc is not None else os.getpid()

    def read(self) -> ResourceMetrics:
        """Take a reading now.

        Raises:
            ProcessLookupError: the watched process has ended.
        """
        now_s = self._clock()
        gpus = tuple(g for g in self._gpu.sample(now_s) if not g.lost)
        self._has_gpus = self._has_gpus or bool(gpus)
        cpu_temp = self._temperature() if self._temperature is not None else None
        if self._proc is not None:
            usage = self._proc.read()
            ours = set(usage.pids)
            in_scope = [g for g in gpus if any(p.pid in ours for p in g.processes)]
            gpu_mem, gpu_util = _process_gpu_use(in_scope, ours, has_gpus=self._has_gpus)
            return ResourceMetrics(
                timestamp_s=now_s,
                scope=self.scope,
                memory_used_mb=usage.rss_bytes / MIB,
                memory_percent=100.0 * usage.rss_bytes / usage.mem_total_bytes,
                cpu_percent=usage.cpu_pct,
                gpu_memory_mb=gpu_mem,
                gpu_utilization=gpu_util,
                power_watts=_sum(g.power_w for g in in_scope),
                temperature_celsius=_max([*(g.temp_c for g in in_scope), cpu_temp]),
                gpu_count=len(in_scope),
                gpu_uuids=tuple(g.uuid for g in in_scope),
                process_count=len(usage.pids),
                threads=usage.threads,
            )
        assert self._system is not None
        host = self._system.sample(now_s)
        return ResourceMetrics(
            timestamp_s=now_s,
            scope=self.scope,
            memory_used_mb=host.mem_used_bytes / MIB,
            memory_percent=host.mem_pct,
            cpu_percent=host.cpu_pct,
            gpu_memory_mb=_mib(_sum(g.mem_used_bytes for g in gpus)),
            gpu_utilization=_mean([g.util_gpu_pct for g in gpus]),
            power_watts=_sum(g.power_w for g in gpus),
            temperature_celsius=_max([*(g.temp_c for g in gpus), cpu_temp]),
            gpu_count=len(gpus),
            gpu_uuids=tuple(g.uuid for g in gpus),
        )

    def close(self) -> None:
        """Release NVML when this reader opened it."""
        if self._own_gpu:
            self._gpu.close()


def _process_gpu_use(
    in_scope: Sequence[GpuSample], ours: set[int], *, has_gpus: bool
) -> tuple[float | None, float | None]:
    """GPU memory (MiB) and SM utilization (%) of our processes over the GPUs they use.

    With GPUs present but none used by us, both are a true 0; without GPUs both are None.
    A figure NVML does not give for any of our processes (memory under some vGPU/WSL set-ups,
    utilization when the driver keeps no per-process samples) is None.
    """
    if not in_scope:
        return (0.0, 0.0) if has_gpus else (None, None)
    mine = [p for g in in_scope for p in g.processes if p.pid in ours]
    memory = [p.used_memory_bytes for p in mine if p.used_memory_bytes is not None]
    util = [p.sm_util_pct for p in mine if p.sm_util_pct is not None]
    return (sum(memory) / MIB if memory else None, sum(util) if util else None)


def _sum(values: Iterable[float | int | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return sum(present) if present else None


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _max(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _mib(value: float | None) -> float | None:
    return None if value is None else value / MIB
