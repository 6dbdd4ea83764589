"""Window sums of the usage rollups, added up in SQL, and the rows of chosen GPUs or
workloads: the SQL side of :class:`~gpufleet.store.base.UsageSumReads`.

An analysis that looks for the few GPUs or workloads past a threshold (the recommendation
rules) reads these sums first, then the hourly rows of the few that could qualify, instead
of every row of the window.

The buckets wholly inside the window are summed by the database in one pass; the (at most
two) buckets crossing its edges are read as rows and added here, weighted by their overlap,
so no per-row arithmetic runs in SQL. Sums are added in the database's order (on PostgreSQL
possibly in parallel), so they can differ from a sum of the same rows in another order in
the last bits; counts, hours and maxima are exact.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from gpufleet.store._gc import gc_paused
from gpufleet.store.base import (
    UTIL_HIST_BINS,
    GpuUsage,
    GpuUsageSums,
    Resolution,
    StoreError,
    WorkloadUsage,
    WorkloadUsageSums,
)
from gpufleet.store.queries import (
    _GPU_USAGE_SELECT,
    SqlReads,
    _gpu_usage,
    _workload_usage,
    resolution_of,
)
from gpufleet.store.record_queries import Row, filters
from gpufleet.store.schema import HIST_COLUMNS, TABLES_BY_NAME
from gpufleet.store.schema_model import Dialect

HOUR_S = 3600.0
_LISTED = 16
"""Most GPUs a workload sum lists in its SQL; a longer list is applied to the sums."""
SUM_BY: tuple[str, ...] = ("gpu", "bucket")
"""What :meth:`SqlUsageSums.gpu_usage_sums` sums over: a GPU's buckets or a bucket's GPUs."""

_WORKLOAD_COLUMNS = (
    "cluster, node, uuid, hour, namespace, user_name, workload, workload_kind, gpu_s, "
    "busy_gpu_s, util_sum, mem_bytes_s, mem_peak_bytes, util_peak_pct, samples"
)
_WORKLOAD_ORDER = "hour, cluster, node, uuid, namespace, user_name, workload"
""":meth:`SqlReads.workload_usage`'s order, which the rows of chosen workloads keep."""


def _gpu_sums(prefix: str, hist: bool) -> str:
    """The summed columns of a GPU sums row (``prefix`` qualifies them in a join)."""
    p = prefix
    cols = (
        f"COUNT(*), SUM({p}seconds), SUM({p}allocated_s), SUM({p}util_gpu_pct_sum), "
        f"CAST(MAX({p}mem_used_bytes_max) AS BIGINT), "
        f"CAST(MAX({p}mem_total_bytes_max) AS BIGINT)"
    )
    if hist:
        cols += ", " + ", ".join(f"SUM({p}{h})" for h in HIST_COLUMNS)
    return cols


def _in(column: str, values: Collection[object]) -> str:
    """`` AND column IN (?, ...)`` for ``values`` (the caller passes them as parameters)."""
    return f" AND {column} IN ({', '.join('?' for _ in values)})"


