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
* A reading that is not a finite number (NaN, +/-inf, or an integer SQL cannot hold) is no
  reading: it is stored as NULL and rolled up as a missing one (so NaN utilization is neither
  idle nor busy and in no histogram bin).
* A lost GPU adds a raw row flagged ``lost`` (no readings) and moves its inventory
  ``last_seen``; it adds nothing to rollups or workload usage.
* Workload usage: a GPU's dt is shared equally among the distinct (namespace, user, workload)
  triples of its compute processes in that sample. ``busy_gpu_s`` is that share when
  utilization >= the idle threshold, ``util_sum`` is utilization x share, ``mem_bytes_s`` is the
  workload's summed process memory x dt (memory is not shared: each workload holds its own).

Rows of one batch are grouped per key here, so each key is written once per batch; the
stores' upserts then merge them into stored rows column by column with the rules of
``schema.Merge`` (sums and seconds add, min / max ignore NULL), which is what makes a bucket
written in several batches equal to the bucket written at once. A bucket that holds one
sample of the batch is sent as that sample's readings (``*_one`` rows, see
``schema.OneSampleRollup``) and expanded by the database into the same row.

The work is done per subject and hour, column-wise: readings are transposed into one tuple
per metric so that sums, minima and maxima are C-level reductions, and rows are zipped
together from columns rather than assembled value by value.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, groupby, repeat
from typing import Any

from gpufleet.model import GpuSample, Snapshot, SystemSample
from gpufleet.store._gc import gc_paused
from gpufleet.store.base import GPU_METRICS, UTIL_HIST_BINS
from gpufleet.store.schema import SYSTEM_STORED_METRICS

Row = tuple[Any, ...]
Values = tuple[float | int | None, ...]
Missing = tuple[str, ...]
"""Metrics absent from every row of a group, in metric order: their columns are left out."""
Rows = dict[Missing, list[Row]]
"""Rows per set of metrics missing from all of them."""

MINUTE_S = 60.0
HOUR_S = 3600.0
HIST_WIDTH_PCT = 100.0 / UTIL_HIST_BINS
_LAST_BIN = UTIL_HIST_BINS - 1
_INT64 = 1 << 63

_get_gpu_metrics: Callable[[GpuSample], Values] = operator.attrgetter(*GPU_METRICS)
_SYS_DERIVED = ("net_rx_bytes_per_s", "net_tx_bytes_per_s", "disk_max_used_pct")
assert SYSTEM_STORED_METRICS[-3:] == _SYS_DERIVED, "system_values() builds them in this order"
_get_sys_direct: Callable[[SystemSample], Values] = operator.attrgetter(*SYSTEM_STORED_METRICS[:-3])
_mul = operator.mul
_first = operator.itemgetter(0)
_get_attribution = operator.attrgetter("attribution")
_get_who = operator.attrgetter("namespace", "user", "workload")
_get_kind = operator.attrgetter("workload_kind")
_get_memory = operator.attrgetter("used_memory_bytes")


def bucket_of(ts_s: float, width_s: float) -> float:
    """``floor(ts / width) * width``, computed without the rounding of a division."""
    return ts_s - ts_s % width_s


