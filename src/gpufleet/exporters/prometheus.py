"""Prometheus exposition of the latest snapshot, built at scrape time with no hardware call.

GPU readings carry dcgm-exporter's names, types and labels (see :mod:`.dcgm_names`) so its
Grafana dashboards work unchanged; everything else follows Prometheus naming practice under
the ``gpufleet_`` prefix, in base units. A reading that is None has no series.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from gpufleet.agent.live import LiveState
from gpufleet.exporters.dcgm_names import (
    DCGM_FIELDS,
    GPU_LABELS,
    POD_LABELS,
    VERBATIM_COUNTERS,
    XID_ERRORS,
    XID_ERRORS_HELP,
    MetricKind,
    gpu_label_values,
    pod_label_sets,
)
from gpufleet.model import GpuProcess, GpuSample, Snapshot, SystemSample

__all__ = ["CONTENT_TYPE", "SnapshotCollector", "build_registry", "render"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Content type of :func:`render`'s body (Prometheus text format 0.0.4)."""

ExtraMetrics = Callable[[], Iterable[Metric]]

_GPU_ID = ("gpu", "UUID", "Hostname")
_PROC_LABELS = ("gpu", "UUID", "pid", "process", "namespace", "user", "workload")
_WORKLOAD_LABELS = ("namespace", "user", "workload")


def _clean(value: str) -> str:
    # Process names read from /proc may hold undecodable bytes as lone surrogates, which
    # would make the UTF-8 encoding of the whole exposition fail; replace just those.
    return value.encode("utf-8", "replace").decode("utf-8")


class _Family:
    """Samples of one metric family; None values and repeated label sets are skipped.

    A repeated label set would make Prometheus reject the whole scrape, and one can arise
    from the data (a process listed as both compute and graphics, a filesystem mounted
    twice), so the first value wins.
    """

    def __init__(
        self, name: str, doc: str, labels: Sequence[str] = (), kind: MetricKind = "gauge"
    ) -> None:
        self._labels = tuple(labels)
        self._seen: set[tuple[str, ...]] = set()
        self._sample_name = name
        if kind == "counter" and name.endswith("_total"):
            # prometheus_client names a counter family without the suffix and adds it back.
            name = name[: -len("_total")]
        self.metric = Metric(name, doc, kind)

    def add(self, values: Sequence[str], value: float | None) -> None:
        """Add one sample unless ``value`` is None or ``values`` were already added."""
        key = tuple(values)
        if value is None or key in self._seen:
            return
        self._seen.add(key)
        labels = dict(zip(self._labels, key, strict=True))
        self.metric.samples.append(Sample(self._sample_name, labels, float(value)))


@dataclass(slots=True)
class _Workload:
    """Running totals of one (namespace, user, workload) over processes and GPUs."""

    memory_bytes: int = 0
    memory_known: bool = False
    gpus: dict[str, float | None] = field(default_factory=dict)
    """GPU UUID -> that GPU's utilization."""


