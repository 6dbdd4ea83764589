"""Import GPU history from a Prometheus server that scraped dcgm-exporter or gpufleet agents.

Series read (through ``/api/v1/query_range``, names and units as in
:mod:`gpufleet.exporters.dcgm_names`):

* ``DCGM_FI_DEV_GPU_UTIL`` -> ``util_gpu_pct``, ``DCGM_FI_DEV_MEM_COPY_UTIL`` ->
  ``util_mem_pct``, ``DCGM_FI_DEV_GPU_TEMP`` -> ``temp_c``, ``DCGM_FI_DEV_POWER_USAGE`` ->
  ``power_w``, ``DCGM_FI_DEV_SM_CLOCK`` -> ``clock_sm_mhz``;
* ``DCGM_FI_DEV_FB_USED`` / ``_FREE`` / ``_TOTAL`` (MiB) -> bytes; the total is ``_TOTAL``
  when scraped (gpufleet exports it), else used + free (dcgm-exporter's default set);
* ``gpufleet_process_gpu_memory_used_bytes`` -> the GPU's processes with their
  namespace / user / workload attribution, when the target is a gpufleet agent;
* otherwise dcgm-exporter's ``pod`` / ``namespace`` / ``container`` labels -> one process per
  pod (pid 0) attributed to namespace / ``unknown`` / pod, so Kubernetes allocation shows.

Series are joined by (cluster, ``Hostname``, ``UUID``); ``Hostname`` falls back to the
``instance`` label. Every query uses the same aligned start and step, so points of different
metrics meet at the same timestamps; a GPU is sampled at a timestamp when any of its series
has a point there. Each sample stands for ``step_s`` seconds (``interval_s``).

The window ``[start_s, end_s)`` is cut into chunks of at most 10,000 steps (Prometheus
refuses more than 11,000 points per series) and fewer when there are many GPUs, so one
response holds at most about 500,000 points. Each chunk is one batch of writes, in time
order. Importing the same window twice counts it twice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpx

from gpufleet.exporters.dcgm_names import MIB
from gpufleet.model import UNKNOWN, Attribution, GpuProcess, GpuSample, Snapshot
from gpufleet.store.base import Store
from gpufleet.store.importers.batching import SnapshotWriter
from gpufleet.store.importers.prom_api import PrometheusApi, RangeSeries
from gpufleet.store.importers.report import (
    ImportFailedError,
    ImportInterruptedError,
    ImportReport,
    Progress,
    RejectTally,
)

DEFAULT_CLUSTER = "imported"
STEPS_PER_QUERY = 10_000
"""Steps per range query: under Prometheus's 11,000, leaving room for rounding."""
POINTS_PER_QUERY = 500_000
"""Points one response may hold (series x steps), to bound memory with many GPUs."""

GPU_SERIES: tuple[tuple[str, str, float], ...] = (
    ("DCGM_FI_DEV_GPU_UTIL", "util_gpu_pct", 1.0),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "util_mem_pct", 1.0),
    ("DCGM_FI_DEV_FB_USED", "mem_used_bytes", float(MIB)),
    ("DCGM_FI_DEV_FB_FREE", "mem_free_bytes", float(MIB)),
    ("DCGM_FI_DEV_FB_TOTAL", "mem_total_bytes", float(MIB)),
    ("DCGM_FI_DEV_GPU_TEMP", "temp_c", 1.0),
    ("DCGM_FI_DEV_POWER_USAGE", "power_w", 1.0),
    ("DCGM_FI_DEV_SM_CLOCK", "clock_sm_mhz", 1.0),
)
"""(metric, GpuSample field, factor to the field's unit)."""

PROCESS_SERIES = "gpufleet_process_gpu_memory_used_bytes"

GpuKey = tuple[str, str, str]
"""(cluster, node, uuid)."""


@dataclass
class _Gpu:
    """What one chunk saw of one GPU: identity labels and readings per timestamp."""

    index: int
    name: str | None
    pci_bus_id: str | None
    driver_version: str | None
    readings: dict[float, dict[str, float]] = field(default_factory=dict)
    pods: dict[float, set[tuple[str, str, str]]] = field(default_factory=dict)
    processes: dict[float, dict[int, GpuProcess]] = field(default_factory=dict)


@dataclass
class _Totals:
    points: int = 0
    used: int = 0
    gpus: set[GpuKey] = field(default_factory=set)
    first_ts: float | None = None
    last_ts: float | None = None
    queries: list[str] = field(default_factory=list)


