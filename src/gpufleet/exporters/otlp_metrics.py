"""OpenTelemetry instruments over :class:`LiveState`, read at export time (no second sampler).

Names follow the OpenTelemetry semantic conventions where they define the reading (hardware
``hw.gpu.*``, ``hw.power``, ``hw.errors``; host ``system.*``); the rest sit under
``gpufleet.*``. Units are UCUM (``By``, ``W``, ``Cel``, ``Hz``, ``1``) and percentages become
fractions (unit ``1``), as the conventions ask. A reading that is None has no data point: it
is never exported as 0. docs/OPENTELEMETRY.md lists every instrument.

Only the OpenTelemetry *API* is used here (the caller brings the provider), imported when
instruments are registered, so importing this module never needs OpenTelemetry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from gpufleet import __version__
from gpufleet.agent.live import LiveState
from gpufleet.exporters.dcgm_names import pstate_number
from gpufleet.model import GpuProcess, GpuSample, NetRate, Snapshot, SystemSample

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

__all__ = [
    "LIVE_METRICS",
    "SCOPE_NAME",
    "MetricSpec",
    "gpu_attributes",
    "instrument_live_state",
]

SCOPE_NAME = "gpufleet"
"""The instrumentation scope (meter name) gpufleet records under."""

AttributeValue = str | int | float | bool
Attributes = Mapping[str, AttributeValue]
Point = tuple[float, Attributes]
Reading = tuple[float | None, Attributes]
Kind = Literal["gauge", "updown", "counter"]
"""Observable gauge; observable up-down counter (a level that adds up across attributes,
such as bytes in use); observable counter (a cumulative total that only grows)."""


class XidTally:
    """XID errors per GPU folded from every snapshot published, not only the newest.

    An XID appears in one snapshot only (those seen since the previous sample), and exports
    are far apart, so each export folds the snapshots published since the last one; matched
    by identity, so a clock step cannot make it skip or repeat one.
    """

    def __init__(self, live: LiveState) -> None:
        """Tally the XIDs of ``live``'s snapshots."""
        self._live = live
        self._lock = threading.Lock()
        self._folded: Snapshot | None = None
        self._last: dict[str, int] = {}
        self._count: dict[str, int] = {}

    def fold(self) -> tuple[dict[str, int], dict[str, int]]:
        """Fold new snapshots; copies of (last XID code, XIDs seen) per GPU UUID."""
        with self._lock:
            recent = self._live.recent()
            start = 0
            for pos in range(len(recent) - 1, -1, -1):
                if recent[pos] is self._folded:
                    start = pos + 1
                    break
            for snap in recent[start:]:
                for gpu in snap.gpus:
                    for code in gpu.xid_errors:
                        self._last[gpu.uuid] = code
                        self._count[gpu.uuid] = self._count.get(gpu.uuid, 0) + 1
            if recent:
                self._folded = recent[-1]
            return dict(self._last), dict(self._count)