class SnapshotCollector:
    """A prometheus_client custom collector over :class:`LiveState`.

    ``collect()`` reads ``live.latest`` (and, for XID errors, the snapshots published since
    the previous scrape), so a scrape never touches the hardware.
    """

    def __init__(
        self, live: LiveState, *, hostname: str, extra: ExtraMetrics | None = None
    ) -> None:
        """Create the collector.

        Args:
            live: Where the sampler publishes snapshots.
            hostname: Value of dcgm-exporter's ``Hostname`` label.
            extra: Called at each scrape for more families (alert counts, store health).
        """
        self._live = live
        self._hostname = hostname
        self._extra = extra
        # XID state survives scrapes: dcgm exports the last XID ever seen, and snapshots
        # published between two scrapes must not lose theirs.
        self._xid_lock = threading.Lock()
        self._xid_folded: Snapshot | None = None
        self._xid_last: dict[str, int] = {}
        self._xid_count: dict[str, int] = defaultdict(int)

    def collect(self) -> Iterator[Metric]:
        """Yield every non-empty metric family for the current snapshot."""
        snapshot = self._live.latest
        families = self._self_families(snapshot)
        if snapshot is not None:
            families.extend(self._gpu_families(snapshot.gpus))
            families.extend(self._process_families(snapshot.gpus))
            if snapshot.system is not None:
                families.extend(_host_families(snapshot.system))
        for family in families:
            if family.metric.samples:
                yield family.metric
        if self._extra is not None:
            try:
                yield from self._extra()
            except Exception:
                # A broken add-on must not take the GPU series down with it.
                log.exception("extra metrics for /metrics failed")

    def _self_families(self, latest: Snapshot | None) -> list[_Family]:
        live = self._live
        status = live.gpu_status
        available = _Family(
            "gpufleet_gpu_available",
            "1 when the GPU source works, 0 when GPUs cannot be read.",
            ("source",),
        )
        available.add((status.source,), 1.0 if status.available else 0.0)
        samples = _Family("gpufleet_agent_samples_total", "Sampling passes taken.", kind="counter")
        samples.add((), live.samples_taken)
        duration = _Family(
            "gpufleet_agent_last_sample_duration_seconds",
            "Seconds the last sampling pass took.",
        )
        duration.add((), live.last_sample_duration_s)
        stamp = _Family(
            "gpufleet_agent_last_sample_timestamp_seconds",
            "Unix time of the latest snapshot; alert on its age to catch a stuck sampler.",
        )
        stamp.add((), None if latest is None else latest.ts_s)
        return [available, samples, duration, stamp]

    def _gpu_families(self, gpus: Sequence[GpuSample]) -> list[_Family]:
        host = self._hostname
        info = _Family(
            "gpufleet_gpu_info",
            "Static facts of a GPU as labels; always 1.",
            ("gpu", "UUID", "pci_bus_id", "model", "driver_version", "cuda_capability", "Hostname"),
        )
        lost = _Family("gpufleet_gpu_lost", "1 when the GPU stopped answering.", _GPU_ID)
        xid_total = _Family(
            "gpufleet_gpu_xid_errors_total",
            "XID errors seen since the agent started.",
            _GPU_ID,
            kind="counter",
        )
        dcgm = [(f, _Family(f.name, f.help, GPU_LABELS + POD_LABELS, f.kind)) for f in DCGM_FIELDS]
        dcgm_plain = [_Family(f.name, f.help, GPU_LABELS, f.kind) for f in DCGM_FIELDS]
        xid = _Family(XID_ERRORS, XID_ERRORS_HELP, GPU_LABELS + POD_LABELS)
        xid_plain = _Family(XID_ERRORS, XID_ERRORS_HELP, GPU_LABELS)
        last_xid, xid_counts = self._fold_xids()

        for gpu in gpus:
            gpu_id = (str(gpu.index), gpu.uuid, host)
            info.add(
                (
                    str(gpu.index),
                    gpu.uuid,
                    gpu.pci_bus_id or "",
                    _clean(gpu.name or ""),
                    gpu.driver_version or "",
                    gpu.cuda_capability or "",
                    host,
                ),
                1.0,
            )
            lost.add(gpu_id, 1.0 if gpu.lost else 0.0)
            if gpu.lost:
                continue
            xid_total.add(gpu_id, xid_counts.get(gpu.uuid, 0))
            base = tuple(_clean(v) for v in gpu_label_values(gpu, host))
            pods = pod_label_sets(gpu)
            if not pods:
                for (spec, _), family in zip(dcgm, dcgm_plain, strict=True):
                    family.add(base, spec.read(gpu))
                xid_plain.add(base, last_xid.get(gpu.uuid, 0))
                continue
            for pod in pods:
                values = base + tuple(_clean(v) for v in pod)
                for spec, family in dcgm:
                    family.add(values, spec.read(gpu))
                xid.add(values, last_xid.get(gpu.uuid, 0))

        merged = [_merge(a, b) for (_, a), b in zip(dcgm, dcgm_plain, strict=True)]
        return [info, lost, *merged, _merge(xid, xid_plain), xid_total]

    def _fold_xids(self) -> tuple[dict[str, int], dict[str, int]]:
        """Fold the XIDs of snapshots published since the last scrape; return copies."""
        with self._xid_lock:
            recent = self._live.recent()
            start = 0
            # Snapshots are matched by identity, not timestamp, so a clock step cannot make
            # the collector skip or repeat one; if ours fell out of the window, fold all.
            for pos in range(len(recent) - 1, -1, -1):
                if recent[pos] is self._xid_folded:
                    start = pos + 1
                    break
            for snap in recent[start:]:
                for gpu in snap.gpus:
                    for code in gpu.xid_errors:
                        self._xid_last[gpu.uuid] = code
                        self._xid_count[gpu.uuid] += 1
            if recent:
                self._xid_folded = recent[-1]
            return dict(self._xid_last), dict(self._xid_count)

    def _process_families(self, gpus: Sequence[GpuSample]) -> list[_Family]:
        memory = _Family(
            "gpufleet_process_gpu_memory_used_bytes",
            "GPU memory a process holds on one GPU.",
            _PROC_LABELS,
        )
        sm_util = _Family(
            "gpufleet_process_sm_utilization_percent",
            "Share of the GPU's SM time a process used, in percent.",
            _PROC_LABELS,
        )
        workloads: dict[tuple[str, str, str], _Workload] = {}
        for gpu in gpus:
            if gpu.lost:
                continue
            for proc in _unique_processes(gpu.processes):
                attr = proc.attribution
                key = (_clean(attr.namespace), _clean(attr.user), _clean(attr.workload))
                labels = (str(gpu.index), gpu.uuid, str(proc.pid), _clean(proc.name or ""), *key)
                memory.add(labels, proc.used_memory_bytes)
                sm_util.add(labels, proc.sm_util_pct)
                work = workloads.setdefault(key, _Workload())
                work.gpus[gpu.uuid] = gpu.util_gpu_pct
                if proc.used_memory_bytes is not None:
                    work.memory_bytes += proc.used_memory_bytes
                    work.memory_known = True
        return [memory, sm_util, *_workload_families(workloads)]


