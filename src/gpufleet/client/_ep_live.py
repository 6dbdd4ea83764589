"""Endpoint builders of an agent's live and history routes: ``/``, ``/health*``,
``/alerts``, ``/metrics``, ``/gpu/*`` and ``/system/*``. Each returns a
:class:`~gpufleet.client._core.Call`; :mod:`gpufleet.client._bind` makes it a method."""

from __future__ import annotations

from typing import Any

from gpufleet.client._core import Call, TimeArg, one_of, seg, time_arg
from gpufleet.client._wire import obj
from gpufleet.client.errors import InvalidArgument
from gpufleet.client.types_gpu import (
    Gpu,
    GpuInfo,
    GpuMemory,
    GpuPower,
    GpuTemperatures,
    GpuUtilization,
    NodeGpus,
)
from gpufleet.client.types_host import (
    AgentInfo,
    AlertList,
    Cpu,
    Disk,
    Health,
    History,
    Host,
    HostMemory,
    Network,
)

GPU_METRICS: tuple[str, ...] = (
    "util_gpu_pct",
    "util_mem_pct",
    "mem_used_bytes",
    "mem_total_bytes",
    "temp_c",
    "power_w",
    "clock_sm_mhz",
    "fan_pct",
    "pcie_tx_bytes_per_s",
    "pcie_rx_bytes_per_s",
)
"""GPU readings the agent keeps in history."""
SYSTEM_METRICS: tuple[str, ...] = (
    "cpu_pct",
    "load_1",
    "mem_pct",
    "mem_used_bytes",
    "swap_pct",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
    "net_rx_bytes_per_s",
    "net_tx_bytes_per_s",
)
"""Host readings the agent keeps in history."""
RESOLUTIONS: tuple[str, ...] = ("raw", "1m", "1h", "auto")


def _history_params(
    start: TimeArg, end: TimeArg, metric: str, resolution: str, allowed: tuple[str, ...]
) -> dict[str, Any]:
    one_of(metric, allowed, "metric")
    one_of(resolution, RESOLUTIONS, "resolution")
    return {
        "from": time_arg(start, "start"),
        "to": time_arg(end, "end"),
        "metric": metric,
        "resolution": resolution,
    }


# ---- service ---------------------------------------------------------------------------------


def info() -> Call[AgentInfo]:
    """What the service is (``GET /``): version, identity, GPU source, every endpoint."""
    return Call("GET", "/", lambda d: AgentInfo.from_wire(obj(d)))


def health(detailed: bool = False) -> Call[Health]:
    """``healthy`` or ``degraded`` with the reasons (``GET /health``); ``detailed`` adds
    each component's state (sampler, GPU source, store, alerts) in ``components``."""
    return Call("GET", "/health/detailed" if detailed else "/health", Health.from_wire)


def ready() -> Call[bool]:
    """True once the agent has taken its first sample (``GET /health/ready``).

    Raises:
        Unavailable: not ready yet (the detail says why).
    """
    return Call("GET", "/health/ready", lambda d: bool(obj(d)["ready"]))


def alive() -> Call[bool]:
    """True while the process serves requests (``GET /health/live``)."""
    return Call("GET", "/health/live", lambda d: bool(obj(d)["alive"]))


def alerts(
    *, active: bool = False, start: TimeArg = None, end: TimeArg = None, limit: int = 200
) -> Call[AlertList]:
    """Alerts, newest first (``GET /alerts``): only those still firing with ``active``;
    the window defaults to the last 7 days."""
    params = {
        "active": active,
        "from": time_arg(start, "start"),
        "to": time_arg(end, "end"),
        "limit": limit,
    }
    return Call("GET", "/alerts", lambda d: AlertList.from_wire(obj(d)), params)


def metrics_text() -> Call[str]:
    """The Prometheus exposition (``GET /metrics``), dcgm-exporter's GPU series names."""
    return Call("GET", "/metrics", str, text=True)


# ---- /gpu ------------------------------------------------------------------------------------


def gpu_info() -> Call[GpuInfo]:
    """Whether GPUs can be read on this node, and why not (``GET /gpu/info``)."""
    return Call("GET", "/gpu/info", lambda d: GpuInfo.from_wire(obj(d)))


