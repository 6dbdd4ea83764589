"""What an analysis looks at: a time window, a scope, a group-by key, and the rows they select.

A :class:`Scope` narrows the fleet on any level of DESIGN.md's vocabulary: GPU-level
(``cluster``, ``node``, ``gpu``, ``gpu_model``) or workload-level (``namespace``, ``user``,
``workload``). :func:`read_scope` validates it against what the store holds in the window and
returns the usage rows it selects, prorated to the window.

Reading rules (analysis relies on them):

* Buckets are 1 minute wide for windows shorter than :data:`MINUTE_WINDOW_MAX_S` and 1 hour
  otherwise; when the store has no 1-minute rows for a short window (retention), hourly rows
  are used instead.
* A window read from 1-hour buckets whose edges are not on the hour reads its whole hours
  from 1-hour buckets and the part hours at its edges from 1-minute buckets (the hour's
  bucket, prorated, where none overlaps the part: expired, or sampled sparser than a
  minute), so GPU-time, sums and histograms equal the samples' own up to the minute an edge
  falls in, and adjacent windows add up to their union.
* A bucket that the window cuts through is prorated by its overlap with the part of the
  bucket the GPU's history covers (first seen to last seen plus one sampling interval, from
  the inventory): every additive field (seconds, sums, histogram) is scaled by that share.
  That assumes the bucket's time is spread evenly over the covered part, which is exact for
  whole buckets and an approximation for the two edge buckets; a bucket that history covers
  only in part (the first or last of a GPU's history) is not scaled down for the part it has
  no samples in. Peaks (``*_max``, ``*_peak``) are kept whole.
* Only the :class:`~gpufleet.store.base.Store` protocol is used, so both backends and either
  window semantics of the store (closed or half-open) give the same answer: rows whose bucket
  does not overlap ``[start_s, end_s)`` are dropped here.

The row arithmetic that utilization and waste share lives here too: idle time and percentiles
from the utilization histogram, idle time at a threshold, group-by keys and memory use.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError, resolve_gpu
from gpufleet.model import UNKNOWN
from gpufleet.store.base import (
    DEFAULT_IDLE_THRESHOLD_PCT,
    UTIL_HIST_BINS,
    GpuInventory,
    GpuUsage,
    Resolution,
    Store,
    WorkloadUsage,
)

GROUP_KEYS: tuple[str, ...] = (
    "cluster",
    "node",
    "gpu",
    "namespace",
    "user",
    "workload",
    "gpu_model",
    "workload_kind",
)
"""Keys an analysis can be scoped or grouped by."""
GPU_KEYS: tuple[str, ...] = ("cluster", "node", "gpu", "gpu_model")
"""Keys answered from per-GPU rollups (``gpu_usage``)."""
WORKLOAD_KEYS: tuple[str, ...] = ("namespace", "user", "workload")
"""The attribution hierarchy (drill-down levels), answered from per-workload rows."""
WORKLOAD_FILTER_KEYS: tuple[str, ...] = (*WORKLOAD_KEYS, "workload_kind")
"""Every key answered from per-workload rows: the hierarchy and the workload's kind
(``training``, ``inference``, ``notebook``, ``batch`` ...; ``unknown`` when not known)."""

MINUTE_WINDOW_MAX_S = 6 * 3600.0
"""Windows shorter than this are read from 1-minute buckets, longer ones from 1-hour buckets."""
HOUR_S = 3600.0
HIST_WIDTH_PCT = 100.0 / UTIL_HIST_BINS
_LISTED = 20
"""How many known values an error message lists before it says how many more there are."""


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open time range ``[start_s, end_s)`` an analysis covers (epoch seconds, UTC)."""

    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)):
            raise HistoryQueryError("window start and end must be finite epoch seconds")
        if self.end_s <= self.start_s:
            raise HistoryQueryError(
                f"window end ({_utc(self.end_s)}) must be after its start ({_utc(self.start_s)})"
            )

    @property
    def span_s(self) -> float:
        """Length of the window in seconds."""
        return self.end_s - self.start_s

    def overlap_s(self, bucket_s: float, width_s: float) -> float:
        """Seconds of the bucket ``[bucket_s, bucket_s + width_s)`` inside the window."""
        return max(0.0, min(self.end_s, bucket_s + width_s) - max(self.start_s, bucket_s))

    def label(self) -> str:
        """``2026-11-01..2026-11-08`` (whole UTC days) or with times when the edges are not."""
        if self.start_s % 86_400 == 0 and self.end_s % 86_400 == 0:
            return f"{_utc(self.start_s, '%Y-%m-%d')}..{_utc(self.end_s, '%Y-%m-%d')}"
        return f"{_utc(self.start_s)}..{_utc(self.end_s)}"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which part of the fleet to analyse; ``None`` on a level means all of it.

    ``gpu`` is a UUID (or an index together with ``node``); ``gpu_model`` matches the model
    name case-insensitively as a substring (``h100`` matches ``NVIDIA H100 80GB HBM3``).
    """

    cluster: str | None = None
    node: str | None = None
    gpu: str | None = None
    namespace: str | None = None
    user: str | None = None
    workload: str | None = None
    gpu_model: str | None = None
    workload_kind: str | None = None
    nodes: str | None = None
    """Comma-separated ``cluster/node`` names (a hub's pool or label): only GPUs on these
    nodes; None: any. A string like every level, so a scope stays hashable and plain."""
    nodes_label: str | None = None
    """What ``nodes`` stands for in messages (``pool train``)."""

    @property
    def node_set(self) -> frozenset[str] | None:
        """``nodes`` as a set (None when not set)."""
        return None if self.nodes is None else frozenset(self.nodes.split(","))

    @property
    def workload_level(self) -> bool:
        """Whether a namespace, user, workload or workload kind is named (answered from
        workload rows)."""
        return any(getattr(self, k) is not None for k in WORKLOAD_FILTER_KEYS)


@dataclass(frozen=True, slots=True)
class ScopedRows:
    """The usage rows a scope selects in a window, prorated to the window."""

    window: Window
    scope: Scope
    resolution: Resolution
    gpus: dict[str, GpuInventory]
    """Selected GPUs by UUID (those with data overlapping the window)."""
    gpu_rows: list[GpuUsage]
    workload_rows: list[WorkloadUsage]
    stored_idle_threshold_pct: float
    """Threshold the store classified idle time with (``idle_s``, ``busy_gpu_s``)."""


def check_group_key(by: str | None) -> str | None:
    """``by`` itself when it is one of :data:`GROUP_KEYS` (or None).

    Raises:
        HistoryQueryError: an unknown key; the message lists the valid ones.
    """
    if by is not None and by not in GROUP_KEYS:
        raise HistoryQueryError(f"unknown group-by key {by!r}; use one of: {', '.join(GROUP_KEYS)}")
    return by


def model_name(gpu: GpuInventory | None) -> str:
    """The GPU's model name, or ``unknown`` when the driver never reported one."""
    return gpu.name if gpu is not None and gpu.name else UNKNOWN


def stored_idle_threshold(store: Store) -> float:
    """Idle threshold the store rolled up with.

    Not part of the Store protocol: both backends expose it as ``idle_threshold_pct``; a store
    without it is taken to use the DESIGN.md default.
    """
    value = getattr(store, "idle_threshold_pct", DEFAULT_IDLE_THRESHOLD_PCT)
    return float(value) if isinstance(value, int | float) else DEFAULT_IDLE_THRESHOLD_PCT


def resolution_for(window: Window) -> Resolution:
    """1-minute buckets for short windows, 1-hour ones otherwise."""
    return Resolution.MINUTE if window.span_s < MINUTE_WINDOW_MAX_S else Resolution.HOUR


def read_scope(
    store: Store,
    window: Window,
    scope: Scope,
    *,
    need_workloads: bool,
    need_gpu_rows: bool = True,
    summed: bool = False,
    per_s: float | None = None,
    offset_s: float = 0.0,
    per_gpu: bool = True,
    exact_edges: bool = True,
) -> ScopedRows:
    """Validate ``scope`` in ``window`` and read the rows it selects.

    Args:
        store: the history to read.
        window: the time range.
        scope: the part of the fleet.
        need_workloads: read workload rows even when the scope is GPU-level (for a
            workload-level group-by or a waste report).
        need_gpu_rows: read the per-GPU rows; without them ``gpu_rows`` is empty and
            ``resolution`` is the one the window asks for (for callers that use only the
            workload rows: validation and the GPUs selected do not depend on them).
        summed: read each GPU's buckets inside the window as one row
            (``Store.gpu_usage_totals``), and each workload's hours on a GPU likewise
            (``Store.workload_usage_totals``), for callers that only add rows up per GPU,
            workload or group at the store's idle threshold: the same sums from far fewer
            rows.
        per_s: with ``summed``, one row per GPU and period of this length (from
            ``offset_s``) instead of one per window, for series by day or week.
        per_gpu: with ``summed`` and False, the inner rows are summed over the scope's GPUs
            too (uuid ``""``): only for scopes narrowed by cluster or node alone, whose GPUs
            are exactly those the store's filters select.
        exact_edges: read the part hours at the window's edges by the minute and the first
            and last buckets of each GPU's history as covering only their part (see the
            module docstring); False prorates every bucket evenly, as the store's SQL sums
            do (the recommendations' reads, which must agree with those sums).

    Raises:
        UnknownSubjectError: a scope value with no data in the window; the message lists the
            values that have data.
        HistoryQueryError: an ambiguous GPU index.
        StoreError: the store cannot answer.
    """
    label = window.label()
    # The whole inventory, so that an unknown cluster's message can list the known ones.
    gpus = _select_gpus(store.inventory(), scope, window, label)
    resolution = resolution_for(window)
    found = True
    gpu_rows: list[GpuUsage] = []
    if need_gpu_rows:
        found, gpu_rows = _gpu_rows(
            store, window, scope, resolution, gpus, summed, per_s, offset_s, per_gpu, exact_edges
        )
    if not found and resolution is Resolution.MINUTE:
        # 1-minute rollups expire first; an old short window is still answered from hours.
        resolution = Resolution.HOUR
        found, gpu_rows = _gpu_rows(
            store, window, scope, resolution, gpus, summed, per_s, offset_s, per_gpu, exact_edges
        )
    workload_rows: list[WorkloadUsage] = []
    if need_workloads or scope.workload_level:
        read = store.workload_usage_totals if summed else store.workload_usage
        raw = read(start_s=window.start_s, end_s=window.end_s, cluster=scope.cluster)
        in_gpus = prorate_workload_rows(raw, window, gpus, history=gpus if exact_edges else None)
        workload_rows = _select_workloads(in_gpus, scope, label)
    return ScopedRows(
        window=window,
        scope=scope,
        resolution=resolution,
        gpus=gpus,
        gpu_rows=gpu_rows,
        workload_rows=workload_rows,
        stored_idle_threshold_pct=stored_idle_threshold(store),
    )


def covered_span_s(scoped: ScopedRows) -> float:
    """Seconds of the window that the selected GPUs' history covers (first seen to last
    seen, inside the window, a quarter-hour of slack at each end; at least a minute): what a
    monthly figure is scaled from, so
    a 30-day window over 7 days of history is not read as a month of costs."""
    w = scoped.window
    if not scoped.gpus:
        return w.span_s
    # A sample stands for the interval after it: history up to a quarter-hour short of an
    # edge covers the edge (no sampling interval is longer).
    slack = 900.0
    first = min(g.first_seen_s for g in scoped.gpus.values())
    last = max(g.last_seen_s for g in scoped.gpus.values())
    start = w.start_s if first - w.start_s <= slack else first
    end = w.end_s if w.end_s - last <= slack else last
    return min(max(end - start, 60.0), w.span_s)


def _utc(ts_s: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(ts_s, tz=UTC).strftime(fmt)


def _known(values: Iterable[str]) -> str:
    known = sorted(set(values))
    if not known:
        return "none"
    shown = ", ".join(known[:_LISTED])
    return shown if len(known) <= _LISTED else f"{shown}, ... ({len(known) - _LISTED} more)"


def _missing(level: str, value: str, label: str, values: Iterable[str]) -> UnknownSubjectError:
    plural = {
        "cluster": "clusters",
        "node": "nodes",
        "gpu_model": "GPU models",
        "workload_kind": "workload kinds",
    }.get(level, f"{level}s")
    return UnknownSubjectError(f"no {level} {value!r} in {label}; {plural}: {_known(values)}")


def _select_gpus(
    inventory: Sequence[GpuInventory], scope: Scope, window: Window, label: str
) -> dict[str, GpuInventory]:
    # A GPU counts as present when a sample of it could fall in a bucket the window touches.
    present = [
        g
        for g in inventory
        if g.first_seen_s < window.end_s and g.last_seen_s >= window.start_s - HOUR_S
    ]
    if scope.cluster is not None:
        if all(g.cluster != scope.cluster for g in present):
            raise _missing("cluster", scope.cluster, label, (g.cluster for g in present))
        present = [g for g in present if g.cluster == scope.cluster]
    if scope.node is not None:
        if all(g.node != scope.node for g in present):
            raise _missing("node", scope.node, label, (g.node for g in present))
        present = [g for g in present if g.node == scope.node]
    on_nodes = scope.node_set
    if on_nodes is not None:
        on = [g for g in present if f"{g.cluster}/{g.node}" in on_nodes]
        if not on:
            what = scope.nodes_label or "the nodes asked for"
            raise UnknownSubjectError(
                f"no GPU of {what} ({_known(on_nodes)}) has data in {label}; nodes with "
                f"data: {_known(f'{g.cluster}/{g.node}' for g in present)}"
            )
        present = on
    if scope.gpu is not None:
        uuid = resolve_gpu(present, scope.gpu, cluster=scope.cluster, node=scope.node)
        present = [g for g in present if g.uuid == uuid]
    if scope.gpu_model is not None:
        wanted = scope.gpu_model.casefold()
        matched = [g for g in present if wanted in model_name(g).casefold()]
        if not matched:
            raise _missing("gpu_model", scope.gpu_model, label, map(model_name, present))
        present = matched
    return {g.uuid: g for g in present}


def _gpu_rows(
    store: Store,
    window: Window,
    scope: Scope,
    resolution: Resolution,
    gpus: dict[str, GpuInventory],
    summed: bool = False,
    per_s: float | None = None,
    offset_s: float = 0.0,
    per_gpu: bool = True,
    exact_edges: bool = True,
) -> tuple[bool, list[GpuUsage]]:
    """Whether any row overlaps the window, and the rows of ``gpus`` prorated to it.

    At 1-hour resolution the whole hours are read from 1-hour buckets and the part hours at
    the window's edges from 1-minute buckets: an hour bucket
    the window cuts through cannot tell where in the hour its samples lie.
    """
    args = (scope, gpus, summed, per_s, offset_s, per_gpu)
    if not exact_edges:
        return _read_gpu_rows(store, window, resolution, *args, history=False)
    if resolution is not Resolution.HOUR:
        return _read_gpu_rows(store, window, resolution, *args)
    start, end = window.start_s, window.end_s
    lo = -(-start // HOUR_S) * HOUR_S  # the first hour edge at or after the start
    hi = end // HOUR_S * HOUR_S  # the last hour edge at or before the end
    if lo == start and hi == end:
        return _read_gpu_rows(store, window, resolution, *args)
    found, out = False, list[GpuUsage]()
    if lo < hi:
        found, out = _read_gpu_rows(store, Window(lo, hi), resolution, *args)
        edges = [(start, lo), (hi, end)]
    elif lo < end:
        edges = [(start, lo), (lo, end)]
    else:
        edges = [(start, end)]
    for a, b in edges:
        if b > a:
            # A part hour from 1-minute buckets; from the hour's bucket, prorated, when no
            # 1-minute bucket overlaps it (expired, or sampling sparser than a minute: the
            # hour's bucket then stands for its time evenly spread).
            part = Window(a, b)
            edge_found, rows = _read_gpu_rows(store, part, Resolution.MINUTE, *args)
            if not edge_found:
                edge_found, rows = _read_gpu_rows(store, part, Resolution.HOUR, *args)
            found = found or edge_found
            out.extend(rows)
    return found, out


def _read_gpu_rows(
    store: Store,
    window: Window,
    resolution: Resolution,
    scope: Scope,
    gpus: dict[str, GpuInventory],
    summed: bool,
    per_s: float | None,
    offset_s: float,
    per_gpu: bool,
    *,
    history: bool = True,
) -> tuple[bool, list[GpuUsage]]:
    """The rows of one resolution: whether any overlaps the window, and those of ``gpus``
    prorated to it (by the part of each bucket its GPU's history covers, with ``history``)."""
    if summed:
        rows = store.gpu_usage_totals(
            start_s=window.start_s,
            end_s=window.end_s,
            resolution=resolution,
            cluster=scope.cluster,
            node=scope.node,
            per_s=per_s,
            offset_s=offset_s,
            per_gpu=per_gpu,
        )
    else:
        rows = store.gpu_usage(
            start_s=window.start_s,
            end_s=window.end_s,
            resolution=resolution,
            cluster=scope.cluster,
            node=scope.node,
        )
    return prorate_gpu_rows(
        rows, window, resolution, gpus, per_gpu, history=gpus if history else None
    )


def covered_share(
    window: Window, bucket_s: float, width_s: float, history: GpuInventory, step_s: float
) -> float:
    """Share of the bucket ``[bucket_s, bucket_s + width_s)``'s samples inside the window.

    A window edge at or before the GPU's first sample, or after its last, cuts none of its
    samples off (a sample is in the window when its time is). Otherwise the bucket's time is
    taken as spread evenly over the part of it the GPU's history covers: from its first
    sample to its last sample plus ``step_s`` (the bucket's sampling interval); a bucket
    that history covers for none of its width is taken as covered whole.
    """
    first, last = history.first_seen_s, history.last_seen_s
    if window.start_s > last or window.end_s <= first:
        return 0.0
    lo = max(bucket_s, first)
    hi = min(bucket_s + width_s, last + step_s)
    if hi <= lo:
        lo, hi = bucket_s, bucket_s + width_s
    start = lo if window.start_s <= first else max(window.start_s, lo)
    end = hi if window.end_s > last else min(window.end_s, hi)
    return max(0.0, end - start) / (hi - lo)


def _edge_share(
    frac: float,
    window: Window,
    bucket_s: float,
    width_s: float,
    history: Mapping[str, GpuInventory] | None,
    uuid: str,
    seconds: float,
    samples: int,
) -> float:
    """The share of a bucket the window cuts: by the part its GPU's history covers when
    ``history`` has the GPU (sampling interval: seconds per sample), else ``frac``."""
    seen = history.get(uuid) if history is not None else None
    if seen is None:
        return frac
    step = seconds / samples if samples > 0 else 0.0
    return covered_share(window, bucket_s, width_s, seen, step)


def prorate_gpu_rows(
    rows: Iterable[GpuUsage],
    window: Window,
    resolution: Resolution,
    gpus: Collection[str],
    per_gpu: bool = True,
    *,
    history: Mapping[str, GpuInventory] | None = None,
) -> tuple[bool, list[GpuUsage]]:
    """Whether any of ``rows`` overlaps the window, and those of ``gpus`` prorated to it
    (``per_gpu`` False also keeps rows summed over GPUs, whose uuid is ``""``).

    A row the window cuts through is scaled by its share inside the window: of the part of
    the bucket its GPU's history covers when ``history`` has the GPU (see
    :func:`covered_share`; the sampling interval is the row's seconds per sample), else of
    the bucket's width.

    ``Window.overlap_s`` is written out inline (the same arithmetic, in the same order):
    this loop runs once per GPU and bucket, tens of thousands of times for a month.
    """
    start, end = window.start_s, window.end_s
    width = resolution.bucket_s
    found = False
    out: list[GpuUsage] = []
    append = out.append
    for r in rows:
        b = r.bucket_s
        frac = max(0.0, min(end, b + width) - max(start, b)) / width
        if frac <= 0.0:
            continue
        found = True
        if r.uuid not in gpus and (per_gpu or r.uuid):  # "": summed over the scope's GPUs
            continue
        if frac < 1.0:
            frac = _edge_share(frac, window, b, width, history, r.uuid, r.seconds, r.samples)
            if frac <= 0.0:
                continue
        if frac < 1.0:
            r = dataclasses.replace(  # noqa: PLW2901 - the prorated row replaces the stored one
                r,
                seconds=r.seconds * frac,
                allocated_s=r.allocated_s * frac,
                idle_s=r.idle_s * frac,
                idle_allocated_s=r.idle_allocated_s * frac,
                util_sum=r.util_sum * frac,
                util_hist_s=tuple(h * frac for h in r.util_hist_s),
                throttled_s=r.throttled_s * frac,
                samples=round(r.samples * frac),
            )
        append(r)
    return found, out


def prorate_workload_rows(
    rows: Iterable[WorkloadUsage],
    window: Window,
    gpus: Collection[str],
    *,
    history: Mapping[str, GpuInventory] | None = None,
) -> list[WorkloadUsage]:
    """The rows of ``gpus`` overlapping the window, prorated to it (see
    :func:`prorate_gpu_rows`; the sampling interval is the row's GPU-seconds per sample,
    shorter than the GPU's where workloads share it)."""
    start, end = window.start_s, window.end_s
    out: list[WorkloadUsage] = []
    append = out.append
    for r in rows:
        h = r.hour_s
        frac = max(0.0, min(end, h + HOUR_S) - max(start, h)) / HOUR_S
        if frac <= 0.0 or r.uuid not in gpus:
            continue
        if frac < 1.0:
            frac = _edge_share(frac, window, h, HOUR_S, history, r.uuid, r.gpu_s, r.samples)
            if frac <= 0.0:
                continue
        if frac < 1.0:
            r = dataclasses.replace(  # noqa: PLW2901 - the prorated row replaces the stored one
                r,
                gpu_s=r.gpu_s * frac,
                busy_gpu_s=r.busy_gpu_s * frac,
                util_sum=r.util_sum * frac,
                mem_bytes_s=r.mem_bytes_s * frac,
                samples=round(r.samples * frac),
            )
        append(r)
    return out


def _select_workloads(rows: list[WorkloadUsage], scope: Scope, label: str) -> list[WorkloadUsage]:
    # Narrowed level by level so that each message lists what exists under the levels above.
    for level in WORKLOAD_FILTER_KEYS:
        wanted = getattr(scope, level)
        if wanted is None:
            continue
        matched = [r for r in rows if _workload_value(r, level) == wanted]
        if not matched:
            raise _missing(level, wanted, label, (_workload_value(r, level) for r in rows))
        rows = matched
    return rows


def add_bins(hist: Sequence[float], row: Sequence[float]) -> list[float]:
    """``hist`` with ``row`` added bin by bin (``hist[b] += row[b]`` for each bin of ``row``).

    Summing a histogram per row is the inner loop of every analysis over GPU rows; for the
    usual equal lengths the same additions run in C.
    """
    if len(row) == len(hist):
        return list(map(operator.add, hist, row))
    out = list(hist)
    for b, s in enumerate(row):
        out[b] += s
    return out


def hist_idle_s(hist: Sequence[float], threshold_pct: float) -> float:
    """Seconds below ``threshold_pct`` in a 5 %-bin histogram, interpolated inside its bin."""
    pos = min(max(threshold_pct, 0.0), 100.0) / HIST_WIDTH_PCT
    full = min(int(pos), len(hist))
    partial = hist[full] * (pos - full) if full < len(hist) else 0.0
    return sum(hist[:full]) + partial


def hist_percentile(hist: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (0..1) of utilization in a 5 %-bin histogram; None when empty."""
    total = sum(hist)
    if total <= 0:
        return None
    target = q * total
    cum = 0.0
    for b, s in enumerate(hist):
        if s > 0 and cum + s >= target:
            return (b + (target - cum) / s) * HIST_WIDTH_PCT
        cum += s
    return 100.0


def idle_at(row: GpuUsage, threshold_pct: float, stored_pct: float) -> tuple[float, float]:
    """``(idle_s, idle_allocated_s)`` of a GPU bucket at ``threshold_pct``.

    At the store's threshold these are the stored seconds; otherwise idle time comes from the
    histogram and idle allocated time shifts by the bucket's allocated share (exact for
    buckets wholly allocated or unallocated; see :mod:`gpufleet.analysis.utilization`).
    """
    if threshold_pct == stored_pct:
        return row.idle_s, row.idle_allocated_s
    idle = hist_idle_s(row.util_hist_s, threshold_pct)
    if row.allocated_s <= 0 or row.seconds <= 0:
        return idle, 0.0
    if row.allocated_s >= row.seconds:
        return idle, idle
    shifted = row.idle_allocated_s + (idle - row.idle_s) * row.allocated_s / row.seconds
    return idle, min(max(shifted, 0.0), idle, row.allocated_s)


def gpu_label(gpu: GpuInventory | None, uuid: str) -> str:
    """``node GPU index`` for display, the UUID when the GPU is not in the inventory."""
    return f"{gpu.node} GPU {gpu.index}" if gpu is not None else uuid


def workload_key(row: WorkloadUsage) -> str:
    """``namespace/user/workload``: unique where workload names repeat across namespaces."""
    return f"{row.namespace}/{row.user}/{row.workload}"


def key_of(by: str, row: GpuUsage | WorkloadUsage, gpus: dict[str, GpuInventory]) -> str:
    """The value of group-by key ``by`` for a GPU or workload row."""
    if by == "gpu":
        return row.uuid
    if by == "gpu_model":
        return model_name(gpus.get(row.uuid))
    if by == "workload" and isinstance(row, WorkloadUsage):
        return workload_key(row)
    if by == "workload_kind" and isinstance(row, WorkloadUsage):
        return _workload_value(row, by)
    return str(getattr(row, by))


def _workload_value(row: WorkloadUsage, level: str) -> str:
    """A workload row's value of ``level`` (a missing kind reads ``unknown``)."""
    if level == "workload_kind":
        return row.workload_kind or UNKNOWN
    return str(getattr(row, level))


def weighted_percentile(values: Iterable[tuple[float, float]], q: float) -> float | None:
    """The ``q``-quantile of ``(value, weight)`` pairs (lowest value reaching the weight)."""
    pairs = sorted(p for p in values if p[1] > 0)
    total = sum(w for _, w in pairs)
    cum = 0.0
    for v, w in pairs:
        cum += w
        if cum >= q * total:
            return v
    return None


def memory_use_pct(
    store: Store, scoped: ScopedRows, uuids: set[str]
) -> tuple[float | None, float | None, float | None]:
    """(mean, p95, peak) memory use % of ``uuids``: time-weighted over bucket means.

    The mean and p95 come from the store in one query (``Store.gpu_memory_use``): each
    bucket's mean used memory over the GPU's total, weighted by its readings and its overlap
    with the window; the p95 is over bucket means, so spikes shorter than a bucket are
    smoothed. The peak is the highest single reading (``mem_used_max_bytes``).
    """
    w = scoped.window
    known = {u for u in uuids if (g := scoped.gpus.get(u)) is not None and g.mem_total_bytes}
    mean, p95 = store.gpu_memory_use(
        start_s=w.start_s, end_s=w.end_s, resolution=scoped.resolution, uuids=known
    )
    peaks = [
        100.0 * r.mem_used_max_bytes / r.mem_total_bytes
        for r in scoped.gpu_rows
        if r.uuid in uuids and r.mem_used_max_bytes is not None and r.mem_total_bytes
    ]
    return mean, p95, max(peaks, default=None)