def _unique_processes(processes: Iterable[GpuProcess]) -> list[GpuProcess]:
    # NVML lists a process with both a compute and a graphics context twice, each time with
    # the same memory; summing would double it, so keep the larger reading of each.
    by_pid: dict[int, GpuProcess] = {}
    for proc in processes:
        seen = by_pid.get(proc.pid)
        if seen is None or (proc.used_memory_bytes or 0) > (seen.used_memory_bytes or 0):
            by_pid[proc.pid] = proc
    return list(by_pid.values())


def _workload_families(workloads: dict[tuple[str, str, str], _Workload]) -> list[_Family]:
    memory = _Family(
        "gpufleet_workload_gpu_memory_used_bytes",
        "GPU memory a workload holds, summed over its processes and GPUs.",
        _WORKLOAD_LABELS,
    )
    gpus = _Family(
        "gpufleet_workload_gpus", "GPUs on which a workload holds a context.", _WORKLOAD_LABELS
    )
    util = _Family(
        "gpufleet_workload_gpu_utilization_percent",
        "Mean GPU utilization of the GPUs a workload holds, in percent.",
        _WORKLOAD_LABELS,
    )
    for key, work in sorted(workloads.items()):
        memory.add(key, work.memory_bytes if work.memory_known else None)
        gpus.add(key, len(work.gpus))
        known = [u for u in work.gpus.values() if u is not None]
        util.add(key, sum(known) / len(known) if known else None)
    return [memory, gpus, util]


