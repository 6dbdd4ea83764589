"""The read half of the SQL store: series, usage and inventory (the records it keeps beside
them, alerts, executions and chat sessions, are read by :mod:`~gpufleet.store.record_queries`).

A table keyed time first (raw, 1-minute) is read with one range scan of the window and its
rows grouped per subject here; a table keyed per subject (1-hour) is read with one range
scan per subject from the inventory. Subjects come out in inventory order (cluster, node,
GPU index), points in time order.

Windows are half-open, ``[start, end)``: a raw row is in when ``start <= ts < end``, a bucket
of width ``w`` (1m, 1h, workload hours) when it overlaps, ``start - w < bucket < end``. So
two adjacent windows split their union's samples exactly, and its buckets too when the
split falls on a bucket edge. An empty window (``end <= start``) has nothing in it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from itertools import starmap

from gpufleet.store._gc import gc_paused
from gpufleet.store.base import (
    GPU_METRICS,
    MAX_RAW_POINTS,
    GpuInventory,
    GpuUsage,
    QueryTooLargeError,
    Resolution,
    Retention,
    Series,
    SeriesPoint,
    StoreError,
    WorkloadUsage,
    pick_resolution,
)
from gpufleet.store.record_queries import RecordReads, Row, filters
from gpufleet.store.schema import HIST_COLUMNS, SYSTEM_STORED_METRICS, TABLES_BY_NAME
from gpufleet.store.schema_model import Dialect, Table

# GpuUsage's fields after the key, in order, so rows map on positionally (see _gpu_usage).
_GPU_USAGE_SELECT = (
    "bucket, seconds, allocated_s, idle_s, idle_allocated_s, util_gpu_pct_sum, "
    f"{', '.join(HIST_COLUMNS)}, util_gpu_pct_max, CAST(mem_used_bytes_max AS BIGINT), "
    "CAST(mem_total_bytes_max AS BIGINT), throttled_s, n"
)
# The same columns folded over a GPU's buckets: sums of the additive ones, maxima of the rest.
_GPU_USAGE_SUMS = (
    "MIN(bucket), SUM(seconds), SUM(allocated_s), SUM(idle_s), SUM(idle_allocated_s), "
    "SUM(util_gpu_pct_sum), "
    f"{', '.join(f'SUM({h})' for h in HIST_COLUMNS)}, MAX(util_gpu_pct_max), "
    "CAST(MAX(mem_used_bytes_max) AS BIGINT), CAST(MAX(mem_total_bytes_max) AS BIGINT), "
    "SUM(throttled_s), SUM(n)"
)
_HIST_END = 6 + len(HIST_COLUMNS)


def _gpu_usage(key: Row, r: Row) -> GpuUsage:
    """A GpuUsage from its key and a row of ``_GPU_USAGE_SELECT`` (or its sums)."""
    h = _HIST_END
    c, n, u = key
    return GpuUsage(
        c,
        n,
        u,
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6:h],
        r[h],
        r[h + 1],
        r[h + 2],
        r[h + 3],
        int(r[h + 4]),
    )


def _workload_usage(r: Row) -> WorkloadUsage:
    """A WorkloadUsage from a row in its field order (positional: cheaper than keywords)."""
    mem_peak = r[12]
    return WorkloadUsage(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        r[7],
        r[8],
        r[9],
        r[10],
        r[11],
        None if mem_peak is None else int(mem_peak),
        r[13],
        int(r[14]),
    )


def resolution_of(resolution: Resolution | str) -> Resolution:
    """``resolution`` as the enum, or a StoreError naming the valid values."""
    try:
        return Resolution(resolution)
    except ValueError:
        known = ", ".join(r.value for r in Resolution)
        raise StoreError(f"unknown resolution {resolution!r}: use one of {known}") from None


def _duration(seconds: float) -> str:
    """``seconds`` in the largest unit that keeps it readable: ``7 days``, ``36 hours``..."""
    for unit, width in (("days", 86_400.0), ("hours", 3_600.0), ("minutes", 60.0)):
        if seconds >= 2 * width:
            return f"{seconds / width:.3g} {unit}"
    return f"{seconds:.3g} seconds"


def _group(rows: Sequence[Row], key_len: int) -> dict[Row, list[Row]]:
    """Rows grouped by their first ``key_len`` columns, each group keeping row order."""
    groups: dict[Row, list[Row]] = {}
    for r in rows:
        key = r[:key_len]
        group = groups.get(key)
        if group is None:
            groups[key] = [r]
        else:
            group.append(r)
    return groups


class SqlReads(RecordReads):
    """Queries shared by the SQL backends; a backend supplies :meth:`_read`."""

    retention: Retention
    _clock: Callable[[], float]
    max_raw_points: int = MAX_RAW_POINTS
    """Most raw points a series may return (see :meth:`_check_raw_size`)."""

    def _resolve(self, resolution: Resolution | str, start_s: float, end_s: float) -> Resolution:
        res = resolution_of(resolution)
        if res is Resolution.AUTO:
            return pick_resolution(start_s, end_s, self._clock(), self.retention)
        return res

    def _gpu_order(self) -> dict[Row, int]:
        """Inventory position of every GPU, to return subjects in (cluster, node, index) order."""
        rows = self._read(
            "SELECT cluster, node, uuid FROM gpus ORDER BY cluster, node, gpu_index, uuid"
        )
        return {r: i for i, r in enumerate(rows)}

    def _subjects(
        self, gpu: bool, pairs: Sequence[tuple[str, str | None]], lo: float, hi: float
    ) -> list[Row]:
        """Inventory keys matching the filters and seen in ``[lo, hi]``, in inventory order."""
        where, params = filters(pairs)
        keys = ", ".join(col for col, _ in pairs)
        order = "cluster, node, gpu_index, uuid" if gpu else "cluster, node"
        return self._read(
            f"SELECT {keys} FROM {'gpus' if gpu else 'nodes'} "
            f"WHERE last_seen >= ? AND first_seen <= ?{where} ORDER BY {order}",
            (lo, hi, *params),
        )

    def _by_subject(
        self,
        table: Table,
        select: str,
        pairs: Sequence[tuple[str, str | None]],
        window: tuple[float, float, float],
        extra: str = "",
    ) -> list[tuple[Row, list[Row]]]:
        """Rows of ``table`` in ``window``, per subject (inventory order), key removed.

        ``window`` is (start, end, bucket width), half-open: raw rows (width 0) count when
        ``start <= ts < end``; a rollup bucket when ``[bucket, bucket + width)`` overlaps
        ``[start, end)``, i.e. ``start - width < bucket < end``.
        """
        start, hi, width = window
        if hi <= start:
            return []
        gpu = "uuid" in table.column_names
        if width:
            tcol, lo, cond = "bucket", start - width, "bucket > ? AND bucket < ?"
        else:
            tcol, lo, cond = "ts", start, "ts >= ? AND ts < ?"
        cond += extra
        if table.keyed_by_subject:
            # One range scan of the key per subject, rows already in the caller's shape.
            key_where = " AND ".join(f"{col} = ?" for col, _ in pairs)
            sql = f"SELECT {select} FROM {table.name} WHERE {key_where} AND {cond} ORDER BY {tcol}"
            out: list[tuple[Row, list[Row]]] = []
            for key in self._subjects(gpu, pairs, lo, hi + width):
                rows = self._read(sql, (*key, lo, hi))
                if rows:
                    out.append((key, rows))
            return out
        # Keyed time first: one range scan of the window, grouped here.
        key_len = len(pairs)
        where, params = filters(pairs)
        rows = self._read(
            f"SELECT {', '.join(col for col, _ in pairs)}, {select} FROM {table.name} "
            f"WHERE {cond}{where} ORDER BY {tcol}",
            (lo, hi, *params),
        )
        groups = _group(rows, key_len)
        if gpu:
            order = self._gpu_order()
            ordered = sorted(groups.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        else:
            ordered = sorted(groups.items())
        return [(key, [r[key_len:] for r in group]) for key, group in ordered]

    def _series(
        self,
        *,
        kind: str,
        metric: str,
        start_s: float,
        end_s: float,
        resolution: Resolution | str,
        pairs: Sequence[tuple[str, str | None]],
    ) -> list[Series]:
        asked = resolution_of(resolution)
        res = self._resolve(asked, start_s, end_s)
        with gc_paused():  # tens of thousands of points: see gc_paused
            try:
                if res is Resolution.RAW:
                    self._check_raw_size(kind, start_s, end_s, pairs)
                return self._series_at(kind, metric, start_s, end_s, res, pairs)
            except QueryTooLargeError:
                if asked is not Resolution.AUTO:
                    raise
                # AUTO assumed sparser sampling than the data has: 1m answers instead.
                return self._series_at(kind, metric, start_s, end_s, Resolution.MINUTE, pairs)

    def _check_raw_size(
        self, kind: str, start_s: float, end_s: float, pairs: Sequence[tuple[str, str | None]]
    ) -> None:
        """Refuse a raw read whose series would exceed :attr:`max_raw_points` points each.

        Estimated before reading, from the rows at both ends of the window: the time they
        span divided by the shortest sampling interval (``dt_s``) among them. Two index
        range scans of a few rows each, whatever the window.

        Raises:
            QueryTooLargeError: the estimate is over the cap.
        """
        if end_s <= start_s:
            return
        where, params = filters(pairs)
        lost = " AND lost = 0" if kind == "gpu" else ""
        probe = (
            f"SELECT ts, dt_s FROM {kind}_raw WHERE ts >= ? AND ts < ?{lost}{where} "
            "ORDER BY ts {order} LIMIT 64"
        )
        first = self._read(probe.format(order="ASC"), (start_s, end_s, *params))
        if not first:
            return
        last = self._read(probe.format(order="DESC"), (start_s, end_s, *params))
        intervals = [dt for _, dt in (*first, *last) if dt is not None and dt > 0]
        if not intervals:
            return
        interval = min(intervals)
        covered = last[0][0] - first[0][0] + interval
        estimate = covered / interval
        if estimate > self.max_raw_points:
            raise self._too_large(kind, min(covered, end_s - start_s), estimate)

    def _too_large(self, kind: str, span_s: float, points: float) -> QueryTooLargeError:
        subject = "GPU" if kind == "gpu" else "host"
        return QueryTooLargeError(
            f"raw resolution over {_duration(span_s)} would return ~{points:,.0f} points per "
            f"{subject}, more than the {self.max_raw_points:,} allowed: use resolution 1m or "
            "1h, or a shorter window"
        )

    def _series_at(
        self,
        kind: str,
        metric: str,
        start_s: float,
        end_s: float,
        res: Resolution,
        pairs: Sequence[tuple[str, str | None]],
    ) -> list[Series]:
        gpu = kind == "gpu"
        if res is Resolution.RAW:
            lost = " AND lost = 0" if gpu else ""
            found = self._by_subject(
                TABLES_BY_NAME[f"{kind}_raw"], f"ts, {metric}", pairs, (start_s, end_s, 0.0), lost
            )
        else:
            mean = f"CASE WHEN {metric}_wt > 0 THEN {metric}_sum / {metric}_wt END"
            found = self._by_subject(
                TABLES_BY_NAME[f"{kind}_{res.value}"],
                f"bucket, {mean}, {metric}_min, {metric}_max, n",
                pairs,
                (start_s, end_s, res.bucket_s),
            )
        out: list[Series] = []
        if res is Resolution.RAW:
            longest = max((len(rows) for _, rows in found), default=0)
            if longest > self.max_raw_points:  # sampled faster than the probe saw
                raise self._too_large(kind, end_s - start_s, longest)
        for key, rows in found:
            if res is Resolution.RAW:
                points = [SeriesPoint(ts, v, v, v, 1) for ts, v in rows]
            else:
                points = list(starmap(SeriesPoint, rows))
            subject = key[2] if gpu else "host"
            out.append(Series(key[0], key[1], subject, metric, res, points))
        return out

    def gpu_series(
        self,
        *,
        metric: str,
        start_s: float,
        end_s: float,
        resolution: Resolution,
        cluster: str | None = None,
        node: str | None = None,
        uuid: str | None = None,
    ) -> list[Series]:
        """One series per GPU with data in ``[start_s, end_s)``, points ordered by time.

        Raw points are samples with ``start_s <= ts < end_s`` (min = max = mean, count 1;
        lost samples are skipped). Rollup points are buckets overlapping the window: mean is
        time-weighted (sum / wt; None when no sample of the bucket had the reading), count is
        the bucket's sample count. ``Resolution.AUTO`` picks the finest resolution still
        retained for the window that gives ~2000 points at most (see ``pick_resolution``),
        and 1m rather than raw when the samples turn out denser than it assumed.

        Raises:
            StoreError: unknown metric or resolution.
            QueryTooLargeError: raw resolution asked for a window that would return more
                than :attr:`max_raw_points` points per GPU.
        """
        if metric not in GPU_METRICS:
            raise StoreError(f"unknown GPU metric {metric!r}: use one of {', '.join(GPU_METRICS)}")
        return self._series(
            kind="gpu",
            metric=metric,
            start_s=start_s,
            end_s=end_s,
            resolution=resolution,
            pairs=(("cluster", cluster), ("node", node), ("uuid", uuid)),
        )

    def system_series(
        self,
        *,
        metric: str,
        start_s: float,
        end_s: float,
        resolution: Resolution,
        cluster: str | None = None,
        node: str | None = None,
    ) -> list[Series]:
        """One series per node (subject ``host``); same point rules as :meth:`gpu_series`.

        Besides SYSTEM_METRICS, ``disk_max_used_pct`` (the fullest filesystem) is kept.

        Raises:
            StoreError: unknown metric or resolution.
            QueryTooLargeError: as :meth:`gpu_series`, per host.
        """
        if metric not in SYSTEM_STORED_METRICS:
            known = ", ".join(SYSTEM_STORED_METRICS)
            raise StoreError(f"unknown system metric {metric!r}: use one of {known}")
        return self._series(
            kind="system",
            metric=metric,
            start_s=start_s,
            end_s=end_s,
            resolution=resolution,
            pairs=(("cluster", cluster), ("node", node)),
        )

    def inventory(self, cluster: str | None = None) -> list[GpuInventory]:
        """Every GPU seen (lost ones included), ordered by cluster, node, index."""
        where, params = filters((("cluster", cluster),))
        rows = self._read(
            "SELECT cluster, node, uuid, gpu_index, name, mem_total_bytes, first_seen, last_seen "
            f"FROM gpus WHERE 1 = 1{where} ORDER BY cluster, node, gpu_index, uuid",
            params,
        )
        return [
            GpuInventory(c, n, u, int(i), name, None if mem is None else int(mem), first, last)
            for c, n, u, i, name, mem, first, last in rows
        ]

    def gpu_usage(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution = Resolution.HOUR,
        cluster: str | None = None,
        node: str | None = None,
    ) -> list[GpuUsage]:
        """Per-GPU time accounting per bucket overlapping ``[start_s, end_s)``, from rollups.

        Rows come per GPU (inventory order), buckets in time order. ``Resolution.AUTO`` picks
        1m when it is retained and the window is short, else 1h.

        Raises:
            StoreError: ``Resolution.RAW`` was asked for (usage exists only as rollups).
        """
        asked = resolution_of(resolution)
        if asked is Resolution.RAW:
            raise StoreError("GPU usage is kept as rollups: ask for resolution 1m or 1h")
        res = self._resolve(asked, start_s, end_s)
        if res is Resolution.RAW:
            res = Resolution.MINUTE
        pairs = (("cluster", cluster), ("node", node), ("uuid", None))
        with gc_paused():  # one object per GPU and bucket: see gc_paused
            found = self._by_subject(
                TABLES_BY_NAME[f"gpu_{res.value}"],
                _GPU_USAGE_SELECT,
                pairs,
                (start_s, end_s, res.bucket_s),
            )
            return [_gpu_usage(key, r) for key, rows in found for r in rows]

    def gpu_usage_totals(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution = Resolution.HOUR,
        cluster: str | None = None,
        node: str | None = None,
        per_s: float | None = None,
        offset_s: float = 0.0,
        per_gpu: bool = True,
    ) -> list[GpuUsage]:
        """:meth:`gpu_usage` with each GPU's buckets wholly inside the window summed in SQL.

        One row per GPU for the buckets inside ``[start_s, end_s)`` (its ``bucket_s`` is the
        first of them), plus the rows of the buckets crossing either edge as they are. With
        ``per_s`` (a multiple of the bucket width), one row per GPU and period
        ``[offset_s + k * per_s, offset_s + (k + 1) * per_s)`` instead: an hour, a day or a
        week of a series. Without ``per_gpu`` the inner rows are summed over every GPU the
        filters select too, and carry empty ``cluster``, ``node`` and ``uuid`` (the edge rows
        stay per GPU). Sums, maxima and sample counts equal those of :meth:`gpu_usage`'s rows;
        detail inside a row (stretches of idle hours) is gone. Rows come per GPU in inventory
        order (summed rows first), then in time order.

        Raises:
            StoreError: as :meth:`gpu_usage`, or a ``per_s`` that is no multiple of the bucket.
        """
        asked = resolution_of(resolution)
        if asked is Resolution.RAW:
            raise StoreError("GPU usage is kept as rollups: ask for resolution 1m or 1h")
        res = self._resolve(asked, start_s, end_s)
        if res is Resolution.RAW:
            res = Resolution.MINUTE
        width = res.bucket_s
        if per_s is not None and (per_s <= 0 or per_s % width):
            raise StoreError(f"per_s must be a positive multiple of {width:.0f} s; got {per_s}")
        inner_lo = -(-start_s // width) * width
        inner_hi = end_s // width * width

        def usage(lo: float, hi: float) -> list[GpuUsage]:
            return self.gpu_usage(start_s=lo, end_s=hi, resolution=res, cluster=cluster, node=node)

        if inner_hi <= inner_lo or (per_gpu and per_s == width):
            return usage(start_s, end_s)  # nothing to fold
        # The period of a bucket, as an integer computed alike on both backends, counted
        # from the last period start at or before the first bucket (so never negative).
        # SQLite's CAST truncates, which is FLOOR there; PostgreSQL's CAST rounds, and
        # SQLite has FLOOR only when built with its math functions.
        sqlite = getattr(self, "dialect", None) is Dialect.SQLITE
        period = ""
        if per_s is not None:
            first = offset_s + (inner_lo - offset_s) // per_s * per_s
            since = f"(bucket - {float(first)!r}) / {float(per_s)!r}"
            period = f"CAST({since} AS INTEGER)" if sqlite else f"FLOOR({since})"
        table = TABLES_BY_NAME[f"gpu_{res.value}"]
        pairs = (("cluster", cluster), ("node", node))
        window = (inner_lo, inner_hi)
        out: list[GpuUsage] = []
        if per_gpu and table.keyed_by_subject and sqlite:
            # SQLite: one range scan of the key per GPU; the bucket index would visit the
            # wide rows out of key order (three times slower). PostgreSQL plans one grouped
            # query better than a round trip per GPU.
            by = f" GROUP BY {period}" if period else ""
            sql = (
                f"SELECT {_GPU_USAGE_SUMS} FROM {table.name} "
                f"WHERE cluster = ? AND node = ? AND uuid = ? AND bucket >= ? AND bucket < ?{by}"
            )
            for key in self._subjects(True, (*pairs, ("uuid", None)), inner_lo - width, inner_hi):
                rows = self._read(sql, (*key, *window))
                # An aggregate over no rows is one row of NULLs.
                out.extend(_gpu_usage(key, r) for r in rows if r[0] is not None)
        else:
            where, params = filters(pairs)
            keys = ["cluster", "node", "uuid"] if per_gpu else ["''", "''", "''"]
            by = ", ".join([*keys[: 3 if per_gpu else 0], *([period] if period else [])])
            # ``+bucket`` (no index) on an SQLite table keyed per GPU: a scan in key order
            # beats the bucket index there; a table keyed time first is read by its key.
            col = "+bucket" if table.keyed_by_subject and sqlite else "bucket"
            sql = (
                f"SELECT {', '.join(keys)}, {_GPU_USAGE_SUMS} FROM {table.name} "
                f"WHERE {col} >= ? AND {col} < ?{where}{f' GROUP BY {by}' if by else ''}"
            )
            rows = self._read(sql, (*window, *params))
            out.extend(_gpu_usage((r[0], r[1], r[2]), r[3:]) for r in rows if r[3] is not None)
        order = self._gpu_order()
        out.extend(usage(start_s, inner_lo))
        out.extend(usage(inner_hi, end_s))
        last = len(order)
        out.sort(
            key=lambda u: (
                order.get((u.cluster, u.node, u.uuid), -1 if not u.uuid else last),
                u.uuid,
                u.bucket_s,
            )
        )
        return out

    def workload_usage(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        namespace: str | None = None,
        user: str | None = None,
    ) -> list[WorkloadUsage]:
        """Per-workload, per-GPU, per-hour rows for hours overlapping ``[start_s, end_s)``."""
        if end_s <= start_s:
            return []
        where, params = filters(
            (("cluster", cluster), ("namespace", namespace), ("user_name", user))
        )
        rows = self._read(
            "SELECT cluster, node, uuid, hour, namespace, user_name, workload, workload_kind, "
            "gpu_s, busy_gpu_s, util_sum, mem_bytes_s, mem_peak_bytes, util_peak_pct, samples "
            f"FROM workload_1h WHERE hour > ? AND hour < ?{where} "
            "ORDER BY hour, cluster, node, uuid, namespace, user_name, workload",
            (start_s - 3600.0, end_s, *params),
        )
        return [_workload_usage(r) for r in rows]

    def gpu_memory_use(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution,
        uuids: Collection[str],
    ) -> tuple[float | None, float | None]:
        """(mean, p95) memory use % of ``uuids``, computed in SQL (see :class:`Store`).

        One query: each overlapping bucket's mean over the GPU's total memory, weighted by
        readings x overlap; the weighted p95 by a running sum in value order.
        """
        res = self._resolve(resolution_of(resolution), start_s, end_s)
        if res is Resolution.RAW:
            res = Resolution.MINUTE
        wanted = sorted(set(uuids))
        if end_s <= start_s or not wanted:
            return None, None
        w = float(res.bucket_s)
        sqlite = getattr(self, "dialect", None) is Dialect.SQLITE
        least, greatest = ("MIN", "MAX") if sqlite else ("LEAST", "GREATEST")
        # SQLite takes CROSS JOIN's order as given: a table keyed per GPU is read one key range
        # per inventory GPU; a table keyed time first by its bucket range, then the inventory.
        table = TABLES_BY_NAME[f"gpu_{res.value}"]
        if not sqlite:
            source = f"gpus g JOIN {table.name} r"
        elif table.keyed_by_subject:
            source = f"gpus g CROSS JOIN {table.name} r"
        else:
            source = f"{table.name} r CROSS JOIN gpus g"
        marks = ", ".join("?" for _ in wanted)
        sql = (
            "WITH b AS (SELECT 100.0 * (r.mem_used_bytes_sum / r.mem_used_bytes_wt) "
            f"/ g.mem_total_bytes AS v, r.n * ({least}(?, r.bucket + {w!r}) - "
            f"{greatest}(?, r.bucket)) / {w!r} AS w "
            f"FROM {source} "
            f"{'WHERE' if sqlite else 'ON'} r.cluster = g.cluster AND r.node = g.node "
            f"AND r.uuid = g.uuid {'AND' if sqlite else 'WHERE'} r.bucket > ? AND r.bucket < ? "
            f"AND g.uuid IN ({marks}) AND r.mem_used_bytes_wt > 0 AND g.mem_total_bytes > 0) "
            "SELECT (SELECT SUM(v * w) / SUM(w) FROM b WHERE w > 0), "
            "(SELECT v FROM (SELECT v, SUM(w) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) AS cum "
            "FROM b WHERE w > 0) c WHERE cum >= 0.95 * (SELECT SUM(w) FROM b WHERE w > 0) "
            "ORDER BY v LIMIT 1)"
        )
        rows = self._read(sql, (end_s, start_s, start_s - w, end_s, *wanted))
        mean, p95 = rows[0] if rows else (None, None)
        return (
            None if mean is None else float(mean),
            None if p95 is None else float(p95),
        )

    def workload_usage_totals(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        namespace: str | None = None,
        user: str | None = None,
    ) -> list[WorkloadUsage]:
        """:meth:`workload_usage` with each workload's hours on a GPU summed in SQL.

        One row per workload and GPU for the hours wholly inside ``[start_s, end_s)`` (its
        ``hour_s`` is the first of them), plus the rows of the hours crossing either edge as
        they are: the same sums and peaks from far fewer rows, for callers that only add rows
        up per workload or per group.
        """
        hour = Resolution.HOUR.bucket_s
        inner_lo = -(-start_s // hour) * hour
        inner_hi = end_s // hour * hour

        def usage(lo: float, hi: float) -> list[WorkloadUsage]:
            return self.workload_usage(
                start_s=lo, end_s=hi, cluster=cluster, namespace=namespace, user=user
            )

        if inner_hi <= inner_lo:
            return usage(start_s, end_s)
        where, params = filters(
            (("cluster", cluster), ("namespace", namespace), ("user_name", user))
        )
        keys = "cluster, node, uuid, namespace, user_name, workload, workload_kind"
        rows = self._read(
            "SELECT cluster, node, uuid, MIN(hour), namespace, user_name, workload, "
            "workload_kind, SUM(gpu_s), SUM(busy_gpu_s), SUM(util_sum), SUM(mem_bytes_s), "
            "MAX(mem_peak_bytes), MAX(util_peak_pct), SUM(samples) "
            f"FROM workload_1h WHERE hour >= ? AND hour < ?{where} GROUP BY {keys}",
            (inner_lo, inner_hi, *params),
        )
        out = [_workload_usage(r) for r in rows]
        out.extend(usage(start_s, inner_lo))
        out.extend(usage(inner_hi, end_s))
        return out