def _bigger(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


@dataclass(slots=True)
class _GpuAcc:
    """A GPU sums row being added up (the database's part, then the edge buckets)."""

    rows: int = 0
    seconds: float = 0.0
    allocated_s: float = 0.0
    util_sum: float = 0.0
    hist: list[float] = field(default_factory=list)
    mem_used_max: int | None = None
    mem_total_max: int | None = None

    def add_sql(self, r: Row, hist: bool) -> None:
        """Add a row of :func:`_gpu_sums`' columns."""
        self.rows += int(r[0])
        self.seconds += r[1]
        self.allocated_s += r[2]
        self.util_sum += r[3]
        self.mem_used_max = _bigger(self.mem_used_max, r[4])
        self.mem_total_max = _bigger(self.mem_total_max, r[5])
        if hist:
            self._add_hist(r[6 : 6 + UTIL_HIST_BINS], 1.0)

    def add_row(self, r: GpuUsage, frac: float, hist: bool) -> None:
        """Add a bucket row weighted by ``frac``, its share inside the window."""
        self.rows += 1
        self.seconds += r.seconds * frac
        self.allocated_s += r.allocated_s * frac
        self.util_sum += r.util_sum * frac
        self.mem_used_max = _bigger(self.mem_used_max, r.mem_used_max_bytes)
        self.mem_total_max = _bigger(self.mem_total_max, r.mem_total_bytes)
        if hist:
            self._add_hist(r.util_hist_s, frac)

    def _add_hist(self, bins: Sequence[float], frac: float) -> None:
        if not self.hist:
            self.hist = [0.0] * UTIL_HIST_BINS
        for b, s in enumerate(bins):
            self.hist[b] += s * frac


@dataclass(slots=True)
class _WorkloadAcc:
    """A workload's rows on one GPU in the window's edge hours, being added up."""

    hours: set[float] = field(default_factory=set)
    gpu_s: float = 0.0
    busy_gpu_s: float = 0.0
    idle_gpu_s: float = 0.0
    mem_peak: int | None = None
    kinds: set[str] = field(default_factory=set)

    def add(self, w: WorkloadUsage, frac: float) -> None:
        """Add an hour row weighted by ``frac``, its share inside the window."""
        self.hours.add(w.hour_s)
        self.gpu_s += w.gpu_s * frac
        self.busy_gpu_s += w.busy_gpu_s * frac
        if w.gpu_s > w.busy_gpu_s:
            self.idle_gpu_s += (w.gpu_s - w.busy_gpu_s) * frac
        self.mem_peak = _bigger(self.mem_peak, w.mem_peak_bytes)
        if w.workload_kind:
            self.kinds.add(w.workload_kind)

    def merged(
        self, key: tuple[str, str, str, str], inner: WorkloadUsageSums | None
    ) -> WorkloadUsageSums:
        """These edge hours added to ``inner``, the sums of the hours inside (if any)."""
        kinds = set(self.kinds)
        hours = list(self.hours)
        if inner is None:
            return WorkloadUsageSums(
                *key,
                len(hours),
                min(hours),
                max(hours),
                self.gpu_s,
                self.busy_gpu_s,
                self.idle_gpu_s,
                self.mem_peak,
                min(kinds, default=None),
                max(kinds, default=None),
            )
        kinds.update(k for k in (inner.workload_kind_min, inner.workload_kind_max) if k)
        return WorkloadUsageSums(
            *key,
            inner.hours + len(hours),
            min(inner.first_hour_s, *hours),
            max(inner.last_hour_s, *hours),
            inner.gpu_s + self.gpu_s,
            inner.busy_gpu_s + self.busy_gpu_s,
            inner.idle_gpu_s + self.idle_gpu_s,
            _bigger(inner.mem_peak_bytes, self.mem_peak),
            min(kinds, default=None),
            max(kinds, default=None),
        )


class SqlUsageSums(SqlReads):
    """:class:`~gpufleet.store.base.UsageSumReads` over the SQL backends' rollup tables."""

    def _usage_resolution(self, resolution: Resolution, start_s: float, end_s: float) -> Resolution:
        """The resolution :meth:`gpu_usage` would read for these arguments."""
        asked = resolution_of(resolution)
        if asked is Resolution.RAW:
            raise StoreError("GPU usage is kept as rollups: ask for resolution 1m or 1h")
        res = self._resolve(asked, start_s, end_s)
        return Resolution.MINUTE if res is Resolution.RAW else res

    def gpu_usage_sums(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution = Resolution.HOUR,
        cluster: str | None = None,
        node: str | None = None,
        uuids: Collection[str] | None = None,
        by: str = "gpu",
        hist: bool = False,
    ) -> list[GpuUsageSums]:
        """:meth:`gpu_usage`'s rows summed per GPU or per bucket (see ``UsageSumReads``).

        Per GPU, rows come in inventory order; per bucket, in time order, with empty
        ``cluster``, ``node`` and ``uuid``. Only buckets with a row appear.

        Raises:
            StoreError: ``Resolution.RAW``, or ``by`` not one of :data:`SUM_BY`.
        """
        res = self._usage_resolution(resolution, start_s, end_s)
        if by not in SUM_BY:
            raise StoreError(f"unknown sum {by!r}: use one of {', '.join(SUM_BY)}")
        wanted = None if uuids is None else set(uuids)
        if end_s <= start_s or (wanted is not None and not wanted):
            return []
        width = res.bucket_s
        inner_lo = -(-start_s // width) * width
        inner_hi = end_s // width * width
        per_gpu = by == "gpu"
        # Keyed (cluster, node, uuid, None) per GPU, ("", "", "", bucket) per bucket.
        acc: dict[tuple[str, str, str, float | None], _GpuAcc] = {}
        with gc_paused():
            if inner_hi > inner_lo:
                for key, sums in self._inner_gpu_sums(
                    res, (inner_lo, inner_hi), cluster, node, wanted, per_gpu, hist
                ):
                    acc.setdefault(key, _GpuAcc()).add_sql(sums, hist)
                edges = [(start_s, inner_lo), (inner_hi, end_s)]
            else:
                edges = [(start_s, end_s)]
            for lo, hi in edges:
                if hi <= lo:
                    continue  # the window starts (or ends) on a bucket edge
                for r in self.gpu_usage(
                    start_s=lo, end_s=hi, resolution=res, cluster=cluster, node=node
                ):
                    b = r.bucket_s
                    frac = max(0.0, min(end_s, b + width) - max(start_s, b)) / width
                    if frac <= 0.0 or (wanted is not None and r.uuid not in wanted):
                        continue
                    key = (r.cluster, r.node, r.uuid, None) if per_gpu else ("", "", "", b)
                    acc.setdefault(key, _GpuAcc()).add_row(r, frac, hist)
        if per_gpu:
            order = self._gpu_order()
            last = len(order)
            keys = sorted(acc, key=lambda k: (order.get(k[:3], last), k[:3]))
        else:
            keys = sorted(acc, key=lambda k: k[3] or 0.0)
        return [
            GpuUsageSums(
                *key,
                a.rows,
                a.seconds,
                a.allocated_s,
                a.util_sum,
                tuple(a.hist) if hist else (),
                a.mem_used_max,
                a.mem_total_max,
            )
            for key in keys
            for a in (acc[key],)
        ]

    def _inner_gpu_sums(
        self,
        res: Resolution,
        window: tuple[float, float],
        cluster: str | None,
        node: str | None,
        wanted: set[str] | None,
        per_gpu: bool,
        hist: bool,
    ) -> list[tuple[tuple[str, str, str, float | None], Row]]:
        """(key, sums) of the buckets in ``[lo, hi)`` (all whole), per GPU or per bucket,
        keyed as in :meth:`gpu_usage_sums`."""
        table = TABLES_BY_NAME[f"gpu_{res.value}"]
        sqlite = getattr(self, "dialect", None) is Dialect.SQLITE
        pairs = (("cluster", cluster), ("node", node))
        listed = sorted(wanted) if wanted is not None else []
        out: list[tuple[tuple[str, str, str, float | None], Row]] = []
        if per_gpu and table.keyed_by_subject and sqlite:
            # SQLite: one range scan of the key per GPU (as gpu_usage_totals reads it).
            sql = (
                f"SELECT {_gpu_sums('', hist)} FROM {table.name} "
                "WHERE cluster = ? AND node = ? AND uuid = ? AND bucket >= ? AND bucket < ?"
            )
            lo, hi = window
            for key in self._subjects(True, (*pairs, ("uuid", None)), lo - res.bucket_s, hi):
                if wanted is not None and key[2] not in wanted:
                    continue
                r = self._read(sql, (*key, lo, hi))[0]
                if r[0]:
                    out.append(((key[0], key[1], key[2], None), r))
            return out
        keys = "cluster, node, uuid" if per_gpu else "bucket"
        if table.keyed_by_subject and (sqlite or wanted is not None):
            # From the inventory, one key range per GPU: SQLite takes CROSS JOIN's order as
            # given (the bucket index would visit the wide rows out of key order), and
            # PostgreSQL probes the key of the GPUs listed instead of testing every row of
            # the window against the list.
            where, params = filters([(f"g.{col}", value) for col, value in pairs])
            if wanted is not None:
                where += _in("g.uuid", listed)
            by = ", ".join(f"r.{k}" for k in keys.split(", "))
            join = "CROSS JOIN" if sqlite else "JOIN"
            sql = (
                f"SELECT {by}, {_gpu_sums('r.', hist)} FROM gpus g {join} {table.name} r "
                f"{'WHERE' if sqlite else 'ON'} r.cluster = g.cluster AND r.node = g.node "
                f"AND r.uuid = g.uuid {'AND' if sqlite else 'WHERE'} r.bucket >= ? "
                f"AND r.bucket < ?{where} GROUP BY {by}"
            )
            rows = self._read(sql, (*window, *params, *listed))
        else:
            where, params = filters(pairs)
            if wanted is not None:
                where += _in("uuid", listed)
            sql = (
                f"SELECT {keys}, {_gpu_sums('', hist)} FROM {table.name} "
                f"WHERE bucket >= ? AND bucket < ?{where} GROUP BY {keys}"
            )
            rows = self._read(sql, (*window, *params, *listed))
        if per_gpu:
            return [((r[0], r[1], r[2], None), r[3:]) for r in rows]
        return [(("", "", "", r[0]), r[1:]) for r in rows]

    def gpu_usage_of(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution = Resolution.HOUR,
        uuids: Collection[str],
    ) -> list[GpuUsage]:
        """:meth:`gpu_usage`'s rows of ``uuids`` only: the same rows in the same order.

        Raises:
            StoreError: as :meth:`gpu_usage`.
        """
        res = self._usage_resolution(resolution, start_s, end_s)
        wanted = set(uuids)
        if end_s <= start_s or not wanted:
            return []
        table = TABLES_BY_NAME[f"gpu_{res.value}"]
        width = res.bucket_s
        lo, hi = start_s - width, end_s
        none = (("cluster", None), ("node", None), ("uuid", None))
        out: list[GpuUsage] = []
        with gc_paused():
            if table.keyed_by_subject:
                sql = (
                    f"SELECT {_GPU_USAGE_SELECT} FROM {table.name} WHERE cluster = ? "
                    "AND node = ? AND uuid = ? AND bucket > ? AND bucket < ? ORDER BY bucket"
                )
                for key in self._subjects(True, none, lo, hi + width):
                    if key[2] in wanted:
                        out.extend(_gpu_usage(key, r) for r in self._read(sql, (*key, lo, hi)))
                return out
            listed = sorted(wanted)
            rows = self._read(
                f"SELECT cluster, node, uuid, {_GPU_USAGE_SELECT} FROM {table.name} "
                f"WHERE bucket > ? AND bucket < ?{_in('uuid', listed)} ORDER BY bucket",
                (lo, hi, *listed),
            )
            groups: dict[Row, list[Row]] = {}
            for r in rows:
                groups.setdefault(r[:3], []).append(r[3:])
            order = self._gpu_order()
            for key in sorted(groups, key=lambda k: (order.get(k, len(order)), k)):
                out.extend(_gpu_usage(key, r) for r in groups[key])
        return out

    def workload_usage_sums(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        uuids: Collection[str] | None = None,
    ) -> list[WorkloadUsageSums]:
        """:meth:`workload_usage`'s rows summed per workload and GPU (see ``UsageSumReads``),
        ordered by namespace, user, workload and GPU."""
        wanted = None if uuids is None else set(uuids)
        if end_s <= start_s or (wanted is not None and not wanted):
            return []
        inner_lo = -(-start_s // HOUR_S) * HOUR_S
        inner_hi = end_s // HOUR_S * HOUR_S
        out: dict[tuple[str, str, str, str], WorkloadUsageSums] = {}
        edge: dict[tuple[str, str, str, str], _WorkloadAcc] = {}
        with gc_paused():
            if inner_hi > inner_lo:
                where, params = filters((("cluster", cluster),))
                # A long list is applied to the summed rows instead: PostgreSQL would test
                # every row of the window against each value.
                listed = sorted(wanted) if wanted is not None and len(wanted) <= _LISTED else []
                if listed:
                    where += _in("uuid", listed)
                # A workload's rows on a GPU are one per hour unless the GPU was seen on two
                # nodes (the inventory keeps both): only then are its hours counted apart.
                moved = self._read("SELECT uuid FROM gpus GROUP BY uuid HAVING COUNT(*) > 1")
                hours = "COUNT(DISTINCT hour)" if moved else "COUNT(*)"
                keys = "namespace, user_name, workload, uuid"
                rows = self._read(
                    f"SELECT {keys}, {hours}, MIN(hour), MAX(hour), SUM(gpu_s), "
                    "SUM(busy_gpu_s), SUM(CASE WHEN gpu_s > busy_gpu_s "
                    "THEN gpu_s - busy_gpu_s ELSE 0.0 END), CAST(MAX(mem_peak_bytes) AS BIGINT), "
                    "MIN(NULLIF(workload_kind, '')), MAX(NULLIF(workload_kind, '')) "
                    f"FROM workload_1h WHERE hour >= ? AND hour < ?{where} GROUP BY {keys}",
                    (inner_lo, inner_hi, *params, *listed),
                )
                for r in rows:
                    ns, user, name, uuid = r[0], r[1], r[2], r[3]
                    if wanted is not None and uuid not in wanted:
                        continue
                    out[(ns, user, name, uuid)] = WorkloadUsageSums(
                        ns, user, name, uuid, int(r[4]), r[5], r[6], r[7], r[8], r[9], r[10],
                        r[11], r[12],
                    )  # fmt: skip
                edges = [(start_s, inner_lo), (inner_hi, end_s)]
            else:
                edges = [(start_s, end_s)]
            for lo, hi in edges:
                if hi <= lo:
                    continue  # the window starts (or ends) on an hour
                for w in self.workload_usage(start_s=lo, end_s=hi, cluster=cluster):
                    h = w.hour_s
                    frac = max(0.0, min(end_s, h + HOUR_S) - max(start_s, h)) / HOUR_S
                    if frac <= 0.0 or (wanted is not None and w.uuid not in wanted):
                        continue
                    key = (w.namespace, w.user, w.workload, w.uuid)
                    a = edge.get(key)
                    if a is None:
                        a = edge[key] = _WorkloadAcc()
                    a.add(w, frac)
        for key, a in edge.items():
            out[key] = a.merged(key, out.get(key))
        return [out[key] for key in sorted(out)]

    def workload_usage_of(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        workloads: Collection[tuple[str, str, str]] | None = None,
        uuids: Collection[str] | None = None,
    ) -> list[WorkloadUsage]:
        """:meth:`workload_usage`'s rows of ``workloads`` (``(namespace, user, workload)``)
        and on ``uuids``, each when given: the same rows in the same order."""
        chosen = None if workloads is None else sorted(set(workloads))
        listed = None if uuids is None else sorted(set(uuids))
        if end_s <= start_s or chosen == [] or listed == []:
            return []
        where, params = filters((("cluster", cluster),))
        if chosen is not None:
            values = ", ".join("(?, ?, ?)" for _ in chosen)
            where += f" AND (namespace, user_name, workload) IN (VALUES {values})"
            params += [v for key in chosen for v in key]
        if listed is not None:
            where += _in("uuid", listed)
            params += listed
        with gc_paused():
            rows = self._read(
                f"SELECT {_WORKLOAD_COLUMNS} FROM workload_1h WHERE hour > ? AND hour < ?"
                f"{where} ORDER BY {_WORKLOAD_ORDER}",
                (start_s - HOUR_S, end_s, *params),
            )
            return [_workload_usage(r) for r in rows]
