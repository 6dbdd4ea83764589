"""Typed results of an agent's ``/gpu/*`` endpoints (live GPU readings).

Frozen dataclasses with units in field names (``_pct``, ``_mib``, ``_w``, ``_c``, ``_s``); a
reading the hardware does not support is ``None``, never 0. Memory is in MiB, as the wire's
``*_mb`` fields are. The JSON a result was built from stays available as ``.raw``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpufleet.client._wire import (
    Json,
    integer,
    many,
    num,
    obj,
    opt_bool,
    opt_float,
    opt_str,
    ts,
)


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """``GET /gpu/info``: whether GPUs can be read on this node, and why not."""

    available: bool
    gpu_count: int
    nvml_installed: bool
    source: str
    driver_version: str | None
    nvml_version: str | None
    reason: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuInfo:
        return cls(
            available=bool(d["available"]),
            gpu_count=integer(d["gpu_count"]),
            nvml_installed=bool(d.get("pynvml_installed")),
            source=str(d["source"]),
            driver_version=opt_str(d.get("driver_version")),
            nvml_version=opt_str(d.get("nvml_version")),
            reason=opt_str(d.get("reason")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A process on a GPU with who it belongs to (``unknown`` where no level is known)."""

    pid: int
    name: str | None
    used_memory_mib: float | None
    sm_util_pct: float | None
    kind: str
    namespace: str
    user: str
    workload: str
    workload_kind: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuProcess:
        return cls(
            pid=integer(d["pid"]),
            name=opt_str(d.get("process_name")),
            used_memory_mib=opt_float(d.get("used_memory_mb")),
            sm_util_pct=opt_float(d.get("sm_utilization_percent")),
            kind=str(d.get("type", "compute")),
            namespace=str(d.get("namespace", "unknown")),
            user=str(d.get("user", "unknown")),
            workload=str(d.get("workload", "unknown")),
            workload_kind=opt_str(d.get("workload_kind")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU now (``GET /gpu/metrics/{gpu}``); ``index`` is a display hint, ``uuid``
    identifies it. Memory is in MiB (the wire's ``*_mb`` fields are MiB)."""

    index: int
    uuid: str
    name: str | None
    driver_version: str | None
    util_gpu_pct: float | None
    util_mem_pct: float | None
    mem_total_mib: float | None
    mem_used_mib: float | None
    mem_free_mib: float | None
    mem_used_pct: float | None
    temp_c: float | None
    temp_slowdown_c: float | None
    temp_shutdown_c: float | None
    power_w: float | None
    power_limit_w: float | None
    power_pct: float | None
    fan_pct: float | None
    performance_state: str | None
    allocated: bool
    lost: bool
    error: str | None
    processes: tuple[GpuProcess, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Gpu:
        util, mem = obj(d.get("utilization")), obj(d.get("memory"))
        temp, power = obj(d.get("temperature")), obj(d.get("power"))
        return cls(
            index=integer(d["gpu_id"]),
            uuid=str(d["gpu_uuid"]),
            name=opt_str(d.get("gpu_name")),
            driver_version=opt_str(d.get("driver_version")),
            util_gpu_pct=opt_float(util.get("gpu_percent")),
            util_mem_pct=opt_float(util.get("memory_percent")),
            mem_total_mib=opt_float(mem.get("total_mb")),
            mem_used_mib=opt_float(mem.get("used_mb")),
            mem_free_mib=opt_float(mem.get("free_mb")),
            mem_used_pct=opt_float(mem.get("utilization_percent")),
            temp_c=opt_float(temp.get("current_celsius")),
            temp_slowdown_c=opt_float(temp.get("slowdown_threshold_celsius")),
            temp_shutdown_c=opt_float(temp.get("shutdown_threshold_celsius")),
            power_w=opt_float(power.get("power_draw_watts")),
            power_limit_w=opt_float(power.get("power_limit_watts")),
            power_pct=opt_float(power.get("power_usage_percent")),
            fan_pct=opt_float(d.get("fan_speed_percent")),
            performance_state=opt_str(d.get("performance_state")),
            allocated=bool(d.get("allocated")),
            lost=bool(d.get("lost")),
            error=opt_str(d.get("error")),
            processes=many(d.get("processes"), GpuProcess.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class NodeGpus:
    """Every GPU of a node now (``GET /gpu/metrics``); averages skip lost GPUs and
    unsupported readings."""

    ts_s: float
    instance_id: str
    cluster: str
    node: str
    gpu_count: int
    gpus: tuple[Gpu, ...]
    avg_gpu_util_pct: float | None
    avg_mem_util_pct: float | None
    avg_temp_c: float | None
    total_power_w: float | None
    total_mem_used_mib: float | None
    total_mem_total_mib: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> NodeGpus:
        return cls(
            ts_s=ts(d["timestamp"]),
            instance_id=str(d.get("instance_id", "")),
            cluster=str(d.get("cluster", "")),
            node=str(d.get("node", "")),
            gpu_count=integer(d["gpu_count"]),
            gpus=many(d.get("gpus"), Gpu.from_wire),
            avg_gpu_util_pct=opt_float(d.get("average_gpu_utilization")),
            avg_mem_util_pct=opt_float(d.get("average_memory_utilization")),
            avg_temp_c=opt_float(d.get("average_temperature")),
            total_power_w=opt_float(d.get("total_power_draw_watts")),
            total_mem_used_mib=opt_float(d.get("total_memory_used_mb")),
            total_mem_total_mib=opt_float(d.get("total_memory_total_mb")),
            raw=d,
        )

    def gpu(self, gpu: int | str) -> Gpu:
        """A GPU of this result by index or UUID.

        Raises:
            KeyError: no such GPU here.
        """
        for g in self.gpus:
            if g.uuid == gpu or (isinstance(gpu, int) and g.index == gpu):
                return g
        raise KeyError(f"no GPU {gpu!r} among {', '.join(g.uuid for g in self.gpus)}")


@dataclass(frozen=True, slots=True)
class RecentStats:
    """Mean, min and max of a reading over the minutes the agent keeps in memory."""

    mean: float | None
    min: float | None
    max: float | None

    @classmethod
    def from_wire(cls, d: Json) -> RecentStats:
        return cls(opt_float(d.get("mean")), opt_float(d.get("min")), opt_float(d.get("max")))


@dataclass(frozen=True, slots=True)
class GpuRow:
    """What each ``/gpu/utilization|temperature|memory|power`` row says about its GPU."""

    index: int
    uuid: str
    name: str | None
    lost: bool

    @classmethod
    def from_wire(cls, d: Json) -> GpuRow:
        return cls(
            integer(d["gpu_id"]), str(d["gpu_uuid"]), opt_str(d.get("gpu_name")), bool(d["lost"])
        )


@dataclass(frozen=True, slots=True)
class GpuUtilizationRow:
    gpu: GpuRow
    util_gpu_pct: float | None
    util_mem_pct: float | None
    allocated: bool
    idle: bool
    recent_util_gpu_pct: RecentStats
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuUtilizationRow:
        return cls(
            gpu=GpuRow.from_wire(d),
            util_gpu_pct=opt_float(d.get("gpu_percent")),
            util_mem_pct=opt_float(d.get("memory_percent")),
            allocated=bool(d.get("allocated")),
            idle=bool(d.get("idle")),
            recent_util_gpu_pct=RecentStats.from_wire(obj(d.get("recent_gpu_percent"))),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class GpuUtilization:
    """``GET /gpu/utilization``: utilization now, recent minutes, allocated and idle GPUs."""

    ts_s: float
    node: str
    gpu_count: int
    gpus: tuple[GpuUtilizationRow, ...]
    avg_util_gpu_pct: float | None
    allocated_gpus: int
    idle_allocated_gpus: int
    idle_threshold_pct: float
    recent_window_s: float
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuUtilization:
        return cls(
            ts_s=ts(d["timestamp"]),
            node=str(d["node"]),
            gpu_count=integer(d["gpu_count"]),
            gpus=many(d.get("gpus"), GpuUtilizationRow.from_wire),
            avg_util_gpu_pct=opt_float(d.get("average_gpu_percent")),
            allocated_gpus=integer(d["allocated_gpus"]),
            idle_allocated_gpus=integer(d["idle_allocated_gpus"]),
            idle_threshold_pct=num(d["idle_threshold_pct"]),
            recent_window_s=num(d.get("recent_window_s", 0.0)),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class GpuTemperatureRow:
    gpu: GpuRow
    temp_c: float | None
    temp_slowdown_c: float | None
    temp_shutdown_c: float | None
    margin_to_slowdown_c: float | None
    fan_pct: float | None
    thermal_throttling: bool | None
    recent_temp_c: RecentStats
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuTemperatureRow:
        return cls(
            gpu=GpuRow.from_wire(d),
            temp_c=opt_float(d.get("current_celsius")),
            temp_slowdown_c=opt_float(d.get("slowdown_threshold_celsius")),
            temp_shutdown_c=opt_float(d.get("shutdown_threshold_celsius")),
            margin_to_slowdown_c=opt_float(d.get("margin_to_slowdown_celsius")),
            fan_pct=opt_float(d.get("fan_speed_percent")),
            thermal_throttling=opt_bool(d.get("thermal_throttling")),
            recent_temp_c=RecentStats.from_wire(obj(d.get("recent_celsius"))),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class GpuTemperatures:
    """``GET /gpu/temperature``: temperatures against their slowdown/shutdown thresholds."""

    ts_s: float
    node: str
    gpu_count: int
    gpus: tuple[GpuTemperatureRow, ...]
    avg_temp_c: float | None
    max_temp_c: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuTemperatures:
        return cls(
            ts_s=ts(d["timestamp"]),
            node=str(d["node"]),
            gpu_count=integer(d["gpu_count"]),
            gpus=many(d.get("gpus"), GpuTemperatureRow.from_wire),
            avg_temp_c=opt_float(d.get("average_celsius")),
            max_temp_c=opt_float(d.get("max_celsius")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class GpuMemoryRow:
    gpu: GpuRow
    mem_total_mib: float | None
    mem_used_mib: float | None
    mem_free_mib: float | None
    mem_used_pct: float | None
    processes: tuple[GpuProcess, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuMemoryRow:
        return cls(
            gpu=GpuRow.from_wire(d),
            mem_total_mib=opt_float(d.get("total_mb")),
            mem_used_mib=opt_float(d.get("used_mb")),
            mem_free_mib=opt_float(d.get("free_mb")),
            mem_used_pct=opt_float(d.get("utilization_percent")),
            processes=many(d.get("processes"), GpuProcess.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class GpuMemory:
    """``GET /gpu/memory``: GPU memory per GPU and in total, with who holds it."""

    ts_s: float
    node: str
    gpu_count: int
    gpus: tuple[GpuMemoryRow, ...]
    total_used_mib: float | None
    total_mib: float | None
    used_pct: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuMemory:
        return cls(
            ts_s=ts(d["timestamp"]),
            node=str(d["node"]),
            gpu_count=integer(d["gpu_count"]),
            gpus=many(d.get("gpus"), GpuMemoryRow.from_wire),
            total_used_mib=opt_float(d.get("total_used_mb")),
            total_mib=opt_float(d.get("total_total_mb")),
            used_pct=opt_float(d.get("used_percent")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class GpuPowerRow:
    gpu: GpuRow
    power_w: float | None
    power_limit_w: float | None
    power_pct: float | None
    power_capped: bool | None
    performance_state: str | None
    recent_power_w: RecentStats
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuPowerRow:
        return cls(
            gpu=GpuRow.from_wire(d),
            power_w=opt_float(d.get("power_draw_watts")),
            power_limit_w=opt_float(d.get("power_limit_watts")),
            power_pct=opt_float(d.get("power_usage_percent")),
            power_capped=opt_bool(d.get("power_capped")),
            performance_state=opt_str(d.get("performance_state")),
            recent_power_w=RecentStats.from_wire(obj(d.get("recent_watts"))),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class GpuPower:
    """``GET /gpu/power``: draw against the enforced limit, and whether power caps clocks."""

    ts_s: float
    node: str
    gpu_count: int
    gpus: tuple[GpuPowerRow, ...]
    total_power_w: float | None
    total_power_limit_w: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> GpuPower:
        return cls(
            ts_s=ts(d["timestamp"]),
            node=str(d["node"]),
            gpu_count=integer(d["gpu_count"]),
            gpus=many(d.get("gpus"), GpuPowerRow.from_wire),
            total_power_w=opt_float(d.get("total_power_draw_watts")),
            total_power_limit_w=opt_float(d.get("total_power_limit_watts")),
            raw=d,
        )
