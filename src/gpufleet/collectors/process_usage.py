"""What one process and its children use: resident memory and CPU, read with psutil.

The in-process resource manager (``gpufleet.resources``) reads this once per check, so it is
kept cheap: the process tree comes from ``/proc/<pid>/task/<tid>/children`` (one small file
per thread) rather than from a scan of every process on the machine, and psutil's
``Process`` objects are kept between reads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

# CPU time is counted in clock ticks (usually 10 ms): a window shorter than this reads as
# noise (0 % or 200 %), so the first reading waits for it.
MIN_CPU_WINDOW_S = 0.1

# Sensor chips whose reading is the CPU package temperature (Intel, AMD, ARM boards).
CPU_SENSOR_CHIPS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "soc_thermal")


@dataclass(frozen=True)
class ProcessUsage:
    """One reading of a process tree.

    Attributes:
        pids: The process and the children alive at the reading, root first.
        rss_bytes: Resident memory summed over ``pids`` (pages shared between them count once
            per process, as ``ps`` shows them).
        cpu_pct: CPU time used since the previous reading over the wall time between them, in
            percent of one core (200 = two cores busy); None on a reading without a window.
        threads: Threads over ``pids``.
        mem_total_bytes: The machine's physical memory, for percentages.
    """

    pids: tuple[int, ...]
    rss_bytes: int
    cpu_pct: float | None
    threads: int
    mem_total_bytes: int


class ProcessUsageReader:
    """Reads memory and CPU of one process, and by default of its children too.

    CPU percent is measured per process between consecutive reads; a child that starts between
    two reads counts all of its CPU time, one that ends between them loses what it used since
    the previous read.

    Args:
        pid: The process to watch; None means this one.
        include_children: Add the children (recursively) to the reading.
        psutil_module: psutil or a stand-in with ``Process`` and ``virtual_memory``.
        proc_root: Where ``/proc`` is, for the children lists.
        clock: Monotonic seconds, to time CPU windows.
        sleep: Called to wait out :data:`MIN_CPU_WINDOW_S` before the first reading.

    Raises:
        ProcessLookupError: ``pid`` is not running.
    """

    def __init__(
        self,
        pid: int | None = None,
        *,
        include_children: bool = True,
        psutil_module: ModuleType | None = None,
        proc_root: str | Path = "/proc",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._ps: Any = psutil if psutil_module is None else psutil_module
        self.pid = os.getpid() if pid is None else pid
        self._children = include_children
        self._proc = Path(proc_root)
        self._clock = clock
        self._sleep = sleep
        try:
            root = self._ps.Process(self.pid)
        except self._ps.NoSuchProcess as exc:
            raise ProcessLookupError(f"no process with pid {self.pid}") from exc
        self._procs: dict[int, Any] = {self.pid: root}
        self._cpu_s: dict[int, float] = {}
        self._mem_total = int(self._ps.virtual_memory().total)
        self._first = True
        for tree_pid, proc in self._tree():
            self._cpu_s[tree_pid] = self._cpu_seconds(proc) or 0.0
        self._t = clock()

    def read(self) -> ProcessUsage:
        """Read the process tree once.

        Raises:
            ProcessLookupError: the watched process has ended.
        """
        if self._first:
            self._first = False
            wait_s = MIN_CPU_WINDOW_S - (self._clock() - self._t)
            if wait_s > 0:
                self._sleep(wait_s)
        rss = threads = 0
        cpu_s_used = 0.0
        seen: dict[int, float] = {}
        pids: list[int] = []
        for pid, proc in self._tree():
            try:
                with proc.oneshot():
                    if pid == self.pid and proc.status() == self._ps.STATUS_ZOMBIE:
                        # Ended, not yet reaped by its parent: no longer running.
                        raise ProcessLookupError(f"process {self.pid} has ended")
                    mem = proc.memory_info()
                    cpu_s = self._cpu_seconds(proc)
                    n_threads = int(proc.num_threads())
            except (self._ps.NoSuchProcess, self._ps.ZombieProcess):
                if pid == self.pid:
                    raise ProcessLookupError(f"process {self.pid} has ended") from None
                continue
            except self._ps.AccessDenied:
                continue
            pids.append(pid)
            rss += int(mem.rss)
            threads += n_threads
            if cpu_s is not None:
                seen[pid] = cpu_s
                # A pid not seen before started since the last read: all its time is new.
                cpu_s_used += max(0.0, cpu_s - self._cpu_s.get(pid, 0.0))
        t = self._clock()
        elapsed_s = t - self._t
        self._t, self._cpu_s = t, seen
        for gone in self._procs.keys() - set(pids) - {self.pid}:
            del self._procs[gone]
        cpu_pct = 100.0 * cpu_s_used / elapsed_s if elapsed_s >= MIN_CPU_WINDOW_S / 2 else None
        return ProcessUsage(
            pids=tuple(pids),
            rss_bytes=rss,
            cpu_pct=cpu_pct,
            threads=threads,
            mem_total_bytes=self._mem_total,
        )

    def _tree(self) -> Iterator[tuple[int, Any]]:
        yield self.pid, self._procs[self.pid]
        if not self._children:
            return
        for pid in self._child_pids():
            proc = self._procs.get(pid)
            if proc is None:
                try:
                    proc = self._procs[pid] = self._ps.Process(pid)
                except (self._ps.NoSuchProcess, self._ps.AccessDenied):
                    continue
            yield pid, proc

    def _child_pids(self) -> list[int]:
        """Descendants of the root, from the kernel's per-thread children lists.

        Kernels built without CONFIG_PROC_CHILDREN have no such file; psutil's scan of every
        process is the fallback there.
        """
        found: list[int] = []
        todo = [self.pid]
        while todo:
            pid = todo.pop()
            try:
                tasks = list((self._proc / str(pid) / "task").iterdir())
            except OSError:
                continue
            for task in tasks:
                try:
                    text = (task / "children").read_text()
                except FileNotFoundError:
                    if pid == self.pid and task.name == str(pid):
                        return self._scan_children()
                    continue
                except OSError:
                    continue
                for word in text.split():
                    child = int(word)
                    found.append(child)
                    todo.append(child)
        return found

    def _scan_children(self) -> list[int]:
        try:
            return [int(p.pid) for p in self._procs[self.pid].children(recursive=True)]
        except (self._ps.NoSuchProcess, self._ps.AccessDenied):
            return []

    def _cpu_seconds(self, proc: Any) -> float | None:
        try:
            times = proc.cpu_times()
        except self._ps.AccessDenied:
            return None
        return float(times.user) + float(times.system)


def cpu_temperature_c(psutil_module: ModuleType | None = None) -> float | None:
    """The hottest CPU package/core sensor, in °C; None where the machine exposes none."""
    ps: Any = psutil if psutil_module is None else psutil_module
    reader = getattr(ps, "sensors_temperatures", None)
    if reader is None:
        return None
    try:
        chips = reader()
    except (OSError, RuntimeError):
        return None
    values = [
        float(entry.current)
        for chip, entries in chips.items()
        if chip in CPU_SENSOR_CHIPS
        for entry in entries
        if entry.current is not None and entry.current > 0
    ]
    return max(values) if values else None
