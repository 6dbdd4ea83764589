"""Rollup math: turn a batch of snapshots into the rows every table receives.

Pure Python and backend-neutral; the backends only execute the rows. The rules, which
analysis relies on (DESIGN.md "Definitions"):

* A sample's weight is its snapshot's ``interval_s`` (``dt``). It belongs to the bucket
  ``floor(ts / width) * width`` (60 s for ``*_1m``, 3600 s for ``*_1h`` and ``workload_1h``).
* For each metric a bucket keeps ``sum`` (value x dt over samples with a value), ``wt`` (dt of
  those samples), ``min`` and ``max``; the time-weighted mean is ``sum / wt``. A missing
  reading adds nothing, so it neither drags the mean down nor counts as zero.
* ``idle_s``: dt of samples with ``util_gpu_pct < idle threshold``; unknown utilization is
  neither idle nor busy. ``allocated_s``: dt of samples holding a compute process
  (:attr:`GpuSample.allocated`); ``idle_allocated_s``: both. ``throttled_s``: dt of samples with
  a thermal or power throttle reason active.
* ``util_hist_NN``: dt per 5 %-wide utilization bin; the last bin is closed (100 % is bin 19).
* A lost GPU adds a raw row flagged ``lost`` (no readings) and moves its inventory
  ``last_seen``; it adds nothing to rollups or workload usage.
* Workload usage: a GPU's dt is shared equally among the distinct (namespace, user, workload)
  triples of its compute processes in that sample. ``busy_gpu_s`` is that share when
  utilization >= the idle threshold, ``util_sum`` is utilization x share, ``mem_bytes_s`` is the
  workload's summed process memory x dt (memory is not shared: each workload holds its own).

Rows of one batch are grouped per key here, so each key is written once per batch; the
stores' upserts then merge them into stored rows column by column with the rules of
``schema.Merge`` (sums and seconds add, min / max ignore NULL), which is what makes a bucket
written in several batches equal to the bucket written at once.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpufleet.model import GpuSample, Snapshot, SystemSample
from gpufleet.store._gc import gc_paused
from gpufleet.store.base import GPU_METRICS, UTIL_HIST_BINS
from gpufleet.store.schema import SYSTEM_STORED_METRICS

Row = tuple[Any, ...]
Values = tuple[float | int | None, ...]

MINUTE_S = 60.0
HOUR_S = 3600.0
HIST_WIDTH_PCT = 100.0 / UTIL_HIST_BINS
_LAST_BIN = UTIL_HIST_BINS - 1

_get_gpu_metrics: Callable[[GpuSample], Values] = operator.attrgetter(*GPU_METRICS)
_NONE_GPU = (None,) * len(GPU_METRICS)
_ZERO_HIST: tuple[float, ...] = (0.0,) * UTIL_HIST_BINS
_HIST_SPLITS = tuple((_ZERO_HIST[:b], _ZERO_HIST[b + 1 :]) for b in range(UTIL_HIST_BINS))
"""Zero bins before and after each bin: a sample's histogram is ``(*before, dt, *after)``."""
_mul = operator.mul


def bucket_of(ts_s: float, width_s: float) -> float:
    """``floor(ts / width) * width``, computed without the rounding of a division."""
    return ts_s - ts_s % width_s