def gpu_list() -> Call[NodeGpus]:
    """Every GPU of the node now (``GET /gpu/metrics``).

    Raises:
        Unavailable: no GPUs can be read here, or no sample was taken yet.
    """
    return Call("GET", "/gpu/metrics", lambda d: NodeGpus.from_wire(obj(d)))


def gpu_get(gpu: int | str) -> Call[Gpu]:
    """One GPU by index or UUID (``GET /gpu/metrics/{gpu}``).

    Raises:
        NotFoundError: no such GPU; the detail lists the node's GPUs.
    """
    if isinstance(gpu, bool) or not isinstance(gpu, int | str):
        raise InvalidArgument(f"gpu must be an index or a UUID, got {gpu!r}")
    return Call("GET", f"/gpu/metrics/{seg(gpu)}", lambda d: Gpu.from_wire(obj(d)))


def gpu_utilization() -> Call[GpuUtilization]:
    """Utilization now and over the recent minutes, allocated and idle GPUs
    (``GET /gpu/utilization``)."""
    return Call("GET", "/gpu/utilization", lambda d: GpuUtilization.from_wire(obj(d)))


def gpu_temperature() -> Call[GpuTemperatures]:
    """Temperatures against their slowdown/shutdown thresholds (``GET /gpu/temperature``)."""
    return Call("GET", "/gpu/temperature", lambda d: GpuTemperatures.from_wire(obj(d)))


def gpu_memory() -> Call[GpuMemory]:
    """GPU memory per GPU and in total, with the processes holding it (``GET /gpu/memory``)."""
    return Call("GET", "/gpu/memory", lambda d: GpuMemory.from_wire(obj(d)))


def gpu_power() -> Call[GpuPower]:
    """Power draw against the limit (``GET /gpu/power``)."""
    return Call("GET", "/gpu/power", lambda d: GpuPower.from_wire(obj(d)))


def gpu_history(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    gpu: int | str | None = None,
    metric: str = "util_gpu_pct",
    resolution: str = "auto",
    node: str | None = None,
    cluster: str | None = None,
) -> Call[History]:
    """A GPU metric over time, one series per GPU (``GET /gpu/metrics/history``).

    Args:
        start: window start (default: the server's, the last 24 h).
        end: window end (default: now).
        gpu: a UUID, or an index on ``node``.
        metric: one of :data:`GPU_METRICS`.
        resolution: ``raw``, ``1m``, ``1h`` or ``auto``.
        node: the node (default: this agent's).
        cluster: the cluster.
    """
    params = _history_params(start, end, metric, resolution, GPU_METRICS)
    params |= {"gpu": None if gpu is None else str(gpu), "node": node, "cluster": cluster}
    return Call("GET", "/gpu/metrics/history", lambda d: History.from_wire(obj(d)), params)


# ---- /system ---------------------------------------------------------------------------------


def system_cpu() -> Call[Cpu]:
    """CPU utilization in total and per core, and load average (``GET /system/cpu``)."""
    return Call("GET", "/system/cpu", lambda d: Cpu.from_wire(obj(d)))


def system_memory() -> Call[HostMemory]:
    """RAM and swap (``GET /system/memory``)."""
    return Call("GET", "/system/memory", lambda d: HostMemory.from_wire(obj(d)))


def system_disk() -> Call[Disk]:
    """Usage per mounted filesystem and I/O rates (``GET /system/disk``)."""
    return Call("GET", "/system/disk", lambda d: Disk.from_wire(obj(d)))


def system_network() -> Call[Network]:
    """Traffic per interface (``GET /system/network``)."""
    return Call("GET", "/system/network", lambda d: Network.from_wire(obj(d)))


def system_all() -> Call[Host]:
    """Every host reading of the newest snapshot (``GET /system/all``)."""
    return Call("GET", "/system/all", lambda d: Host.from_wire(obj(d)))


def system_history(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    metric: str = "cpu_pct",
    resolution: str = "auto",
    node: str | None = None,
    cluster: str | None = None,
) -> Call[History]:
    """A host metric over time, one series per node (``GET /system/history``); ``metric``
    one of :data:`SYSTEM_METRICS`."""
    params = _history_params(start, end, metric, resolution, SYSTEM_METRICS)
    params |= {"node": node, "cluster": cluster}
    return Call("GET", "/system/history", lambda d: History.from_wire(obj(d)), params)
