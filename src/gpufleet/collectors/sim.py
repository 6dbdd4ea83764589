"""A synthetic fleet: GPU and host sources that need no GPU, driver or psutil.

``SimGpuSource`` answers like NVML on a node of ``gpus`` boards of one model while a
workload schedule (a ``Scenario``, or a self-generated day-by-day one) runs on them. A
reading is a pure function of (seed, node, GPU index, time): temperature, which lags power,
is computed from the load over a short look-back instead of from state, so the same time
gives the same sample whatever was asked before. ``SimSystemSource`` makes the host of such
a node: CPU, memory, disk and network that follow the GPU work.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Sequence

from gpufleet.collectors.sim_host import HostLoad, HostTally, SimSystemSource
from gpufleet.collectors.sim_models import DEFAULT_MODEL, MIB, GpuModel, get_model
from gpufleet.collectors.sim_scenario import Scenario, Timeline, live_window
from gpufleet.collectors.sim_workload import (
    DAY_S,
    Workload,
    WorkloadKind,
    noise,
    stable_seed,
    unit,
)
from gpufleet.model import Attribution, GpuProcess, GpuSample, GpuSourceStatus

__all__ = ["DRIVER_VERSION", "HostLoad", "SimGpuSource", "SimSystemSource"]

DRIVER_VERSION = "550.54.15"
NVML_VERSION = "12.550.54.15"

_DGX_BUSES = ("18", "2A", "3A", "5D", "9A", "AB", "BA", "DB")
"""PCI buses of the eight GPUs of an HGX H100 board, so the first eight look familiar."""

_THERMAL_TAU_S = 90.0
_LOOKBACK_GRID_S = 60.0
_DECAY_1 = math.exp(-_LOOKBACK_GRID_S / _THERMAL_TAU_S)
_DECAY_2 = _DECAY_1 * _DECAY_1
_LOOKBACK_WEIGHT = 1.0 + _DECAY_1 + _DECAY_2
_CONTEXT_LOAD = 0.03
"""Extra power (share of the dynamic range) a held CUDA context costs at zero utilization."""
_IDLE_LEVELS = 8
_LOADS_KEPT = 32
_READINGS_KEPT = 1024
"""Distinct readings remembered per GPU; an idle GPU needs a few dozen, a busy one more."""
_EMPTY_MEM_BYTES = MIB
"""What NVML reports used on a GPU with no context."""

_MEM_UTIL_RATIO = {
    WorkloadKind.TRAINING: 0.45,
    WorkloadKind.INFERENCE: 0.55,
    WorkloadKind.BATCH: 0.3,
    WorkloadKind.NOTEBOOK: 0.4,
}
"""Memory-controller utilization per unit of SM utilization: decoding LLMs is memory-bound."""
_PCIE_SHARE = {
    WorkloadKind.TRAINING: 0.03,
    WorkloadKind.INFERENCE: 0.01,
    WorkloadKind.BATCH: 0.08,
    WorkloadKind.NOTEBOOK: 0.01,
}
"""Share of the slot's PCIe bandwidth fed host-to-device at full utilization."""

_State = tuple[float, float, tuple[Workload, ...], tuple[float, ...]]
"""Of one GPU at one time: utilization %, load fraction, active workloads, their utils."""
_IDLE_STATE: _State = (0.0, 0.0, (), ())