def import_prometheus(
    store: Store,
    url: str,
    *,
    start_s: float,
    end_s: float,
    step_s: float = 60.0,
    cluster: str | None = None,
    transport: httpx.BaseTransport | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> ImportReport:
    """Import GPU series of ``[start_s, end_s)`` at ``step_s`` resolution into ``store``.

    Args:
        store: Where the snapshots go.
        url: The Prometheus server's root, e.g. ``http://localhost:9090``.
        start_s: Window start, epoch seconds (rounded up to a multiple of ``step_s``).
        end_s: Window end, epoch seconds (exclusive).
        step_s: Seconds between imported samples; each sample stands for this long.
        cluster: Cluster of every snapshot; None takes each series' ``cluster`` label,
            else ``imported``.
        transport: httpx transport (tests pass ``httpx.MockTransport``).
        progress: Called with ``(steps done, total steps)`` after each chunk.
        clock: Current epoch seconds (to compare samples with the store's raw retention).

    Returns:
        Points read, used and rejected (non-finite values, process series of unknown
        GPUs), GPUs seen, samples and snapshots written.

    Raises:
        ImportFailedError: bad arguments, Prometheus unreachable or answering with an
            error, or no GPU series in the window.
        ImportInterruptedError: Ctrl-C; ``.report`` says what whole chunks were written.
    """
    if not (math.isfinite(step_s) and step_s > 0):
        raise ImportFailedError(f"step must be a positive number of seconds, not {step_s}")
    if not end_s > start_s:
        raise ImportFailedError(f"the end ({end_s}) must be after the start ({start_s})")
    started = time.perf_counter()
    first = math.ceil(start_s / step_s) * step_s
    steps = max(0, math.ceil((end_s - first) / step_s))
    api = PrometheusApi(url, transport)
    tally = RejectTally()
    totals = _Totals()
    writer = SnapshotWriter(store, now_s=clock())

    def report(completed: bool) -> ImportReport:
        elapsed = time.perf_counter() - started
        return ImportReport(
            rows_read=totals.points,
            rows_imported=totals.used,
            rows_rejected=tally.total,
            rejections=tally.freeze(),
            entities=len(totals.gpus),
            first_ts_s=totals.first_ts,
            last_ts_s=totals.last_ts,
            samples_written=writer.samples,
            snapshots_written=writer.snapshots,
            elapsed_s=elapsed,
            rows_per_s=totals.points / elapsed if elapsed > 0 else 0.0,
            sources=tuple(totals.queries),
            warnings=tuple(dict.fromkeys(api.warnings)),
            completed=completed,
        )

    try:
        gpu_series = api.series_count(GPU_SERIES[0][0], start_s, end_s)
        if not gpu_series or not steps:
            raise ImportFailedError(
                f"Prometheus at {api.url} has no {GPU_SERIES[0][0]} series between "
                f"{start_s:.0f} and {end_s:.0f}: check that it scrapes dcgm-exporter or "
                "gpufleet agents, and the time window"
            )
        per_chunk = max(1, min(STEPS_PER_QUERY, POINTS_PER_QUERY // gpu_series))
        done = 0
        while done < steps:
            n = min(per_chunk, steps - done)
            chunk_start = first + done * step_s
            chunk_end = chunk_start + (n - 1) * step_s
            gpus = _read_chunk(api, chunk_start, chunk_end, step_s, cluster, tally, totals)
            snapshots = _snapshots(gpus, step_s, totals)
            writer.write(snapshots)
            done += n
            if progress is not None:
                progress(done, steps)
    except KeyboardInterrupt:
        raise ImportInterruptedError(report(completed=False)) from None
    finally:
        api.close()
    return report(completed=True)


def _read_chunk(
    api: PrometheusApi,
    start_s: float,
    end_s: float,
    step_s: float,
    cluster: str | None,
    tally: RejectTally,
    totals: _Totals,
) -> dict[GpuKey, _Gpu]:
    """Query every GPU series for one chunk and join them per GPU and timestamp."""
    gpus: dict[GpuKey, _Gpu] = {}
    by_instance: dict[tuple[str, str], GpuKey] = {}
    for metric, field_name, factor in GPU_SERIES:
        for series in _query(api, metric, start_s, end_s, step_s, totals):
            labels = series.labels
            uuid = labels.get("UUID", "")
            node = labels.get("Hostname") or labels.get("instance") or UNKNOWN
            if not uuid:
                _reject_all(tally, series, "no_uuid", "series has no UUID label")
                continue
            key = (cluster or labels.get("cluster") or DEFAULT_CLUSTER, node, uuid)
            by_instance[(labels.get("instance", ""), uuid)] = key
            gpu = gpus.get(key)
            if gpu is None:
                gpu = gpus[key] = _gpu_from_labels(labels)
            pod = labels.get("pod")
            for ts, value in series.points:
                if not math.isfinite(value):
                    tally.add("not_finite", _describe(series), 0, f"{value} at {ts:.0f}")
                    continue
                totals.used += 1
                gpu.readings.setdefault(ts, {})[field_name] = value * factor
                if pod:
                    attribution = (labels.get("container", ""), labels.get("namespace", ""), pod)
                    gpu.pods.setdefault(ts, set()).add(attribution)
    for series in _query(api, PROCESS_SERIES, start_s, end_s, step_s, totals):
        _add_process_series(series, gpus, by_instance, tally, totals)
    return gpus


def _query(
    api: PrometheusApi, metric: str, start_s: float, end_s: float, step_s: float, totals: _Totals
) -> list[RangeSeries]:
    result = api.query_range(metric, start_s, end_s, step_s)
    totals.queries.append(f"{metric} [{start_s:.0f}, {end_s:.0f}] step {step_s:g}s")
    totals.points += sum(len(s.points) for s in result)
    return result


def _gpu_from_labels(labels: dict[str, str]) -> _Gpu:
    index_text = labels.get("gpu", "")
    return _Gpu(
        index=int(index_text) if index_text.isdigit() else 0,
        name=labels.get("modelName") or None,
        pci_bus_id=labels.get("pci_bus_id") or None,
        driver_version=labels.get("DCGM_FI_DRIVER_VERSION") or None,
    )


def _add_process_series(
    series: RangeSeries,
    gpus: dict[GpuKey, _Gpu],
    by_instance: dict[tuple[str, str], GpuKey],
    tally: RejectTally,
    totals: _Totals,
) -> None:
    labels = series.labels
    uuid = labels.get("UUID", "")
    # gpufleet's process series carry no Hostname; the scrape's instance ties them to the
    # GPU series of the same target, and a GPU UUID alone is unique across a fleet.
    key = by_instance.get((labels.get("instance", ""), uuid))
    if key is None:
        key = next((k for k in gpus if k[2] == uuid), None)
    if key is None or not labels.get("pid", "").isdigit():
        _reject_all(tally, series, "unmatched_process", "no GPU series with its UUID")
        return
    process = GpuProcess(
        pid=int(labels["pid"]),
        name=labels.get("process") or None,
        attribution=Attribution(
            namespace=labels.get("namespace") or UNKNOWN,
            user=labels.get("user") or UNKNOWN,
            workload=labels.get("workload") or UNKNOWN,
        ),
    )
    gpu = gpus[key]
    for ts, value in series.points:
        if not math.isfinite(value):
            tally.add("not_finite", _describe(series), 0, f"{value} at {ts:.0f}")
            continue
        totals.used += 1
        memory = replace(process, used_memory_bytes=round(value))
        gpu.processes.setdefault(ts, {})[process.pid] = memory


def _snapshots(gpus: dict[GpuKey, _Gpu], step_s: float, totals: _Totals) -> list[Snapshot]:
    """One snapshot per (cluster, node, timestamp), sorted by time."""
    grouped: dict[tuple[float, str, str], list[GpuSample]] = {}
    for (cluster, node, uuid), gpu in gpus.items():
        for ts, values in gpu.readings.items():
            grouped.setdefault((ts, cluster, node), []).append(_sample(uuid, gpu, ts, values))
            totals.gpus.add((cluster, node, uuid))
            totals.first_ts = ts if totals.first_ts is None else min(totals.first_ts, ts)
            totals.last_ts = ts if totals.last_ts is None else max(totals.last_ts, ts)
    return [
        Snapshot(ts, cluster, node, tuple(sorted(samples, key=lambda g: g.index)), None, step_s)
        for (ts, cluster, node), samples in sorted(grouped.items())
    ]


def _sample(uuid: str, gpu: _Gpu, ts: float, values: dict[str, float]) -> GpuSample:
    used, free = _int(values.get("mem_used_bytes")), _int(values.get("mem_free_bytes"))
    total = _int(values.get("mem_total_bytes"))
    if total is None and used is not None and free is not None:
        total = used + free
    processes = tuple(gpu.processes.get(ts, {}).values())
    if not processes:
        processes = tuple(
            GpuProcess(
                pid=0,
                name=container or None,
                attribution=Attribution(
                    namespace=namespace or UNKNOWN,
                    workload=pod,
                    pod=pod,
                    k8s_namespace=namespace or None,
                    container_id=container or None,
                ),
            )
            for container, namespace, pod in sorted(gpu.pods.get(ts, ()))
        )
    return GpuSample(
        uuid=uuid,
        index=gpu.index,
        name=gpu.name,
        pci_bus_id=gpu.pci_bus_id,
        driver_version=gpu.driver_version,
        util_gpu_pct=values.get("util_gpu_pct"),
        util_mem_pct=values.get("util_mem_pct"),
        mem_used_bytes=used,
        mem_free_bytes=free,
        mem_total_bytes=total,
        temp_c=values.get("temp_c"),
        power_w=values.get("power_w"),
        clock_sm_mhz=values.get("clock_sm_mhz"),
        processes=processes,
    )


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def _describe(series: RangeSeries) -> str:
    labels = series.labels
    name = labels.get("__name__", "series")
    ident = ",".join(
        f"{k}={labels[k]}" for k in ("Hostname", "instance", "UUID", "pid") if k in labels
    )
    return f"{name}{{{ident}}}"


def _reject_all(tally: RejectTally, series: RangeSeries, reason: str, detail: str) -> None:
    for ts, _ in series.points:
        tally.add(reason, _describe(series), 0, f"{detail} (at {ts:.0f})")