def _host_families(system: SystemSample) -> list[_Family]:
    out: list[_Family] = []

    def scalar(name: str, doc: str, value: float | None) -> None:
        family = _Family(name, doc)
        family.add((), value)
        out.append(family)

    scalar(
        "gpufleet_cpu_usage_percent", "CPU busy time over all cores, in percent.", system.cpu_pct
    )
    per_core = _Family(
        "gpufleet_cpu_core_usage_percent", "CPU busy time of one core, in percent.", ("cpu",)
    )
    for index, pct in enumerate(system.cpu_per_core_pct):
        per_core.add((str(index),), pct)
    out.append(per_core)
    for minutes, load in ((1, system.load_1), (5, system.load_5), (15, system.load_15)):
        scalar(f"gpufleet_load{minutes}", f"{minutes}-minute load average.", load)
    scalar("gpufleet_memory_total_bytes", "Physical memory.", system.mem_total_bytes)
    scalar("gpufleet_memory_used_bytes", "Physical memory in use.", system.mem_used_bytes)
    scalar(
        "gpufleet_memory_available_bytes",
        "Memory available to new processes.",
        system.mem_available_bytes,
    )
    scalar("gpufleet_swap_total_bytes", "Swap space.", system.swap_total_bytes)
    scalar("gpufleet_swap_used_bytes", "Swap space in use.", system.swap_used_bytes)
    scalar("gpufleet_boot_time_seconds", "Unix time the host booted.", system.boot_time_s)

    disk_labels = ("mount", "device", "fstype")
    disks = {
        part: _Family(f"gpufleet_disk_{part}_bytes", f"Filesystem space, {part}.", disk_labels)
        for part in ("total", "used", "free")
    }
    for disk in system.disks:
        labels = (_clean(disk.mount), _clean(disk.device or ""), disk.fstype or "")
        disks["total"].add(labels, disk.total_bytes)
        disks["used"].add(labels, disk.used_bytes)
        disks["free"].add(labels, disk.free_bytes)
    out.extend(disks.values())
    scalar(
        "gpufleet_disk_read_bytes_per_second",
        "Bytes read from all disks per second.",
        system.disk_read_bytes_per_s,
    )
    scalar(
        "gpufleet_disk_write_bytes_per_second",
        "Bytes written to all disks per second.",
        system.disk_write_bytes_per_s,
    )

    receive = _Family(
        "gpufleet_network_receive_bytes_per_second",
        "Bytes received per second on one interface.",
        ("interface",),
    )
    transmit = _Family(
        "gpufleet_network_transmit_bytes_per_second",
        "Bytes sent per second on one interface.",
        ("interface",),
    )
    for nic in system.net:
        receive.add((_clean(nic.iface),), nic.rx_bytes_per_s)
        transmit.add((_clean(nic.iface),), nic.tx_bytes_per_s)
    out.extend((receive, transmit))
    return out


def _merge(with_pods: _Family, plain: _Family) -> _Family:
    # One family may hold series with and without pod labels (a GPU shared by pods next to
    # a bare-metal one), as in dcgm-exporter's output; they share one HELP/TYPE header.
    with_pods.metric.samples.extend(plain.metric.samples)
    return with_pods


def build_registry(
    live: LiveState, *, hostname: str, extra: ExtraMetrics | None = None
) -> CollectorRegistry:
    """A fresh registry (never the process-global one) serving ``live`` at each scrape.

    Args:
        live: Where the sampler publishes snapshots.
        hostname: Value of dcgm-exporter's ``Hostname`` label.
        extra: Called at each scrape for more families.

    Returns:
        A registry with a :class:`SnapshotCollector` and prometheus_client's process and
        platform collectors describing the agent itself.
    """
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(live, hostname=hostname, extra=extra))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """Render ``registry`` in the Prometheus text format.

    Returns:
        The body and its content type.
    """
    return _unsuffix_verbatim_counters(generate_latest(registry)), CONTENT_TYPE


def _unsuffix_verbatim_counters(body: bytes) -> bytes:
    # prometheus_client always names a counter's HELP/TYPE lines ``<family>_total``;
    # dcgm-exporter's counters (DCGM_FI_DEV_ECC_SBE_VOL_TOTAL, ...) have no such suffix, and
    # their samples are emitted unsuffixed, so the header must say the same name. Label
    # values and help texts cannot contain a raw newline, so a line is a whole header.
    lines = body.split(b"\n")
    for pos, line in enumerate(lines):
        if not line.startswith((b"# HELP ", b"# TYPE ")):
            continue
        parts = line.split(b" ", 3)
        name = parts[2].decode()
        if name.endswith("_total") and name[: -len("_total")] in VERBATIM_COUNTERS:
            parts[2] = name[: -len("_total")].encode()
            lines[pos] = b" ".join(parts)
    return b"\n".join(lines)
