"""The Store protocol and the records it returns.

Two backends implement it: SQLite (embedded default, WAL) and PostgreSQL (psycopg 3). Both
keep raw samples plus 1-minute and 1-hour rollups. A rollup keeps count/sum/min/max per
metric so that means stay exact when buckets are merged; sums are time-weighted
(value x seconds) because DESIGN.md defines utilization as time-weighted over the window.

Time windows are half-open, ``[start_s, end_s)``, so adjacent windows never count anything
twice: a raw sample belongs to a window when ``start_s <= ts < end_s``; a rollup bucket
(1m, 1h, workload hours) when it overlaps the window, ``bucket < end_s`` and
``bucket + width > start_s``. A window with ``end_s <= start_s`` is empty.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gpufleet.model import Alert, ChatSession, ChatTurn, Execution, Snapshot

DAY_S = 86_400.0

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
"""GPU readings kept in history (raw and rolled up)."""

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
"""Host readings kept in history (raw and rolled up); network and disk summed over devices."""

UTIL_HIST_BINS = 20
"""GPU utilization histogram per rollup bucket: 20 bins of 5 % (seconds in each bin).

Lets analysis compute percentiles and idle time over long ranges from hourly rollups alone.
The last bin is closed: 100 % falls into bin 19.
"""

DEFAULT_IDLE_THRESHOLD_PCT = 5.0


class Resolution(enum.StrEnum):
    """Granularity of a stored series."""

    RAW = "raw"
    MINUTE = "1m"
    HOUR = "1h"
    AUTO = "auto"

    @property
    def bucket_s(self) -> float:
        """Bucket width in seconds (0 for raw)."""
        return {"raw": 0.0, "1m": 60.0, "1h": 3600.0, "auto": 0.0}[self.value]


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each resolution is kept, in seconds."""

    raw_s: float = 7 * DAY_S
    minute_s: float = 90 * DAY_S
    hour_s: float = 730 * DAY_S

    def for_resolution(self, resolution: Resolution) -> float:
        """Seconds kept for ``resolution``."""
        return {
            Resolution.RAW: self.raw_s,
            Resolution.MINUTE: self.minute_s,
            Resolution.HOUR: self.hour_s,
        }[resolution]


TARGET_POINTS = 2_000
"""Points per series that ``Resolution.AUTO`` aims at (at most)."""

DEFAULT_RAW_INTERVAL_S = 2.0
"""Sampling interval assumed by :func:`pick_resolution` when the caller does not know it."""

MAX_RAW_POINTS = 50_000
"""Most raw points one series may return; a larger raw request is a :class:`QueryTooLargeError`."""