class SimGpuSource:
    """A ``GpuSource`` that simulates ``gpus`` boards of ``model`` on one node.

    With ``scenario`` the source plays the workloads the scenario places on ``node``;
    without, it makes its own day-by-day schedule (jobs that start and stop within minutes,
    a long training run, an idle notebook, shared inference servers), with days counted
    from ``start_s`` (UTC midnight when None). ``start_s`` is ignored with a scenario.

    Raises:
        ValueError: ``gpus`` < 1, an unknown ``model``, or a scenario that uses a GPU index
            the node does not have.
    """

    name = "sim"

    def __init__(
        self,
        gpus: int = 8,
        model: str = DEFAULT_MODEL,
        *,
        seed: int = 0,
        node: str = "sim-node-0",
        scenario: Scenario | None = None,
        start_s: float | None = None,
    ) -> None:
        if gpus < 1:
            raise ValueError(f"gpus must be at least 1, got {gpus}")
        self.gpus = gpus
        self.model: GpuModel = get_model(model)
        self.seed = seed
        self.node = node
        self.scenario = scenario
        self.start_s = start_s
        if scenario is not None and scenario.max_gpu_index(node) >= gpus:
            raise ValueError(
                f"the scenario uses GPU {scenario.max_gpu_index(node)} of {node}, "
                f"which has only {gpus} GPUs"
            )
        self._timelines: list[Timeline] | None = (
            [scenario.timeline(node, i) for i in range(gpus)] if scenario is not None else None
        )
        self._origin_s = start_s if start_s is not None else 0.0
        self._windows: dict[int, Scenario] = {}
        self._gpu_seeds = [stable_seed("gpu", seed, node, i) for i in range(gpus)]
        self._uuids = [_gpu_uuid(s) for s in self._gpu_seeds]
        self._bus_ids = [_bus_id(i) for i in range(gpus)]
        # Model constants the sampling path would otherwise recompute for every reading.
        m = self.model
        self._power_range_w = m.power_limit_w - m.power_idle_w
        self._power_jitter_w = 0.012 * m.power_limit_w
        self._power_cap_w = 0.97 * m.power_limit_w
        self._temp_range_c = m.temp_full_load_c - m.temp_idle_c
        self._sm_range_mhz = m.sm_clock_max_mhz - m.sm_clock_idle_mhz
        self._mem_total_bytes = m.mem_total_bytes
        self._pcie_scale = {k: m.pcie_max_bytes_per_s * v / 100.0 for k, v in _PCIE_SHARE.items()}
        self._encoder_pct = 0.0 if m.has_encoder else None
        self._ecc = 0 if m.ecc else None
        self._mig_mode = False if m.mig else None
        # Where a board sits in the chassis changes its temperature by a few degrees.
        self._temp_base_c = [m.temp_idle_c + 5.0 * (unit(s, 7) - 0.5) for s in self._gpu_seeds]
        # Per GPU, the load at recent times (two generations, so the memo stays small): the
        # temperature look-back of a regular sampler then costs dictionary hits.
        self._loads: list[dict[float, float]] = [{} for _ in range(gpus)]
        self._loads_old: list[dict[float, float]] = [{} for _ in range(gpus)]
        self._host_loads: dict[float, HostLoad] = {}
        # Readings are immutable, and an idle or steadily busy GPU repeats itself, so equal
        # readings share one record instead of building thousands of equal ones.
        self._readings: list[dict[tuple[object, ...], GpuSample]] = [{} for _ in range(gpus)]
        self._procs: dict[tuple[str, float, int], _ProcessMaker] = {}

    def status(self) -> GpuSourceStatus:
        """Always available: the simulator needs no driver."""
        return GpuSourceStatus(
            source="sim",
            available=True,
            gpu_count=self.gpus,
            library_installed=True,
            driver_version=DRIVER_VERSION,
            nvml_version=NVML_VERSION,
        )

    def close(self) -> None:
        """Drop the memoised readings and generated windows."""
        for memo in (*self._loads, *self._loads_old):
            memo.clear()
        for readings in self._readings:
            readings.clear()
        self._host_loads = {}
        self._windows.clear()
        self._procs.clear()

    def _active(self, index: int, t: float) -> tuple[Workload, ...]:
        """Workloads on GPU ``index`` at ``t`` in the self-generated day-by-day schedule."""
        k = math.floor((t - self._origin_s) / DAY_S)
        window = self._windows.get(k)
        if window is None:
            if len(self._windows) >= 8:
                self._windows.clear()
            window = live_window(
                seed=self.seed,
                node=self.node,
                gpus=self.gpus,
                window_start_s=self._origin_s + k * DAY_S,
            )
            self._windows[k] = window
        return window.active(self.node, index, t)

    def _state(self, index: int, t: float) -> _State:
        timelines = self._timelines
        active = timelines[index].active(t) if timelines is not None else self._active(index, t)
        return self._state_of(active, index, t)

    def _state_of(self, active: tuple[Workload, ...], index: int, t: float) -> _State:
        """Utilization and load that ``active`` drive on GPU ``index`` at ``t``."""
        if not active:
            return _IDLE_STATE
        n = int(t)
        if len(active) == 1:
            w = active[0]
            util = w.util_fn(w, index, t, n)
            parts: tuple[float, ...] = (util,)
            intensity = w.power_intensity
        else:
            parts = tuple(w.util_fn(w, index, t, n) for w in active)
            # Kernels of sharing processes overlap in time, so busy time does not add up.
            idle = 1.0
            for p in parts:
                idle *= 1.0 - p / 100.0
            util = 100.0 * (1.0 - idle)
            intensity = sum(p * w.power_intensity for p, w in zip(parts, active, strict=True))
            intensity /= sum(parts) or 1.0
        load = min(1.0, (util / 100.0) ** 0.9 * intensity + _CONTEXT_LOAD)
        return (util, load, active, parts)

    def _remember(self, index: int, t: float, load: float) -> None:
        memo = self._loads[index]
        if len(memo) >= _LOADS_KEPT:
            self._loads_old[index] = memo
            memo = self._loads[index] = {}
        memo[t] = load

    def _load_at(self, index: int, t: float) -> float:
        load = self._loads[index].get(t)
        if load is None:
            load = self._loads_old[index].get(t)
            if load is None:
                load = self._state(index, t)[1]
                self._remember(index, t, load)
        return load

    def _process(self, w: Workload, index: int, util_pct: float) -> GpuProcess:
        key = (w.name, w.start_s, index)
        maker = self._procs.get(key)
        if maker is None:
            if len(self._procs) > 4096:
                self._procs.clear()
            slot = w.gpu_indices.index(index)
            maker = self._procs[key] = _ProcessMaker(
                pid=1000 + stable_seed("pid", w.seed, w.name, slot) % 4_000_000,
                name=w.process_name,
                mem_bytes=int(w.mem_frac * self.model.mem_total_mib) * MIB,
                attribution=_attribution(w),
            )
        return maker.at(util_pct)

    def sample(self, now_s: float) -> tuple[GpuSample, ...]:
        """Read every simulated GPU at ``now_s``."""
        return self.sample_many((now_s,))[0]

    def sample_many(self, times: Sequence[float]) -> list[tuple[GpuSample, ...]]:
        """Every GPU at each of ``times``: the same as ``[self.sample(t) for t in times]``.

        Cheaper for a run of times (a demo history): each GPU's memo and reading cache are
        looked up once per run instead of once per reading.
        """
        # The look-back grid and its weight are the same for every GPU at one time.
        grids = [(math.ceil(t / _LOOKBACK_GRID_S) - 1) * _LOOKBACK_GRID_S for t in times]
        lags = [math.exp((g - t) / _THERMAL_TAU_S) for g, t in zip(grids, times, strict=True)]
        tallies = [HostTally() for _ in times]
        columns = []
        for index in range(self.gpus):
            column = []
            cache = self._readings[index]
            temp_base = self._temp_base_c[index]
            temp_range = self._temp_range_c
            timeline = self._timelines[index] if self._timelines is not None else None
            seg_start = seg_end = 0.0
            seg: tuple[Workload, ...] = ()
            for t, grid, lag, tally in zip(times, grids, lags, tallies, strict=True):
                if timeline is None:
                    state = self._state(index, t)
                else:
                    # Times mostly ascend: reuse the schedule segment until it ends.
                    if not seg_start <= t < seg_end:
                        seg_start, seg_end, seg = timeline.segment(t)
                    state = self._state_of(seg, index, t)
                util, load, active, parts = state
                if active:
                    tally.add(state, t)
                # Temperature follows power through a first-order lag over the look-back
                # grid; a regular sampler finds the grid points among its own readings.
                memo = self._loads[index]
                if len(memo) >= _LOADS_KEPT:
                    self._loads_old[index] = memo
                    memo = self._loads[index] = {}
                memo[t] = load
                g1 = grid - _LOOKBACK_GRID_S
                g2 = g1 - _LOOKBACK_GRID_S
                l0 = memo.get(grid)
                l1 = memo.get(g1)
                l2 = memo.get(g2)
                if l0 is None or l1 is None or l2 is None:
                    l0 = self._load_at(index, grid)
                    l1 = self._load_at(index, g1)
                    l2 = self._load_at(index, g2)
                heat = (load + lag * (l0 + _DECAY_1 * l1 + _DECAY_2 * l2)) / (
                    1.0 + lag * _LOOKBACK_WEIGHT
                )
                # Utilization noise already reaches the temperature through the load; it
                # is an integer in NVML, so it steps only when the load really moves.
                temp = float(round(temp_base + temp_range * heat))
                util_pct = float(round(util))
                # A working GPU's power, clocks and PCIe traffic follow its utilization,
                # whose noise they inherit; an idle one only jitters. Few distinct keys let
                # equal readings share one immutable record (see _readings).
                if not active:
                    level = int(noise(self._gpu_seeds[index], int(t)) * _IDLE_LEVELS)
                    key: tuple[object, ...] = (active, temp, level)
                elif len(active) == 1:
                    level = 0
                    key = (active, util_pct, temp)
                else:
                    level = 0
                    # The record must depend on the key alone: built from whole percents.
                    parts = tuple(float(round(p)) for p in parts)
                    key = (active, util_pct, temp, parts)
                reading = cache.get(key)
                if reading is None:
                    if len(cache) >= _READINGS_KEPT:
                        cache.clear()
                    reading = cache[key] = self._reading(
                        index, util_pct=util_pct, temp=temp, level=level, active=active, parts=parts
                    )
                column.append(reading)
            columns.append(column)
        self._host_loads = {
            t: tally.result(self.gpus) for t, tally in zip(times, tallies, strict=True)
        }
        return list(zip(*columns, strict=True))

    def _reading(
        self,
        index: int,
        *,
        util_pct: float,
        temp: float,
        level: int,
        active: tuple[Workload, ...],
        parts: tuple[float, ...],
    ) -> GpuSample:
        """The record for one GPU given everything that varies between readings.

        ``level`` (0 .. _IDLE_LEVELS - 1) is the jitter of an idle GPU's power and traffic.
        """
        m = self.model
        jitter = (level + 0.5) / _IDLE_LEVELS  # in (0, 1)
        throttle: tuple[str, ...] = ()
        rx = 40_000.0 + 20_000.0 * jitter  # driver and monitoring traffic
        if active:
            if len(active) == 1:
                intensity = active[0].power_intensity
                processes: tuple[GpuProcess, ...] = (self._process(active[0], index, util_pct),)
            else:
                weight = sum(parts) or 1.0
                intensity = sum(p * w.power_intensity for p, w in zip(parts, active, strict=True))
                intensity /= weight
                processes = tuple(
                    self._process(w, index, part) for w, part in zip(active, parts, strict=True)
                )
            used = sum(p.used_memory_bytes or 0 for p in processes)
            load = min(1.0, (util_pct / 100.0) ** 0.9 * intensity + _CONTEXT_LOAD)
            power = min(m.power_limit_w, m.power_idle_w + self._power_range_w * load)
            kind = active[0].kind
            pstate = "P0"
            sm = m.sm_clock_idle_mhz + self._sm_range_mhz * (0.6 + 0.4 * min(1.0, util_pct / 50.0))
            if power >= self._power_cap_w:
                # Boost gives back clock to stay under the power limit.
                sm *= 0.86 + 0.08 * min(1.0, (100.0 - util_pct) / 15.0)
                throttle = ("sw_power_cap",)
            mem_clock = m.mem_clock_max_mhz
            util_mem = float(round(util_pct * _MEM_UTIL_RATIO[kind]))
            rx += self._pcie_scale[kind] * util_pct
        else:
            power = m.power_idle_w + (jitter - 0.5) * self._power_jitter_w
            pstate = "P8"
            sm = m.sm_clock_idle_mhz
            mem_clock = m.mem_clock_idle_mhz
            util_mem = 0.0
            used = _EMPTY_MEM_BYTES
            processes = ()
        if util_pct < 1.0:
            throttle = ("gpu_idle", *throttle)
        clock = float(round(sm))
        total = self._mem_total_bytes
        return GpuSample(
            uuid=self._uuids[index],
            index=index,
            name=m.name,
            driver_version=DRIVER_VERSION,
            pci_bus_id=self._bus_ids[index],
            cuda_capability=m.cuda_capability,
            util_gpu_pct=util_pct,
            util_mem_pct=util_mem,
            util_encoder_pct=self._encoder_pct,
            util_decoder_pct=0.0,
            mem_total_bytes=total,
            mem_used_bytes=used,
            mem_free_bytes=total - used,
            temp_c=temp,
            temp_slowdown_c=m.temp_slowdown_c,
            temp_shutdown_c=m.temp_shutdown_c,
            power_w=round(power, 3),
            power_limit_w=m.power_limit_w,
            clock_graphics_mhz=clock,
            clock_sm_mhz=clock,
            clock_mem_mhz=mem_clock,
            pstate=pstate,
            fan_pct=min(100.0, max(30.0, 30.0 + (temp - 40.0) * 1.8)) if m.has_fan else None,
            pcie_tx_bytes_per_s=float(round(rx * 0.35)),
            pcie_rx_bytes_per_s=float(round(rx)),
            ecc_corrected_total=self._ecc,
            ecc_uncorrected_total=self._ecc,
            throttle_reasons=throttle,
            mig_mode=self._mig_mode,
            processes=processes,
        )

    def host_load(self, now_s: float) -> HostLoad:
        """What the node's GPU work asks of its host at ``now_s`` (for ``SimSystemSource``).

        Free for the times of the last ``sample``/``sample_many`` call, which a host
        sampled right after its GPUs asks for.
        """
        load = self._host_loads.get(now_s)
        if load is None:
            tally = HostTally()
            for i in range(self.gpus):
                tally.add(self._state(i, now_s), now_s)
            load = tally.result(self.gpus)
        return load