def hist_bin(util_pct: float) -> int:
    """Utilization bin of ``util_pct``: 5 % wide, clamped to the valid range, 100 % in the last."""
    return min(max(int(util_pct // HIST_WIDTH_PCT), 0), _LAST_BIN)


def is_throttled(reasons: tuple[str, ...] | None) -> bool:
    """True when a thermal or power clock-throttle reason is active."""
    return bool(reasons) and any("thermal" in r or "power" in r for r in reasons or ())


def _stats(values: Values, dt: float) -> tuple[Any, ...]:
    """Stat columns of one sample, grouped as the schema orders them: sums, weights, min, max."""
    if None in values:
        sums = [0.0 if v is None else v * dt for v in values]
        weights = [0.0 if v is None else dt for v in values]
    else:
        sums = [v * dt for v in values]  # type: ignore[operator]
        weights = [dt] * len(values)
    # A single sample's min and max are its readings, so the tuple is reused as is.
    return (*sums, *weights, *values, *values)


def _aggregate_stats(values: Sequence[Values], dts: Sequence[float]) -> list[Any]:
    """Stat columns of several samples: per metric, reductions over its column (C loops)."""
    sums: list[Any] = []
    weights: list[Any] = []
    mins: list[Any] = []
    maxs: list[Any] = []
    seconds = sum(dts)
    for col in zip(*values, strict=True):
        if None in col:
            known = [(v, d) for v, d in zip(col, dts, strict=True) if v is not None]
            if not known:
                sums.append(0.0)
                weights.append(0.0)
                mins.append(None)
                maxs.append(None)
                continue
            col, ds = zip(*known, strict=True)  # noqa: PLW2901
            weights.append(sum(ds))
        else:
            ds = dts  # type: ignore[assignment]
            weights.append(seconds)
        sums.append(sum(map(_mul, col, ds)))
        mins.append(min(col))
        maxs.append(max(col))
    return [*sums, *weights, *mins, *maxs]


# A GPU sample as rolled up: (readings, dt, (allocated_s, idle_s, idle_allocated_s,
# throttled_s), utilization bin or -1 when utilization is unknown).
GpuRecord = tuple[Values, float, tuple[float, float, float, float], int]


def _gpu_hist(recs: Sequence[GpuRecord]) -> list[float]:
    hist = [0.0] * UTIL_HIST_BINS
    for r in recs:
        if r[3] >= 0:
            hist[r[3]] += r[1]
    return hist


def gpu_rollup_row(key: Row, recs: Sequence[GpuRecord]) -> Row:
    """The ``gpu_1m`` / ``gpu_1h`` row of ``recs`` under ``key`` (bucket, cluster, node, uuid)."""
    if len(recs) == 1:
        # The hot path at one sample per minute: one tuple built, no intermediate ones.
        values, dt, flags, b = recs[0]
        if None in values:
            sums = [0.0 if v is None else v * dt for v in values]
            weights = [0.0 if v is None else dt for v in values]
        else:
            sums = [v * dt for v in values]  # type: ignore[operator]
            weights = [dt] * len(values)
        before, after = _HIST_SPLITS[b] if b >= 0 else (_ZERO_HIST, ())
        fill = (dt,) if b >= 0 else ()
        return (*key, 1, dt, *sums, *weights, *values, *values, *flags, *before, *fill, *after)
    dts = [r[1] for r in recs]
    return (
        *key,
        len(recs),
        sum(dts),
        *_aggregate_stats([r[0] for r in recs], dts),
        *map(sum, zip(*(r[2] for r in recs), strict=True)),
        *_gpu_hist(recs),
    )


def system_rollup_row(key: Row, recs: Sequence[tuple[Values, float]]) -> Row:
    """The ``system_1m`` / ``system_1h`` row of ``recs`` under ``key`` (bucket, cluster, node)."""
    if len(recs) == 1:
        values, dt = recs[0]
        return (*key, 1, dt, *_stats(values, dt))
    dts = [r[1] for r in recs]
    return (*key, len(recs), sum(dts), *_aggregate_stats([r[0] for r in recs], dts))


def _roll_up(
    hours: dict[Row, list[tuple[float, Any]]], row_of: Callable[[Row, Sequence[Any]], Row]
) -> tuple[list[Row], list[Row]]:
    """1-minute and 1-hour rows from per-hour groups of (minute, record)."""
    minute_rows: list[Row] = []
    hour_rows: list[Row] = []
    for hour_key, group in hours.items():
        rest = hour_key[1:]
        hour_rows.append(row_of(hour_key, [rec for _, rec in group]))
        if len({minute for minute, _ in group}) == len(group):
            # One sample per minute (the usual 1/min cadence): no grouping needed.
            minute_rows.extend([row_of((minute, *rest), (rec,)) for minute, rec in group])
            continue
        minutes: dict[float, list[Any]] = {}
        for minute, rec in group:
            recs = minutes.get(minute)
            if recs is None:
                minutes[minute] = [rec]
            else:
                recs.append(rec)
        minute_rows.extend(row_of((minute, *rest), recs) for minute, recs in minutes.items())
    return minute_rows, hour_rows


@dataclass(slots=True)
class Batch:
    """Rows for every table from one ``write_snapshots`` call, grouped per key."""

    gpu_raw: list[Row] = field(default_factory=list)
    gpu_1m: list[Row] = field(default_factory=list)
    gpu_1h: list[Row] = field(default_factory=list)
    system_raw: list[Row] = field(default_factory=list)
    system_1m: list[Row] = field(default_factory=list)
    system_1h: list[Row] = field(default_factory=list)
    workload_1h: list[Row] = field(default_factory=list)
    gpus: list[Row] = field(default_factory=list)
    nodes: list[Row] = field(default_factory=list)


def system_values(s: SystemSample) -> Values:
    """The SYSTEM_STORED_METRICS of a host sample: network summed, fullest disk's percent."""
    rx = [n.rx_bytes_per_s for n in s.net if n.rx_bytes_per_s is not None]
    tx = [n.tx_bytes_per_s for n in s.net if n.tx_bytes_per_s is not None]
    derived: dict[str, float | None] = {
        # None when no interface has a rate yet (first sample), not 0: 0 would be a reading.
        "net_rx_bytes_per_s": sum(rx) if rx else None,
        "net_tx_bytes_per_s": sum(tx) if tx else None,
        "disk_max_used_pct": max((d.used_pct for d in s.disks), default=None),
    }
    return tuple(derived[m] if m in derived else getattr(s, m) for m in SYSTEM_STORED_METRICS)


def _max_known(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b


class _Workloads:
    """Per-hour workload rows of one batch, accumulated in place (column order of the table)."""

    __slots__ = ("rows", "threshold")

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.rows: dict[Row, list[Any]] = {}

    def add(self, hour: float, snap: Snapshot, g: GpuSample, util: float | int | None) -> None:
        procs = g.processes
        if len(procs) == 1 and procs[0].kind == "compute":
            # The common case, one process holding the GPU, without the grouping below.
            p = procs[0]
            a = p.attribution
            mem = p.used_memory_bytes
            self._add(
                (hour, snap.cluster, snap.node, g.uuid, a.namespace, a.user, a.workload),
                (a.workload_kind, snap.interval_s, snap.interval_s, util, mem or 0, mem),
            )
            return
        # (namespace, user, workload) -> [memory bytes, memory known, workload kind]
        holders: dict[tuple[str, str, str], list[Any]] = {}
        for p in procs:
            if p.kind != "compute":
                continue
            a = p.attribution
            who = (a.namespace, a.user, a.workload)
            acc = holders.get(who)
            if acc is None:
                acc = holders[who] = [0, False, a.workload_kind]
            elif acc[2] is None:
                acc[2] = a.workload_kind
            if p.used_memory_bytes is not None:
                acc[0] += p.used_memory_bytes
                acc[1] = True
        if not holders:
            return
        dt = snap.interval_s
        share = dt / len(holders)
        for (namespace, user, workload), (mem, mem_known, kind) in holders.items():
            key = (hour, snap.cluster, snap.node, g.uuid, namespace, user, workload)
            self._add(key, (kind, dt, share, util, mem, mem if mem_known else None))

    def _add(self, key: Row, share_of: tuple[Any, ...]) -> None:
        """Add one workload's share of one sample: (kind, dt, share, util, memory, peak)."""
        kind, dt, share, util, mem, peak = share_of
        busy = share if util is not None and util >= self.threshold else 0.0
        util_sum = util * share if util is not None else 0.0
        row = self.rows.get(key)
        if row is None:
            self.rows[key] = [kind, share, busy, util_sum, mem * dt, peak, util, 1]
            return
        row[0] = kind if kind is not None else row[0]
        row[1] += share
        row[2] += busy
        row[3] += util_sum
        row[4] += mem * dt
        row[5] = _max_known(row[5], peak)
        row[6] = _max_known(row[6], util)
        row[7] += 1

    def finish(self) -> list[Row]:
        return [key + tuple(row) for key, row in self.rows.items()]


def _is_allocated(g: GpuSample) -> bool:
    # Same rule as GpuSample.allocated, without a generator per sample on the hot path.
    for p in g.processes:  # noqa: SIM110
        if p.kind == "compute":
            return True
    return False


def build_batch(
    snapshots: Sequence[Snapshot], *, idle_threshold_pct: float, keep_raw: bool = True
) -> Batch:
    """Every row ``snapshots`` add, in the column order of the tables in ``schema``."""
    with gc_paused():
        return _build_batch(snapshots, idle_threshold_pct, keep_raw)


def _build_batch(snapshots: Sequence[Snapshot], threshold: float, keep_raw: bool) -> Batch:
    batch = Batch()
    gpu_hours: dict[Row, list[tuple[float, GpuRecord]]] = {}
    sys_hours: dict[Row, list[tuple[float, tuple[Values, float]]]] = {}
    inventory: dict[Row, list[Any]] = {}
    nodes: dict[Row, list[float]] = {}
    workloads = _Workloads(threshold)
    raw_gpu = batch.gpu_raw
    for snap in snapshots:
        ts, cluster, node, dt = snap.ts_s, snap.cluster, snap.node, snap.interval_s
        minute = ts - ts % MINUTE_S
        hour = ts - ts % HOUR_S
        seen = nodes.get((cluster, node))
        if seen is None:
            nodes[(cluster, node)] = [ts, ts]
        else:
            seen[0], seen[1] = min(seen[0], ts), max(seen[1], ts)
        for g in snap.gpus:
            uuid = g.uuid
            inv = inventory.get((cluster, node, uuid))
            if inv is None:
                inventory[(cluster, node, uuid)] = [g.index, g.name, g.mem_total_bytes, ts, ts]
            elif ts >= inv[4]:
                inv[0] = g.index
                inv[1] = g.name if g.name is not None else inv[1]
                inv[2] = g.mem_total_bytes if g.mem_total_bytes is not None else inv[2]
                inv[4] = ts
            elif ts < inv[3]:
                inv[3] = ts
            if g.lost:
                if keep_raw:
                    raw_gpu.append((ts, cluster, node, uuid, dt, *_NONE_GPU, 0, 0, 1))
                continue
            values = _get_gpu_metrics(g)
            util = values[0]
            allocated = _is_allocated(g) if g.processes else False
            if keep_raw:
                raw_gpu.append(
                    (ts, cluster, node, uuid, dt, *values, len(g.processes), int(allocated), 0)
                )
            if util is None or util != util:  # noqa: PLR0124 - NaN is no reading either
                util, idle_s, b = None, 0.0, -1
            else:
                idle_s = dt if util < threshold else 0.0
                # hist_bin(), inlined on the hot path; compared first so inf cannot reach int().
                b = _LAST_BIN if util >= 100.0 else 0 if util < 0.0 else int(util // HIST_WIDTH_PCT)
            flags = (
                dt if allocated else 0.0,
                idle_s,
                idle_s if allocated else 0.0,
                dt if g.throttle_reasons and is_throttled(g.throttle_reasons) else 0.0,
            )
            group = gpu_hours.get((hour, cluster, node, uuid))
            if group is None:
                group = gpu_hours[(hour, cluster, node, uuid)] = []
            group.append((minute, (values, dt, flags, b)))
            if allocated:
                workloads.add(hour, snap, g, util)
        if snap.system is not None:
            sys_values = system_values(snap.system)
            if keep_raw:
                batch.system_raw.append((ts, cluster, node, dt, *sys_values))
            sys_hours.setdefault((hour, cluster, node), []).append((minute, (sys_values, dt)))
    batch.gpu_1m, batch.gpu_1h = _roll_up(gpu_hours, gpu_rollup_row)
    batch.system_1m, batch.system_1h = _roll_up(sys_hours, system_rollup_row)
    batch.workload_1h = workloads.finish()
    batch.gpus = [key + tuple(v) for key, v in inventory.items()]
    batch.nodes = [key + tuple(v) for key, v in nodes.items()]
    return batch