def pick_resolution(
    start_s: float,
    end_s: float,
    now_s: float,
    retention: Retention,
    raw_interval_s: float = DEFAULT_RAW_INTERVAL_S,
) -> Resolution:
    """Choose the finest resolution that covers ``[start_s, end_s)`` with at most ~2000 points.

    A series has about ``span / raw_interval_s`` raw points, ``span / 60`` at 1m and
    ``span / 3600`` at 1h; the finest resolution within :data:`TARGET_POINTS` wins (at 2 s
    sampling: raw up to ~67 minutes, 1m up to ~33 hours, 1h beyond). A resolution is eligible
    only if its retention still reaches back to ``start_s``. 1h is the fallback however long
    the span.
    """
    span = max(end_s - start_s, 0.0)
    interval = raw_interval_s if raw_interval_s > 0 else DEFAULT_RAW_INTERVAL_S
    for res, step in ((Resolution.RAW, interval), (Resolution.MINUTE, 60.0)):
        if span / step <= TARGET_POINTS and now_s - start_s <= retention.for_resolution(res):
            return res
    return Resolution.HOUR


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One point of a series: a raw sample (count 1) or a rollup bucket."""

    ts_s: float
    mean: float | None
    min: float | None
    max: float | None
    count: int


@dataclass(frozen=True, slots=True)
class Series:
    """A metric over time for one subject (a GPU UUID, or ``host``) of one node."""

    cluster: str
    node: str
    subject: str
    metric: str
    resolution: Resolution
    points: list[SeriesPoint] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GpuInventory:
    """A GPU the store has seen, with its static facts."""

    cluster: str
    node: str
    uuid: str
    index: int
    name: str | None
    mem_total_bytes: int | None
    first_seen_s: float
    last_seen_s: float


@dataclass(frozen=True, slots=True)
class GpuUsage:
    """Rolled-up time accounting of one GPU over one bucket (for waste and allocation)."""

    cluster: str
    node: str
    uuid: str
    bucket_s: float
    seconds: float
    allocated_s: float
    idle_s: float
    idle_allocated_s: float
    util_sum: float
    """Sum of utilization x seconds (time-weighted)."""
    util_hist_s: tuple[float, ...]
    """Seconds spent in each of UTIL_HIST_BINS utilization bins."""
    util_max_pct: float | None
    mem_used_max_bytes: int | None
    mem_total_bytes: int | None
    throttled_s: float
    samples: int = 0
    """Readings behind the row (the rollup's sample count)."""


@dataclass(frozen=True, slots=True)
class WorkloadUsage:
    """GPU-time used by one workload on one GPU during one hour."""

    cluster: str
    node: str
    uuid: str
    hour_s: float
    namespace: str
    user: str
    workload: str
    workload_kind: str | None
    gpu_s: float
    """GPU-seconds held; shared equally when several workloads hold one GPU."""
    busy_gpu_s: float
    """Of ``gpu_s``, seconds when the GPU was at or above the idle threshold."""
    util_sum: float
    """Sum of GPU utilization x seconds over the held time."""
    mem_bytes_s: float
    """Sum of the workload's used memory x seconds."""
    mem_peak_bytes: int | None
    util_peak_pct: float | None
    samples: int


@dataclass(frozen=True, slots=True)
class GpuUsageSums:
    """:class:`GpuUsage` rows added up over a window, each bucket weighted by its share inside
    the window (``UsageSumReads.gpu_usage_sums``): one GPU's buckets, or one bucket's GPUs.

    Sums are added in the store's own order, so they may differ from a sum of the rows in
    another order in the last bits; counts and maxima are exact.
    """

    cluster: str
    """Empty when summed over GPUs (per bucket)."""
    node: str
    uuid: str
    bucket_s: float | None
    """The bucket (per bucket); None for a GPU's whole window."""
    rows: int
    """Rows behind the sums: a GPU's buckets, or a bucket's GPUs."""
    seconds: float
    allocated_s: float
    util_sum: float
    util_hist_s: tuple[float, ...]
    """Seconds in each utilization bin; empty unless asked for (reading it costs most)."""
    mem_used_max_bytes: int | None
    mem_total_max_bytes: int | None


@dataclass(frozen=True, slots=True)
class WorkloadUsageSums:
    """One workload's :class:`WorkloadUsage` rows on one GPU added up over a window, each hour
    weighted by its share inside the window (``UsageSumReads.workload_usage_sums``).

    Sums are added in the store's own order (see :class:`GpuUsageSums`); counts, hours and
    maxima are exact.
    """

    namespace: str
    user: str
    workload: str
    uuid: str
    hours: int
    """Distinct hours with a row."""
    first_hour_s: float
    last_hour_s: float
    gpu_s: float
    busy_gpu_s: float
    idle_gpu_s: float
    """Sum over the hours of ``gpu_s - busy_gpu_s`` where positive (the waste report's idle
    GPU-seconds)."""
    mem_peak_bytes: int | None
    workload_kind_min: str | None
    """First of the workload's non-empty kinds in sort order (None without any)."""
    workload_kind_max: str | None
    """Last of them: equal to the first when the workload had one kind."""


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """Whether the store accepts writes and answers reads, and why not."""

    writable: bool
    readable: bool
    error: str | None = None
    backend: str = ""
    location: str = ""


class StoreError(Exception):
    """The store could not do what was asked; the message says why in plain words."""


class ChatTurnConflictError(StoreError):
    """A chat session already has a turn with that number: another question in the same
    session was answered meanwhile (reload the session and ask again)."""


class StoreUnavailable(StoreError):  # noqa: N818 (reads as a state, like TimeoutError's peers)
    """The store cannot answer at all (disk full, read-only, database down)."""


class QueryTooLargeError(StoreError):
    """The request would return more than the store answers at once (a 422, not a 503).

    Raised before the rows are read; the message names the size and what to ask instead
    (a coarser resolution or a shorter window).
    """


@runtime_checkable
class Store(Protocol):
    """Durable history of snapshots, alerts and usage."""

    backend: str
    retention: Retention

    def write_snapshots(self, snapshots: Sequence[Snapshot], *, keep_raw: bool = True) -> None:
        """Write a batch atomically: raw rows, rollups, workload usage, GPU inventory.

        ``keep_raw=False`` skips raw rows (a backfill older than raw retention).

        Raises:
            StoreUnavailable: the disk is full or read-only, or the database is down.
        """
        ...

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
        """One series per GPU matching the filters, points ordered by time.

        Raises:
            QueryTooLargeError: raw points asked for a window that would return more than
                :data:`MAX_RAW_POINTS` per series.
        """
        ...

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
        """One series per node matching the filters, points ordered by time.

        Raises:
            QueryTooLargeError: as :meth:`gpu_series`.
        """
        ...

    def inventory(self, cluster: str | None = None) -> list[GpuInventory]:
        """Every GPU seen, ordered by cluster, node, index."""
        ...

    def gpu_usage(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution = Resolution.HOUR,
        cluster: str | None = None,
        node: str | None = None,
    ) -> list[GpuUsage]:
        """Per-GPU time accounting per bucket (1m or 1h) overlapping the window."""
        ...

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
        """:meth:`gpu_usage` with each GPU's buckets wholly inside the window summed into one row
        (or one per period of ``per_s`` from ``offset_s``; without ``per_gpu``, over all the
        GPUs selected, with empty ``cluster``, ``node`` and ``uuid``).

        The (at most two) buckets crossing the window's edges stay separate rows, so a caller
        prorating by overlap gets the same sums as from :meth:`gpu_usage`.
        """
        ...

    def workload_usage(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        namespace: str | None = None,
        user: str | None = None,
    ) -> list[WorkloadUsage]:
        """Per-workload, per-GPU, per-hour usage rows of the hours overlapping the window."""
        ...

    def gpu_memory_use(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution,
        uuids: Collection[str],
    ) -> tuple[float | None, float | None]:
        """(mean, p95) memory use % of ``uuids`` over the buckets overlapping the window.

        Each bucket's mean used memory over its GPU's total (inventory), weighted by its
        readings times the share of it inside the window; the p95 is over those bucket
        means. (None, None) without readings.
        """
        ...

    def workload_usage_totals(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        namespace: str | None = None,
        user: str | None = None,
    ) -> list[WorkloadUsage]:
        """:meth:`workload_usage` with each workload's hours on a GPU wholly inside the window
        summed into one row (the hours crossing its edges stay separate rows)."""
        ...

    def save_alert(self, alert: Alert) -> Alert:
        """Insert (``id`` None) or update an alert; returns it with its ``id``."""
        ...

    def alerts(
        self,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        active_only: bool = False,
        limit: int = 500,
        node: str | None = None,
        cluster: str | None = None,
    ) -> list[Alert]:
        """Alerts active at some time in ``[start_s, end_s)`` (or fired in it), newest first.

        An alert is active from ``fired`` until ``resolved`` (still active when unresolved).
        ``node`` / ``cluster`` keep only that node's / cluster's alerts.
        """
        ...

    def save_chat_turn(self, turn: ChatTurn) -> ChatTurn:
        """Append a turn to its session (``seq`` one past the session's last).

        Raises:
            ChatTurnConflictError: a turn with this ``session_id`` and ``seq`` exists.
        """
        ...

    def chat_turns(self, session_id: str) -> list[ChatTurn]:
        """A session's turns in order (empty when there is no such session)."""
        ...

    def chat_sessions(self, *, limit: int = 100) -> list[ChatSession]:
        """Sessions, most recently updated first."""
        ...

    def delete_chat_session(self, session_id: str) -> int:
        """Delete a session's turns; how many were deleted (0: no such session)."""
        ...

    def save_execution(self, execution: Execution) -> Execution:
        """Insert (``id`` None) or update an execution log entry; returns it with its ``id``."""
        ...

    def executions(
        self,
        *,
        limit: int = 100,
        recommendation_id: str | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> list[Execution]:
        """Execution log entries requested in ``[start_s, end_s)`` (either bound optional),
        newest first; ``recommendation_id`` keeps one recommendation's."""
        ...

    def apply_retention(self, now_s: float) -> dict[str, int]:
        """Delete what is older than the retention of each resolution; rows deleted per table."""
        ...

    def health(self) -> StoreHealth:
        """Current ability to read and write."""
        ...

    def close(self) -> None:
        """Flush and release the connection."""
        ...


@runtime_checkable
class UsageSumReads(Protocol):
    """Reads a store may offer beside :class:`Store`, for analyses that narrow down before
    they read rows: window sums per GPU, per bucket or per workload and GPU, added up where
    the rows are, then the rows of the few GPUs or workloads the sums single out.

    Both SQL backends offer them; a caller checks ``isinstance(store, UsageSumReads)`` and
    otherwise adds up :class:`Store`'s rows itself. Windows and overlaps are as in
    :class:`Store`: a bucket counts when it overlaps ``[start_s, end_s)``.
    """

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
        """The rows :meth:`Store.gpu_usage` would return (of ``uuids`` only, when given)
        summed per GPU (``by="gpu"``, inventory order) or per bucket over the GPUs
        (``by="bucket"``, time order), each bucket weighted by its overlap with the window;
        ``hist`` adds the utilization histogram.

        Raises:
            StoreError: as :meth:`Store.gpu_usage`, or an unknown ``by``.
        """
        ...

    def gpu_usage_of(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution = Resolution.HOUR,
        uuids: Collection[str],
    ) -> list[GpuUsage]:
        """:meth:`Store.gpu_usage`'s rows of ``uuids`` only, in the same order."""
        ...

    def workload_usage_sums(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        uuids: Collection[str] | None = None,
    ) -> list[WorkloadUsageSums]:
        """The rows :meth:`Store.workload_usage` would return (on ``uuids`` only, when given)
        summed per workload and GPU, each hour weighted by its overlap with the window."""
        ...

    def workload_usage_of(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        workloads: Collection[tuple[str, str, str]] | None = None,
        uuids: Collection[str] | None = None,
    ) -> list[WorkloadUsage]:
        """:meth:`Store.workload_usage`'s rows of the ``(namespace, user, workload)`` in
        ``workloads`` and on ``uuids`` (each when given), in the same order."""
        ...