@dataclass(frozen=True, slots=True)
class _View:
    """What one callback reads: the live state, its newest snapshot and the XID tallies."""

    live: LiveState
    snapshot: Snapshot | None
    xid_last: Mapping[str, int]
    xid_count: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One instrument and how to read its data points from the live state.

    Attributes:
        name: Instrument name.
        kind: Instrument kind.
        unit: UCUM unit.
        description: What it measures.
        points: The data points of one export; none whose value is unknown.
    """

    name: str
    kind: Kind
    unit: str
    description: str
    points: Callable[[_View], Iterator[Point]]


def _frac(pct: float | None) -> float | None:
    return None if pct is None else pct / 100.0


def _hz(mhz: float | None) -> float | None:
    return None if mhz is None else mhz * 1e6


def gpu_attributes(snapshot: Snapshot, gpu: GpuSample) -> dict[str, AttributeValue]:
    """Attributes on every data point of ``gpu``: the semantic conventions' ``hw.*``
    identity (``hw.id`` is the UUID), its index, and the node and cluster it is in."""
    attributes: dict[str, AttributeValue] = {
        "hw.type": "gpu",
        "hw.id": gpu.uuid,
        "gpu.index": gpu.index,
        "host.name": snapshot.node,
        "gpufleet.cluster": snapshot.cluster,
    }
    if gpu.name:
        attributes["hw.model"] = gpu.name
    if gpu.driver_version:
        attributes["hw.driver_version"] = gpu.driver_version
    return attributes


def _gpu(
    read: Callable[[GpuSample], float | None], extra: Attributes | None = None
) -> Callable[[_View], Iterator[Point]]:
    """Points of one reading of every GPU that answers, with ``extra`` attributes."""

    def points(view: _View) -> Iterator[Point]:
        snap = view.snapshot
        if snap is None:
            return
        for gpu in snap.gpus:
            value = None if gpu.lost else read(gpu)
            if value is not None:
                yield value, {**gpu_attributes(snap, gpu), **(extra or {})}

    return points


def _chain(*parts: Callable[[_View], Iterator[Point]]) -> Callable[[_View], Iterator[Point]]:
    def points(view: _View) -> Iterator[Point]:
        for part in parts:
            yield from part(view)

    return points


def _lost(view: _View) -> Iterator[Point]:
    snap = view.snapshot
    if snap is not None:
        for gpu in snap.gpus:
            yield (1.0 if gpu.lost else 0.0), gpu_attributes(snap, gpu)


def _xid(tally: Literal["last", "count"]) -> Callable[[_View], Iterator[Point]]:
    def points(view: _View) -> Iterator[Point]:
        snap = view.snapshot
        if snap is None:
            return
        table = view.xid_last if tally == "last" else view.xid_count
        for gpu in snap.gpus:
            if gpu.lost:
                continue
            # No XID yet is a real count of 0; "last XID" is 0 then too, as dcgm-exporter says.
            yield table.get(gpu.uuid, 0), gpu_attributes(snap, gpu)

    return points


def unique_processes(processes: Iterable[GpuProcess]) -> list[GpuProcess]:
    """One entry per pid. NVML lists a process with compute and graphics contexts twice, each
    time with the same memory, so the larger reading is kept rather than summed."""
    by_pid: dict[int, GpuProcess] = {}
    for proc in processes:
        seen = by_pid.get(proc.pid)
        if seen is None or (proc.used_memory_bytes or 0) > (seen.used_memory_bytes or 0):
            by_pid[proc.pid] = proc
    return sorted(by_pid.values(), key=lambda p: p.pid)


def _process(read: Callable[[GpuProcess], float | None]) -> Callable[[_View], Iterator[Point]]:
    def points(view: _View) -> Iterator[Point]:
        snap = view.snapshot
        if snap is None:
            return
        for gpu in snap.gpus:
            if gpu.lost:
                continue
            base = gpu_attributes(snap, gpu)
            for proc in unique_processes(gpu.processes):
                value = read(proc)
                if value is None:
                    continue
                attr = proc.attribution
                attributes: dict[str, AttributeValue] = {
                    **base,
                    "process.pid": proc.pid,
                    "gpufleet.namespace": attr.namespace,
                    "gpufleet.user": attr.user,
                    "gpufleet.workload": attr.workload,
                }
                if proc.name:
                    attributes["process.executable.name"] = proc.name
                yield value, attributes

    return points


def _host(read: Callable[[SystemSample], Iterable[Reading]]) -> Callable[[_View], Iterator[Point]]:
    """Points of a host reading (None values skipped), with the node and cluster."""

    def points(view: _View) -> Iterator[Point]:
        snap = view.snapshot
        if snap is None or snap.system is None:
            return
        base = {"host.name": snap.node, "gpufleet.cluster": snap.cluster}
        for value, extra in read(snap.system):
            if value is not None:
                yield value, {**base, **extra}

    return points


def _scalar(
    read: Callable[[SystemSample], float | None], extra: Attributes | None = None
) -> Callable[[SystemSample], Iterable[Reading]]:
    return lambda system: [(read(system), dict(extra or {}))]


def _cores(system: SystemSample) -> Iterator[Reading]:
    for index, pct in enumerate(system.cpu_per_core_pct):
        yield pct / 100.0, {"cpu.logical_number": index}


def _filesystems(
    part: Literal["usage", "limit", "utilization"],
) -> Callable[[SystemSample], Iterator[Reading]]:
    def read(system: SystemSample) -> Iterator[Reading]:
        seen: set[str] = set()
        for disk in system.disks:
            # A filesystem mounted twice would repeat an attribute set; the first one wins.
            if disk.mount in seen:
                continue
            seen.add(disk.mount)
            attributes: dict[str, AttributeValue] = {"system.filesystem.mountpoint": disk.mount}
            if disk.device:
                attributes["system.device"] = disk.device
            if disk.fstype:
                attributes["system.filesystem.type"] = disk.fstype
            if part == "usage":
                yield disk.used_bytes, {**attributes, "system.filesystem.state": "used"}
                yield disk.free_bytes, {**attributes, "system.filesystem.state": "free"}
            elif part == "limit":
                yield disk.total_bytes, attributes
            else:
                yield disk.used_pct / 100.0, attributes

    return read


def _nics(
    read: Callable[[NetRate], tuple[float | None, float | None]],
) -> Callable[[SystemSample], Iterator[Reading]]:
    def points(system: SystemSample) -> Iterator[Reading]:
        seen: set[str] = set()
        for nic in system.net:
            if nic.iface in seen:
                continue
            seen.add(nic.iface)
            receive, transmit = read(nic)
            name = nic.iface
            yield receive, {"network.interface.name": name, "network.io.direction": "receive"}
            yield transmit, {"network.interface.name": name, "network.io.direction": "transmit"}

    return points


def _agent_samples(view: _View) -> Iterator[Point]:
    yield view.live.samples_taken, {}


def _agent_duration(view: _View) -> Iterator[Point]:
    if view.live.last_sample_duration_s is not None:
        yield view.live.last_sample_duration_s, {}


def _source_available(view: _View) -> Iterator[Point]:
    status = view.live.gpu_status
    yield (1.0 if status.available else 0.0), {"gpufleet.gpu.source": status.source}


_GENERAL = {"hw.gpu.task": "general"}
_TX = {"network.io.direction": "transmit"}
_RX = {"network.io.direction": "receive"}

LIVE_METRICS: tuple[MetricSpec, ...] = (
    # GPUs: semantic-convention names first.
    MetricSpec(
        "hw.gpu.utilization",
        "gauge",
        "1",
        "Fraction of time the GPU spent on a task (NVML utilization), by hw.gpu.task.",
        _chain(
            _gpu(lambda g: _frac(g.util_gpu_pct), _GENERAL),
            _gpu(lambda g: _frac(g.util_encoder_pct), {"hw.gpu.task": "encoder"}),
            _gpu(lambda g: _frac(g.util_decoder_pct), {"hw.gpu.task": "decoder"}),
        ),
    ),
    MetricSpec(
        "hw.gpu.memory.usage",
        "updown",
        "By",
        "GPU memory used.",
        _gpu(lambda g: g.mem_used_bytes),
    ),
    MetricSpec(
        "hw.gpu.memory.limit",
        "updown",
        "By",
        "Size of the GPU memory.",
        _gpu(lambda g: g.mem_total_bytes),
    ),
    MetricSpec(
        "hw.gpu.memory.utilization",
        "gauge",
        "1",
        "Fraction of GPU memory used.",
        _gpu(lambda g: _frac(g.mem_used_pct)),
    ),
    MetricSpec("hw.power", "gauge", "W", "Power the GPU draws.", _gpu(lambda g: g.power_w)),
    MetricSpec(
        "hw.errors",
        "counter",
        "{error}",
        "Volatile ECC errors of the GPU since its driver loaded, by error.type.",
        _chain(
            _gpu(lambda g: g.ecc_corrected_total, {"error.type": "ecc_corrected"}),
            _gpu(lambda g: g.ecc_uncorrected_total, {"error.type": "ecc_uncorrected"}),
        ),
    ),
    # GPUs: readings the conventions do not name.
    MetricSpec(
        "gpufleet.gpu.memory.free",
        "updown",
        "By",
        "GPU memory free.",
        _gpu(lambda g: g.mem_free_bytes),
    ),
    MetricSpec(
        "gpufleet.gpu.memory_controller.utilization",
        "gauge",
        "1",
        "Fraction of time GPU memory was read or written (NVML memory utilization).",
        _gpu(lambda g: _frac(g.util_mem_pct)),
    ),
    MetricSpec(
        "gpufleet.gpu.power.limit",
        "gauge",
        "W",
        "Power limit the driver enforces.",
        _gpu(lambda g: g.power_limit_w),
    ),
    MetricSpec(
        "gpufleet.gpu.temperature", "gauge", "Cel", "GPU die temperature.", _gpu(lambda g: g.temp_c)
    ),
    MetricSpec(
        "gpufleet.gpu.temperature.limit",
        "gauge",
        "Cel",
        "Temperature at which the GPU slows down (hw.limit_type=throttled) or shuts down "
        "(hw.limit_type=critical).",
        _chain(
            _gpu(lambda g: g.temp_slowdown_c, {"hw.limit_type": "throttled"}),
            _gpu(lambda g: g.temp_shutdown_c, {"hw.limit_type": "critical"}),
        ),
    ),
    MetricSpec(
        "gpufleet.gpu.clock.frequency",
        "gauge",
        "Hz",
        "GPU clock frequency, by gpufleet.gpu.clock (graphics, sm, memory).",
        _chain(
            _gpu(lambda g: _hz(g.clock_graphics_mhz), {"gpufleet.gpu.clock": "graphics"}),
            _gpu(lambda g: _hz(g.clock_sm_mhz), {"gpufleet.gpu.clock": "sm"}),
            _gpu(lambda g: _hz(g.clock_mem_mhz), {"gpufleet.gpu.clock": "memory"}),
        ),
    ),
    MetricSpec(
        "gpufleet.gpu.fan.speed_ratio",
        "gauge",
        "1",
        "Fan speed as a fraction of its maximum.",
        _gpu(lambda g: _frac(g.fan_pct)),
    ),
    MetricSpec(
        "gpufleet.gpu.performance_state",
        "gauge",
        "1",
        "Performance state: 0 (P0, fastest) to 15.",
        _gpu(lambda g: pstate_number(g.pstate)),
    ),
    MetricSpec(
        "gpufleet.gpu.pcie.throughput",
        "gauge",
        "By/s",
        "PCIe traffic of the GPU, by network.io.direction.",
        _chain(
            _gpu(lambda g: g.pcie_tx_bytes_per_s, _TX),
            _gpu(lambda g: g.pcie_rx_bytes_per_s, _RX),
        ),
    ),
    MetricSpec(
        "gpufleet.gpu.xid.errors",
        "counter",
        "{error}",
        "XID errors seen since the agent started.",
        _xid("count"),
    ),
    MetricSpec(
        "gpufleet.gpu.xid.last",
        "gauge",
        "1",
        "Code of the last XID error seen since the agent started (0: none).",
        _xid("last"),
    ),
    MetricSpec(
        "gpufleet.gpu.processes",
        "updown",
        "{process}",
        "Processes holding a context on the GPU.",
        _gpu(lambda g: len(unique_processes(g.processes))),
    ),
    MetricSpec(
        "gpufleet.gpu.allocated",
        "gauge",
        "1",
        "1 when the GPU holds at least one compute process, else 0.",
        _gpu(lambda g: 1.0 if g.allocated else 0.0),
    ),
    MetricSpec(
        "gpufleet.gpu.lost",
        "gauge",
        "1",
        "1 when the GPU stopped answering, else 0.",
        _lost,
    ),
    MetricSpec(
        "gpufleet.process.gpu.memory.usage",
        "updown",
        "By",
        "GPU memory a process holds on one GPU.",
        _process(lambda p: p.used_memory_bytes),
    ),
    MetricSpec(
        "gpufleet.process.gpu.utilization",
        "gauge",
        "1",
        "Fraction of the GPU's SM time a process used.",
        _process(lambda p: _frac(p.sm_util_pct)),
    ),
    # The host: semantic-convention names where they exist.
    MetricSpec(
        "system.cpu.utilization",
        "gauge",
        "1",
        "Busy fraction of each logical CPU, by cpu.logical_number.",
        _host(_cores),
    ),
    MetricSpec(
        "gpufleet.host.cpu.utilization",
        "gauge",
        "1",
        "Busy fraction of all CPUs together.",
        _host(_scalar(lambda s: _frac(s.cpu_pct))),
    ),
    MetricSpec(
        "system.cpu.logical.count",
        "updown",
        "{cpu}",
        "Logical CPUs.",
        _host(_scalar(lambda s: s.cpu_count)),
    ),
    MetricSpec(
        "system.cpu.load_average.1m",
        "gauge",
        "{thread}",
        "1-minute load average.",
        _host(_scalar(lambda s: s.load_1)),
    ),
    MetricSpec(
        "system.cpu.load_average.5m",
        "gauge",
        "{thread}",
        "5-minute load average.",
        _host(_scalar(lambda s: s.load_5)),
    ),
    MetricSpec(
        "system.cpu.load_average.15m",
        "gauge",
        "{thread}",
        "15-minute load average.",
        _host(_scalar(lambda s: s.load_15)),
    ),
    MetricSpec(
        "system.memory.usage",
        "updown",
        "By",
        "Memory in use (system.memory.state=used).",
        _host(_scalar(lambda s: s.mem_used_bytes, {"system.memory.state": "used"})),
    ),
    MetricSpec(
        "system.memory.limit",
        "updown",
        "By",
        "Physical memory.",
        _host(_scalar(lambda s: s.mem_total_bytes)),
    ),
    MetricSpec(
        "system.memory.utilization",
        "gauge",
        "1",
        "Fraction of memory in use (system.memory.state=used).",
        _host(_scalar(lambda s: _frac(s.mem_pct), {"system.memory.state": "used"})),
    ),
    MetricSpec(
        "system.linux.memory.available",
        "updown",
        "By",
        "Memory available to new processes without swapping.",
        _host(_scalar(lambda s: s.mem_available_bytes)),
    ),
    MetricSpec(
        "system.paging.usage",
        "updown",
        "By",
        "Swap space, by system.paging.state (used, free).",
        _host(
            lambda s: [
                (s.swap_used_bytes, {"system.paging.state": "used"}),
                (s.swap_total_bytes - s.swap_used_bytes, {"system.paging.state": "free"}),
            ]
        ),
    ),
    MetricSpec(
        "system.filesystem.usage",
        "updown",
        "By",
        "Filesystem space, by system.filesystem.state (used, free).",
        _host(_filesystems("usage")),
    ),
    MetricSpec(
        "system.filesystem.limit",
        "updown",
        "By",
        "Filesystem size.",
        _host(_filesystems("limit")),
    ),
    MetricSpec(
        "system.filesystem.utilization",
        "gauge",
        "1",
        "Fraction of filesystem space used.",
        _host(_filesystems("utilization")),
    ),
    MetricSpec(
        "gpufleet.host.disk.throughput",
        "gauge",
        "By/s",
        "Bytes read and written per second over all disks, by disk.io.direction.",
        _host(
            lambda s: [
                (s.disk_read_bytes_per_s, {"disk.io.direction": "read"}),
                (s.disk_write_bytes_per_s, {"disk.io.direction": "write"}),
            ]
        ),
    ),
    MetricSpec(
        "system.network.io",
        "counter",
        "By",
        "Bytes received and sent since boot, by network.interface.name and network.io.direction.",
        _host(_nics(lambda n: (n.rx_bytes_total, n.tx_bytes_total))),
    ),
    MetricSpec(
        "system.network.errors",
        "counter",
        "{error}",
        "Receive and send errors since boot, by network.interface.name and network.io.direction.",
        _host(_nics(lambda n: (n.rx_errors_total, n.tx_errors_total))),
    ),
    MetricSpec(
        "gpufleet.host.network.throughput",
        "gauge",
        "By/s",
        "Bytes received and sent per second, by network.interface.name and network.io.direction.",
        _host(_nics(lambda n: (n.rx_bytes_per_s, n.tx_bytes_per_s))),
    ),
    # The agent itself.
    MetricSpec(
        "gpufleet.agent.samples",
        "counter",
        "{sample}",
        "Sampling passes taken since the agent started.",
        _agent_samples,
    ),
    MetricSpec(
        "gpufleet.agent.sample.duration",
        "gauge",
        "s",
        "Seconds the last sampling pass took.",
        _agent_duration,
    ),
    MetricSpec(
        "gpufleet.gpu.source.available",
        "gauge",
        "1",
        "1 when the GPU source works, 0 when GPUs cannot be read.",
        _source_available,
    ),
)
"""Every instrument :func:`instrument_live_state` registers, in registration order."""


def _observations(
    spec: MetricSpec, view: Callable[[], _View]
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    from opentelemetry.metrics import Observation

    def callback(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(attrs)) for value, attrs in spec.points(view())]

    return callback


def instrument_live_state(
    live: LiveState,
    meter_provider: MeterProvider | None = None,
    *,
    metrics: Sequence[MetricSpec] = LIVE_METRICS,
) -> list[object]:
    """Register observable instruments that report ``live``'s newest snapshot at each export.

    Nothing is read until the provider's reader collects: each callback reads
    ``live.latest`` then, so the export costs no hardware call and needs no second
    sampling loop.

    Args:
        live: Where the sampler publishes snapshots.
        meter_provider: The provider to record into; the global one
            (``opentelemetry.metrics.get_meter_provider()``, which an application may have
            set with ``set_meter_provider``) when None.
        metrics: The instruments to register (default: all of :data:`LIVE_METRICS`).

    Returns:
        The instruments, in the order of ``metrics``.
    """
    from opentelemetry import metrics as otel_metrics

    provider = meter_provider if meter_provider is not None else otel_metrics.get_meter_provider()
    meter = provider.get_meter(SCOPE_NAME, __version__)
    xids = XidTally(live)

    def view() -> _View:
        last, count = xids.fold()
        return _View(live=live, snapshot=live.latest, xid_last=last, xid_count=count)

    return [_register(meter, spec, _observations(spec, view)) for spec in metrics]


def _register(
    meter: Meter, spec: MetricSpec, callback: Callable[[CallbackOptions], Iterable[Observation]]
) -> object:
    create = {
        "gauge": meter.create_observable_gauge,
        "updown": meter.create_observable_up_down_counter,
        "counter": meter.create_observable_counter,
    }[spec.kind]
    return create(spec.name, callbacks=[callback], unit=spec.unit, description=spec.description)