def hist_bin(util_pct: float) -> int:
    """Utilization bin of ``util_pct``: 5 % wide, clamped to the valid range, 100 % in the last."""
    return min(max(int(util_pct // HIST_WIDTH_PCT), 0), _LAST_BIN)


def is_throttled(reasons: tuple[str, ...] | None) -> bool:
    """True when a thermal or power clock-throttle reason is active."""
    return bool(reasons) and any("thermal" in r or "power" in r for r in reasons or ())


_THROTTLED: dict[tuple[str, ...], int] = {}
"""is_throttled() per reasons tuple seen (a GPU reports few distinct ones)."""


def _throttled(reasons: tuple[str, ...] | None) -> int:
    if not reasons:
        return 0
    known = _THROTTLED.get(reasons)
    if known is None:
        known = int(is_throttled(reasons))
        if len(_THROTTLED) < 4096:
            _THROTTLED[reasons] = known
    return known


def finite_or_none(value: Any) -> Any:
    """``value`` when it is a usable reading, else None: NaN, +/-inf, something that is not
    a number, or an integer outside SQL's 64-bit range (a garbage counter) is no reading."""
    if value is None:
        return None
    try:
        if value - value != 0:  # NaN and the infinities
            return None
    except TypeError:
        return None
    if isinstance(value, int) and not -_INT64 <= value < _INT64:
        return None
    return value


def _clean(col: tuple[Any, ...], nones: int | None = None) -> tuple[tuple[Any, ...], Any]:
    """A column of readings with unusable ones (see :func:`finite_or_none`) as None, and the
    sum of the column when every reading is known (else None).

    The common case, every reading finite, costs one C-level ``sum``: NaN or an infinity
    anywhere makes ``total - total`` NaN. The sum is reused for the rollup's sums.
    ``nones`` is ``col.count(None)`` when the caller has it.
    """
    if nones is None:
        nones = col.count(None)
    if nones == len(col):
        return col, None
    known = [v for v in col if v is not None] if nones else col
    try:
        total = sum(known)
        if total - total == 0 and -_INT64 < total < _INT64:
            return col, None if nones else total
    except (TypeError, OverflowError):
        pass
    return tuple(map(finite_or_none, col)), None


def _stats(
    cols: Sequence[tuple[Any, ...]],
    totals: Sequence[Any],
    dts: Sequence[float],
    seconds: float,
    same_dt: bool,
) -> list[Any]:
    """Stat columns of several samples, grouped as the schema orders them: sums, weights,
    minima, maxima. Per metric, reductions over its column (C loops). ``totals`` are the
    column sums from :func:`_clean` (None where unknown); with one interval for every sample
    (``same_dt``, the usual batch) a sum of value x dt is that total x dt."""
    sums: list[Any] = []
    weights: list[Any] = []
    mins: list[Any] = []
    maxs: list[Any] = []
    dt0 = dts[0]
    for col, total in zip(cols, totals, strict=True):
        if total is not None:
            sums.append(total * dt0 if same_dt else sum(map(_mul, col, dts)))
            weights.append(seconds)
            mins.append(min(col))
            maxs.append(max(col))
            continue
        known = [(v, d) for v, d in zip(col, dts, strict=True) if v is not None]
        if not known:
            sums.append(0.0)
            weights.append(0.0)
            mins.append(None)
            maxs.append(None)
            continue
        values, ds = zip(*known, strict=True)
        sums.append(sum(map(_mul, values, ds)))
        weights.append(sum(ds))
        mins.append(min(values))
        maxs.append(max(values))
    return [*sums, *weights, *mins, *maxs]


@dataclass(slots=True)
class Batch:
    """Rows for every table from one ``write_snapshots`` call, grouped per key.

    ``*_one`` rows are buckets of exactly one sample in the carried layout of
    ``schema.OneSampleRollup`` (readings, flags, histogram bin); the other rollup lists hold
    full rows. Raw and ``*_one`` rows come per :data:`Missing`: a metric that no sample of a
    subject-hour reports (a datacenter GPU's fan) is left out of their rows rather than sent
    as NULL, which Python's sqlite3 binds far more slowly than a number.
    """

    gpu_raw: Rows = field(default_factory=dict)
    gpu_1m: list[Row] = field(default_factory=list)
    gpu_1m_one: Rows = field(default_factory=dict)
    gpu_1h: list[Row] = field(default_factory=list)
    gpu_1h_one: Rows = field(default_factory=dict)
    system_raw: Rows = field(default_factory=dict)
    system_1m: list[Row] = field(default_factory=list)
    system_1m_one: Rows = field(default_factory=dict)
    system_1h: list[Row] = field(default_factory=list)
    system_1h_one: Rows = field(default_factory=dict)
    workload_1h: list[Row] = field(default_factory=list)
    gpus: list[Row] = field(default_factory=list)
    nodes: list[Row] = field(default_factory=list)


def _rows(table: Rows, missing: Missing) -> list[Row]:
    rows = table.get(missing)
    if rows is None:
        rows = table[missing] = []
    return rows


def full_rows(rows: Rows, names: Sequence[str]) -> list[Row]:
    """``rows`` with their missing metrics put back as None: every row in the layout of
    ``names`` (a table's columns, or a carried layout's)."""
    out: list[Row] = []
    for missing, group in rows.items():
        if not missing:
            out += group
            continue
        present = [n for n in names if n not in missing]
        pick = [present.index(n) if n not in missing else -1 for n in names]
        out += [tuple(None if i < 0 else r[i] for i in pick) for r in group]
    return out


def system_values(s: SystemSample) -> Values:
    """The SYSTEM_STORED_METRICS of a host sample: network summed, fullest disk's percent.

    Interfaces and disks without a usable number are left out of the sum and the maximum.
    """
    rx = tx = None
    for n in s.net:
        r, t = n.rx_bytes_per_s, n.tx_bytes_per_s
        # None when no interface has a rate yet (first sample), not 0: 0 would be a reading.
        if r is not None and r - r == 0:
            rx = r if rx is None else rx + r
        if t is not None and t - t == 0:
            tx = t if tx is None else tx + t
    disk = None
    for d in s.disks:
        u = d.used_pct
        if u is not None and u - u == 0 and (disk is None or u > disk):
            disk = u
    return (*_get_sys_direct(s), rx, tx, disk)


# A sample waiting to be rolled up: (ts, minute, dt, sample).
_Pending = tuple[float, float, float, Any]


def _minute_runs(minutes: tuple[float, ...]) -> list[tuple[float, int, int]]:
    """(minute, first index, end index) of each run of equal minutes (input in time order)."""
    runs = []
    start = 0
    for minute, run in groupby(minutes):
        end = start + sum(1 for _ in run)
        runs.append((minute, start, end))
        start = end
    return runs


def _inventory(hours: dict[float, list[_Pending]], lost: list[_Pending]) -> Row:
    """(index, name, mem_total_bytes, first_seen, last_seen) of one GPU from its samples.

    The newest sample's facts win; when it has no name or memory size, the newest sample
    that has one gives it. Hour groups are already in time order.
    """
    ends = [rec for group in hours.values() for rec in (group[0], group[-1])]
    ends += lost
    first = min(ends, key=_first)[0]
    newest = max(ends, key=_first)
    g = newest[3]
    name, mem_total = g.name, finite_or_none(g.mem_total_bytes)
    if name is None or mem_total is None:
        for rec in sorted(chain(*hours.values(), lost), key=_first, reverse=True):
            if name is None:
                name = rec[3].name
            if mem_total is None:
                mem_total = finite_or_none(rec[3].mem_total_bytes)
            if name is not None and mem_total is not None:
                break
    return (g.index, name, mem_total, first, newest[0])


class _Builder:
    """Accumulates one batch: samples per subject and hour, then rows per table."""

    def __init__(self, threshold: float, keep_raw: bool) -> None:
        self.threshold = threshold
        self.keep_raw = keep_raw
        self.batch = Batch()
        # (cluster, node) -> [first_seen, last_seen, {hour: host samples},
        #                     {uuid: [{hour: GPU samples}, lost GPU samples]}]
        self.nodes: dict[tuple[str, str], list[Any]] = {}

    def add(self, snapshots: Sequence[Snapshot]) -> None:
        nodes = self.nodes
        for snap in snapshots:
            ts, dt = snap.ts_s, snap.interval_s
            minute = ts - ts % MINUTE_S
            hour = ts - ts % HOUR_S
            host = nodes.get((snap.cluster, snap.node))
            if host is None:
                host = nodes[(snap.cluster, snap.node)] = [ts, ts, {}, {}]
            elif ts < host[0]:
                host[0] = ts
            elif ts > host[1]:
                host[1] = ts
            gpus = host[3]
            for g in snap.gpus:
                acc = gpus.get(g.uuid)
                if acc is None:
                    acc = gpus[g.uuid] = [{}, []]
                if g.lost:
                    acc[1].append((ts, minute, dt, g))
                    continue
                group = acc[0].get(hour)
                if group is None:
                    acc[0][hour] = [(ts, minute, dt, g)]
                else:
                    group.append((ts, minute, dt, g))
            if snap.system is not None:
                group = host[2].get(hour)
                if group is None:
                    host[2][hour] = [(ts, minute, dt, snap.system)]
                else:
                    group.append((ts, minute, dt, snap.system))

    def finish(self) -> Batch:
        batch = self.batch
        for (cluster, node), (first, last, host_hours, gpus) in self.nodes.items():
            batch.nodes.append((cluster, node, first, last))
            for uuid, (hours, lost) in gpus.items():
                key = (cluster, node, uuid)
                for hour, group in hours.items():
                    self._gpu_hour(key, hour, group)
                batch.gpus.append((*key, *_inventory(hours, lost)))
                if lost and self.keep_raw:
                    # A lost GPU: a raw row flagged lost, without readings; no rollups.
                    _rows(batch.gpu_raw, GPU_METRICS).extend(
                        (ts, *key, dt, 0, 0, 1) for ts, _, dt, _ in lost
                    )
            for hour, group in host_hours.items():
                self._system_hour((cluster, node), hour, group)
        return batch

    # ---- GPUs ----------------------------------------------------------------------

    def _gpu_hour(self, key: tuple[str, str, str], hour: float, group: list[_Pending]) -> None:
        """Raw, 1m, 1h and workload rows of one GPU's samples in one hour."""
        batch = self.batch
        cluster, node, uuid = key
        group.sort(key=_first)  # stable, and nearly free on samples already in time order
        n = len(group)
        tss, minutes, dts, samples = zip(*group, strict=True)
        cleaned, missing = _columns(map(_get_gpu_metrics, samples), GPU_METRICS, n)
        cols = [c for c, _ in cleaned]
        util = cols[0]
        sent = [c for c, m in zip(cols, GPU_METRICS, strict=True) if m not in missing]
        nprocs = [len(g.processes) for g in samples]
        allocated = (
            [
                0 if not p else 1 if g.processes[0].kind == "compute" else _holds_compute(g)
                for p, g in zip(nprocs, samples, strict=True)
            ]
            if any(nprocs)
            else [0] * n
        )
        throttled = [_throttled(g.throttle_reasons) for g in samples]
        threshold = self.threshold
        idle = [1 if u is not None and u < threshold else 0 for u in util]
        bins = [
            -1
            if u is None
            else _LAST_BIN
            if u >= 100.0
            else 0
            if u < 0.0
            else int(u // HIST_WIDTH_PCT)
            for u in util
        ]
        if self.keep_raw:
            _rows(batch.gpu_raw, missing).extend(
                zip(
                    tss,
                    repeat(cluster),
                    repeat(node),
                    repeat(uuid),
                    dts,
                    *sent,
                    nprocs,
                    allocated,
                    repeat(0),
                )
            )
        # Buckets of one sample go in the carried layout of schema.OneSampleRollup.
        if len(set(minutes)) == n:
            _rows(batch.gpu_1m_one, missing).extend(
                zip(
                    minutes,
                    repeat(cluster),
                    repeat(node),
                    repeat(uuid),
                    dts,
                    *sent,
                    allocated,
                    idle,
                    throttled,
                    bins,
                )
            )
        else:
            flags = (allocated, idle, throttled, bins)
            for minute, a, b in _minute_runs(minutes):
                if b - a == 1:
                    _rows(batch.gpu_1m_one, missing).append(
                        (minute, *key, dts[a], *(c[a] for c in sent), *(f[a] for f in flags))
                    )
                else:
                    part = [_clean(c[a:b]) for c in cols]
                    batch.gpu_1m.append(
                        _gpu_row(
                            (minute, *key),
                            dts[a:b],
                            part,
                            *(f[a:b] for f in flags),
                        )
                    )
        if n == 1:
            flags0 = (allocated[0], idle[0], throttled[0], bins[0])
            _rows(batch.gpu_1h_one, missing).append(
                (hour, *key, dts[0], *(c[0] for c in sent), *flags0)
            )
        else:
            batch.gpu_1h.append(
                _gpu_row((hour, *key), dts, cleaned, allocated, idle, throttled, bins)
            )
        if any(allocated):
            self._workloads((hour, *key), samples, dts, util, allocated)

    def _workloads(
        self,
        key: Row,
        samples: Sequence[GpuSample],
        dts: Sequence[float],
        util: Sequence[float | None],
        allocated: Sequence[int],
    ) -> None:
        """``workload_1h`` rows of one GPU-hour: its time shared among compute holders."""
        threshold = self.threshold
        held_at = list(compress(range(len(allocated)), allocated))
        holders = [samples[i].processes for i in held_at]
        if sum(map(len, holders)) == len(holders):
            # One process per sample: when one workload held the GPU all hour (the usual
            # case), its row is a few reductions over columns.
            firsts = list(map(_first, holders))
            attributions = list(map(_get_attribution, firsts))
            whos = list(map(_get_who, attributions))
            if whos.count(whos[0]) == len(whos):
                ds = [dts[i] for i in held_at]
                us = [util[i] for i in held_at]
                mems, _ = _clean(tuple(map(_get_memory, firsts)))
                kinds = [k for k in map(_get_kind, attributions) if k is not None]
                known_us = [u for u in us if u is not None]
                known_mems = [m for m in mems if m is not None] if None in mems else mems
                single = (
                    kinds[-1] if kinds else None,
                    sum(ds),
                    sum(
                        [
                            d
                            for d, u in zip(ds, us, strict=True)
                            if u is not None and u >= threshold
                        ],
                        0.0,
                    ),
                    sum([u * d for u, d in zip(us, ds, strict=True) if u is not None], 0.0),
                    sum([m * d for m, d in zip(mems, ds, strict=True) if m is not None], 0.0),
                    max(known_mems) if known_mems else None,
                    max(known_us) if known_us else None,
                    len(held_at),
                )
                self.batch.workload_1h.append((*key, *whos[0], *single))
                return
        # (namespace, user, workload) -> [kind, gpu_s, busy_gpu_s, util_sum, mem_bytes_s,
        # mem_peak_bytes, util_peak_pct, samples], the table's column order.
        rows: dict[tuple[str, str, str], list[Any]] = {}
        for g, held, dt, u in zip(samples, allocated, dts, util, strict=True):
            if not held:
                continue
            procs = g.processes
            if len(procs) == 1:
                # The common case, one process holding the GPU, without _shares().
                p = procs[0]
                a = p.attribution
                shares: Sequence[tuple[Any, ...]] = (
                    ((a.namespace, a.user, a.workload), a.workload_kind, dt, p.used_memory_bytes),
                )
            else:
                shares = _shares(procs, dt)
            busy = u is not None and u >= threshold
            for who, kind, share, held_mem in shares:
                # NaN, an infinity or a garbage counter is no reading.
                mem = held_mem if held_mem is None or -_INT64 < held_mem < _INT64 else None
                row = rows.get(who)
                if row is None:
                    rows[who] = [
                        kind,
                        share,
                        share if busy else 0.0,
                        0.0 if u is None else u * share,
                        0.0 if mem is None else mem * dt,
                        mem,
                        u,
                        1,
                    ]
                    continue
                if kind is not None:
                    row[0] = kind
                row[1] += share
                if busy:
                    row[2] += share
                if u is not None:
                    row[3] += u * share
                    if row[6] is None or u > row[6]:
                        row[6] = u
                if mem is not None:
                    row[4] += mem * dt
                    if row[5] is None or mem > row[5]:
                        row[5] = mem
                row[7] += 1
        self.batch.workload_1h.extend((*key, *who, *row) for who, row in rows.items())

    # ---- hosts ---------------------------------------------------------------------

    def _system_hour(self, key: tuple[str, str], hour: float, group: list[_Pending]) -> None:
        """Raw, 1m and 1h rows of one host's samples in one hour."""
        batch = self.batch
        cluster, node = key
        group.sort(key=_first)
        n = len(group)
        tss, minutes, dts, samples = zip(*group, strict=True)
        cleaned, missing = _columns(map(system_values, samples), SYSTEM_STORED_METRICS, n)
        cols = [c for c, _ in cleaned]
        sent = [c for c, m in zip(cols, SYSTEM_STORED_METRICS, strict=True) if m not in missing]
        if self.keep_raw:
            _rows(batch.system_raw, missing).extend(
                zip(tss, repeat(cluster), repeat(node), dts, *sent)
            )
        if len(set(minutes)) == n:
            _rows(batch.system_1m_one, missing).extend(
                zip(minutes, repeat(cluster), repeat(node), dts, *sent)
            )
        else:
            for minute, a, b in _minute_runs(minutes):
                if b - a == 1:
                    _rows(batch.system_1m_one, missing).append(
                        (minute, *key, dts[a], *(c[a] for c in sent))
                    )
                else:
                    part = [_clean(c[a:b]) for c in cols]
                    batch.system_1m.append(_system_row((minute, *key), dts[a:b], part))
        if n == 1:
            _rows(batch.system_1h_one, missing).append((hour, *key, dts[0], *(c[0] for c in sent)))
        else:
            batch.system_1h.append(_system_row((hour, *key), dts, cleaned))


def _columns(
    readings: Iterable[Values], metrics: Sequence[str], n: int
) -> tuple[list[_Cleaned], Missing]:
    """Per-sample readings transposed into cleaned columns (see :func:`_clean`), and the
    metrics with no reading at all."""
    cols = list(zip(*readings, strict=True))
    nones = [c.count(None) for c in cols]
    missing = tuple(m for m, k in zip(metrics, nones, strict=True) if k == n)
    return list(map(_clean, cols, nones)), missing


def _holds_compute(g: GpuSample) -> int:
    # Same rule as GpuSample.allocated, without a generator per sample on the hot path.
    for p in g.processes:
        if p.kind == "compute":
            return 1
    return 0


def _shares(procs: Sequence[Any], dt: float) -> list[tuple[tuple[str, str, str], Any, float, Any]]:
    """(who, workload kind, GPU-seconds, memory) per distinct compute holder of a sample.

    A GPU's ``dt`` is shared equally among the distinct (namespace, user, workload) triples;
    memory adds up per triple (None when no process of it reported any).
    """
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
        return []
    share = dt / len(holders)
    return [
        (who, kind, share, mem if known else None) for who, (mem, known, kind) in holders.items()
    ]


# A column of readings after _clean(): the column and its sum when fully known.
_Cleaned = tuple[tuple[Any, ...], Any]


def _gpu_row(
    key: Row,
    dts: tuple[float, ...],
    cleaned: Sequence[_Cleaned],
    allocated: Sequence[int],
    idle: Sequence[int],
    throttled: Sequence[int],
    bins: Sequence[int],
) -> Row:
    """The full ``gpu_1m`` / ``gpu_1h`` row of several samples (given as columns)."""
    seconds = sum(dts)
    dt = dts[0]
    same_dt = dts.count(dt) == len(dts)
    hist = [0.0] * UTIL_HIST_BINS
    if same_dt:
        for b, count in Counter(bins).items():
            if b >= 0:
                hist[b] = count * dt
        flags = [sum(allocated) * dt, sum(idle) * dt, sum(map(_mul, allocated, idle)) * dt]
        flags.append(sum(throttled) * dt)
    else:
        for b, d in zip(bins, dts, strict=True):
            if b >= 0:
                hist[b] += d
        flags = [sum(map(_mul, f, dts)) for f in (allocated, idle, throttled)]
        flags.insert(2, sum(map(_mul, map(_mul, allocated, idle), dts)))
    return (
        *key,
        len(dts),
        seconds,
        *_stats([c for c, _ in cleaned], [t for _, t in cleaned], dts, seconds, same_dt),
        *flags,
        *hist,
    )


def _system_row(key: Row, dts: tuple[float, ...], cleaned: Sequence[_Cleaned]) -> Row:
    """The full ``system_1m`` / ``system_1h`` row of several samples (given as columns)."""
    seconds = sum(dts)
    same_dt = dts.count(dts[0]) == len(dts)
    cols, totals = [c for c, _ in cleaned], [t for _, t in cleaned]
    return (*key, len(dts), seconds, *_stats(cols, totals, dts, seconds, same_dt))


def build_batch(
    snapshots: Sequence[Snapshot], *, idle_threshold_pct: float, keep_raw: bool = True
) -> Batch:
    """Every row ``snapshots`` add, in the column order of the tables in ``schema``."""
    with gc_paused():
        builder = _Builder(idle_threshold_pct, keep_raw)
        builder.add(snapshots)
        return builder.finish()
