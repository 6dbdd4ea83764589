"""The simulated host of a GPU node: CPU, memory, disks and network that follow the GPU work.

Rates and gauges are pure functions of (seed, node, time, GPU load). Only the cumulative
network counters carry state, as real counters do: they add rate x elapsed time between
calls, so the same sequence of calls gives the same counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gpufleet.collectors.sim_models import GIB
from gpufleet.collectors.sim_workload import (
    DAY_S,
    UtilPattern,
    Workload,
    WorkloadKind,
    noise4,
    smooth,
    stable_seed,
    unit,
)
from gpufleet.model import DiskUsage, NetRate, SystemSample

TIB = 1024 * GIB
MB = 1_000_000.0


@dataclass(frozen=True, slots=True)
class HostLoad:
    """What the GPU work of a node asks of its host at one moment."""

    gpu_util_pct: float
    """Mean utilization over every GPU of the node."""
    held_gpus: int
    compute_gpus: int
    """GPUs held by training or batch work (they need data loaders)."""
    serving_gpus: int
    notebook_gpus: int
    feed: float
    """Sum of utilization fractions of the compute GPUs: how hard the loaders work."""
    serve: float
    """Sum of utilization fractions of the serving GPUs: the request rate."""
    checkpointing_gpus: int


NO_LOAD = HostLoad(0.0, 0, 0, 0, 0, 0.0, 0.0, 0)


class HostTally:
    """Adds up, GPU by GPU, what the work at one time asks of the host."""

    __slots__ = (
        "checkpointing",
        "compute",
        "feed",
        "held",
        "notebooks",
        "serve",
        "serving",
        "util",
    )

    def __init__(self) -> None:
        self.util = self.feed = self.serve = 0.0
        self.held = self.compute = self.serving = self.notebooks = self.checkpointing = 0

    def add(
        self,
        state: tuple[float, float, tuple[Workload, ...], tuple[float, ...]],
        t: float,
    ) -> None:
        """Count one GPU's state at ``t``: (utilization %, load, workloads, their utils).

        An idle GPU adds nothing, so callers may skip it.
        """
        util, _, active, parts = state
        self.util += util
        if not active:
            return
        self.held += 1
        w = active[0]
        kind = w.kind
        if kind is WorkloadKind.INFERENCE:
            self.serving += 1
            self.serve += util
        elif kind is WorkloadKind.NOTEBOOK:
            self.notebooks += 1
        else:
            self.compute += 1
            self.feed += util
            # A training job far below its level after start-up is writing a checkpoint.
            if w.pattern is UtilPattern.BUSY and parts[0] < 20.0 and t - w.start_s >= 150.0:
                self.checkpointing += 1

    def result(self, gpus: int) -> HostLoad:
        """The host load of a node with ``gpus`` GPUs."""
        return HostLoad(
            gpu_util_pct=self.util / gpus,
            held_gpus=self.held,
            compute_gpus=self.compute,
            serving_gpus=self.serving,
            notebook_gpus=self.notebooks,
            feed=self.feed / 100.0,
            serve=self.serve / 100.0,
            checkpointing_gpus=self.checkpointing,
        )


class HostLoadSource(Protocol):
    """Anything that can say what its GPUs ask of the host (``SimGpuSource`` does)."""

    node: str
    seed: int

    def host_load(self, now_s: float) -> HostLoad:
        """The GPU work's demand on the host at ``now_s``."""
        ...


@dataclass(frozen=True, slots=True)
class _Disk:
    mount: str
    device: str
    total_bytes: int
    base_used_frac: float
    growth_frac_per_day: float


_DISKS = (
    _Disk("/", "/dev/nvme0n1p2", int(1.92e12), 0.18, 0.0005),
    _Disk("/raid", "/dev/md0", int(30.7e12), 0.38, 0.006),
)
_ROTATE_S = 6 * 3600
_CLEANUP_PERIOD_S = 30 * DAY_S
"""Scratch space grows and is cleaned up on this period, so usage stays bounded."""