class _ProcessMaker:
    """Makes the ``GpuProcess`` of one workload on one GPU, reusing equal records.

    Only the process's utilization changes between readings, and it is a whole percent,
    so a handful of immutable records serve a whole run.
    """

    __slots__ = ("_made", "attribution", "mem_bytes", "name", "pid")

    def __init__(self, *, pid: int, name: str, mem_bytes: int, attribution: Attribution) -> None:
        self.pid = pid
        self.name = name
        self.mem_bytes = mem_bytes
        self.attribution = attribution
        self._made: dict[float, GpuProcess] = {}

    def at(self, util_pct: float) -> GpuProcess:
        """The process record with ``util_pct`` SM utilization."""
        proc = self._made.get(util_pct)
        if proc is None:
            proc = GpuProcess(
                pid=self.pid,
                name=self.name,
                used_memory_bytes=self.mem_bytes,
                sm_util_pct=util_pct,
                kind="compute",
                attribution=self.attribution,
            )
            self._made[util_pct] = proc
        return proc


def _gpu_uuid(seed: int) -> str:
    raw = seed.to_bytes(8, "big") + stable_seed("uuid", seed).to_bytes(8, "big")
    return "GPU-" + str(uuid.UUID(bytes=raw, version=4))


def _bus_id(index: int) -> str:
    bus = _DGX_BUSES[index] if index < len(_DGX_BUSES) else f"{0xE0 + index - len(_DGX_BUSES):02X}"
    return f"00000000:{bus}:00.0"


def _attribution(w: Workload) -> Attribution:
    if w.pod is None:
        return Attribution(
            namespace=w.namespace,
            user=w.user,
            workload=w.name,
            unix_user=w.unix_user,
            workload_kind=str(w.kind),
        )
    return Attribution(
        namespace=w.namespace,
        user=w.user,
        workload=w.name,
        unix_user=w.unix_user,
        container_id=hashlib.sha256(f"{w.seed}/{w.name}".encode()).hexdigest(),
        pod=w.pod,
        k8s_namespace=w.namespace,
        workload_kind=str(w.kind),
    )