class SimSystemSource:
    """A ``SystemSource`` for a simulated node whose load follows ``gpu_source``.

    ``node`` and ``seed`` default to the GPU source's. Without a GPU source the host only
    shows its background load. ``boot_time_s`` defaults to a few days before the first
    sample.
    """

    def __init__(
        self,
        gpu_source: HostLoadSource | None = None,
        *,
        node: str | None = None,
        seed: int | None = None,
        cpu_count: int = 64,
        mem_total_bytes: int = TIB,
        boot_time_s: float | None = None,
    ) -> None:
        if cpu_count < 1:
            raise ValueError(f"cpu_count must be at least 1, got {cpu_count}")
        self.gpu_source = gpu_source
        self.node = node if node is not None else (gpu_source.node if gpu_source else "sim-node-0")
        self.seed = seed if seed is not None else (gpu_source.seed if gpu_source else 0)
        self.cpu_count = cpu_count
        self.mem_total_bytes = mem_total_bytes
        self.boot_time_s = boot_time_s
        self._seed = stable_seed("host", self.seed, self.node)
        # Cores are not loaded evenly (pinned loader workers); a fixed spread, rotated over
        # time, keeps per-core values cheap and their mean equal to the total.
        spread = [0.4 + 1.2 * unit(self._seed + 5, i) for i in range(cpu_count)]
        scale = cpu_count / sum(spread)
        weights = [w * scale for w in spread]
        self._weights = weights + weights
        self._cores: dict[tuple[int, int], tuple[float, ...]] = {}
        self._disk_hour: float | None = None
        self._disk_usage: tuple[DiskUsage, ...] = ()
        self._last_s: float | None = None
        self._totals = [0.0, 0.0, 0.0, 0.0]
        """rx/tx bytes of eth0, then of ib0."""

    def sample(self, now_s: float) -> SystemSample:
        """The host at ``now_s``."""
        load = self.gpu_source.host_load(now_s) if self.gpu_source else NO_LOAD
        s = self._seed
        n = int(now_s)
        if self.boot_time_s is None:
            self.boot_time_s = float(int(now_s - (3.0 + 40.0 * unit(s, 1)) * DAY_S))
        u0, u1, u2, u3 = noise4(s, n)

        # Background work (daemons, monitoring, logins) drifts slowly; memory follows it.
        background = smooth(s + 2, now_s, 1800.0)
        busy_cores = (
            0.6
            + 1.5 * background
            + 6.0 * load.feed
            + 1.5 * load.serve
            + 0.5 * load.held_gpus
            + 3.0 * load.checkpointing_gpus
        )
        cpu = min(100.0, max(0.1, 100.0 * busy_cores / self.cpu_count + (u0 - 0.5)))
        per_core = self._per_core(cpu, n)
        # Load averages over 5 and 15 minutes lean on what the held GPUs typically need,
        # which changes only when jobs start or stop.
        settled = min(
            float(self.cpu_count),
            1.4 + 5.4 * load.compute_gpus + 0.6 * load.serving_gpus + 0.5 * load.held_gpus,
        )
        load_1 = self.cpu_count * cpu / 100.0 * (0.95 + 0.1 * u1)

        total = self.mem_total_bytes
        used = (
            24 * GIB
            + 40 * GIB * load.compute_gpus
            + 12 * GIB * load.serving_gpus
            + 6 * GIB * load.notebook_gpus
        )
        used = int(min(0.95 * total, used * (0.97 + 0.06 * background)))

        read = 2 * MB + 180 * MB * load.feed + 15 * MB * load.serve
        write = 3 * MB + 1800 * MB * load.checkpointing_gpus + 5 * MB * load.compute_gpus
        read *= 0.8 + 0.4 * u2
        write *= 0.8 + 0.4 * u3

        rates = (
            1 * MB + 25 * MB * load.serve,  # eth0 rx: requests, control plane
            0.5 * MB + 60 * MB * load.serve,  # eth0 tx: responses
            0.2 * MB + 350 * MB * load.feed,  # ib0 rx: dataset reads from shared storage
            0.1 * MB + 400 * MB * load.checkpointing_gpus,  # ib0 tx: checkpoint copies
        )
        totals = self._advance(now_s, rates)
        return SystemSample(
            cpu_pct=cpu,
            cpu_per_core_pct=per_core,
            cpu_count=self.cpu_count,
            load_1=load_1,
            load_5=0.5 * load_1 + 0.5 * settled,
            load_15=0.25 * load_1 + 0.75 * settled,
            mem_total_bytes=total,
            mem_used_bytes=used,
            mem_available_bytes=total - used,
            mem_pct=100.0 * used / total,
            swap_total_bytes=0,
            swap_used_bytes=0,
            swap_pct=0.0,
            disks=self._disks(now_s),
            disk_read_bytes_per_s=read,
            disk_write_bytes_per_s=write,
            disk_read_ops_per_s=read / 131_072.0,
            disk_write_ops_per_s=write / 262_144.0,
            net=(
                NetRate(
                    "eth0",
                    rates[0],
                    rates[1],
                    rates[0] / 1400.0,
                    rates[1] / 1400.0,
                    int(totals[0]),
                    int(totals[1]),
                ),
                NetRate(
                    "ib0",
                    rates[2],
                    rates[3],
                    rates[2] / 4096.0,
                    rates[3] / 4096.0,
                    int(totals[2]),
                    int(totals[3]),
                ),
            ),
            boot_time_s=self.boot_time_s,
        )

    def _per_core(self, cpu: float, n: int) -> tuple[float, ...]:
        """Per-core load: the total spread over cores by fixed weights that rotate.

        Built from the whole-percent total, so one tuple serves every reading with the same
        percent until the weights rotate (every six hours); building 64 floats per reading
        would cost more than the rest of the host.
        """
        key = (round(cpu), n // _ROTATE_S % self.cpu_count)
        cores = self._cores.get(key)
        if cores is None:
            if len(self._cores) >= 4096:
                self._cores.clear()
            level = float(key[0])
            spread = self._weights[key[1] : key[1] + self.cpu_count]
            cores = self._cores[key] = tuple(min(100.0, level * w) for w in spread)
        return cores

    def _advance(self, now_s: float, rates: tuple[float, float, float, float]) -> list[float]:
        """Move the cumulative counters to ``now_s`` (they never go back)."""
        totals = self._totals
        if self._last_s is None:
            # Nothing is known before the first call: assume half the current rate since boot.
            half = 0.5 * max(0.0, now_s - (self.boot_time_s or now_s))
            totals[0], totals[1], totals[2], totals[3] = (r * half for r in rates)
            self._last_s = now_s
        elif now_s > self._last_s:
            dt = now_s - self._last_s
            totals[0] += rates[0] * dt
            totals[1] += rates[1] * dt
            totals[2] += rates[2] * dt
            totals[3] += rates[3] * dt
            self._last_s = now_s
        return totals

    def _disks(self, now_s: float) -> tuple[DiskUsage, ...]:
        # Usage moves by bytes per hour: one set of records serves a whole hour.
        hour = now_s // 3600.0
        if hour == self._disk_hour:
            return self._disk_usage
        self._disk_hour = hour
        cycle_days = (hour * 3600.0 % _CLEANUP_PERIOD_S) / DAY_S
        out = []
        for d in _DISKS:
            frac = min(0.97, d.base_used_frac + d.growth_frac_per_day * cycle_days)
            used = int(d.total_bytes * frac)
            out.append(
                DiskUsage(
                    mount=d.mount,
                    device=d.device,
                    fstype="ext4",
                    total_bytes=d.total_bytes,
                    used_bytes=used,
                    free_bytes=d.total_bytes - used,
                    used_pct=round(100.0 * frac, 1),
                )
            )
        self._disk_usage = tuple(out)
        return self._disk_usage
