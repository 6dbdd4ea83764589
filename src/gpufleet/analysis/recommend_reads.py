"""What the recommendation rules read: window sums that single out the few GPUs and
workloads that could qualify, then the rows of those few.

A rule tests its thresholds on the sums first, with room for rounding (see
:func:`~gpufleet.analysis.recommend_common.could_reach`), and runs its exact test and
arithmetic on the rows of what passed, so its numbers come from the same rows, added in the
same order, as if it had read every row of the window. Two sources give the same sums and
rows:

* :class:`StoreGpuReads` and :class:`StoreWorkloadReads`: a store with
  :class:`~gpufleet.store.base.UsageSumReads` (both SQL backends) adds up in SQL and reads the
  rows of the chosen GPUs and workloads only;
* :class:`RowGpuReads` and :class:`RowWorkloadReads`: the rows ``read_scope`` read (any other
  store, and a workload-level scope's workload rows, which ``read_scope`` validates) are added
  up here.

Rows are prorated to the window and kept to the scope's GPUs as ``read_scope`` does, in the
order it returns them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Protocol

from gpufleet.analysis.scope import (
    Scope,
    ScopedRows,
    Window,
    prorate_gpu_rows,
    prorate_workload_rows,
    read_scope,
    resolution_for,
)
from gpufleet.store.base import (
    UTIL_HIST_BINS,
    GpuUsage,
    GpuUsageSums,
    Resolution,
    Store,
    UsageSumReads,
    WorkloadUsage,
    WorkloadUsageSums,
)

WorkloadId = tuple[str, str, str]
"""``(namespace, user, workload)`` of a workload."""


class GpuReads(Protocol):
    """Per-GPU sums and rows of the scope's GPUs in the window."""

    resolution: Resolution

    def sums(
        self, uuids: Collection[str] | None = None, *, hist: bool = False
    ) -> list[GpuUsageSums]:
        """Sums per GPU with rows (of ``uuids`` when given), in inventory order; ``hist``
        adds the utilization histogram."""
        ...

    def buckets(self, uuids: Collection[str]) -> list[GpuUsageSums]:
        """Sums per bucket over the rows of ``uuids``, in time order."""
        ...

    def rows(self, uuids: Collection[str]) -> list[GpuUsage]:
        """The prorated rows of ``uuids``, in ``read_scope``'s order."""
        ...


class WorkloadReads(Protocol):
    """Per-workload-and-GPU sums and rows of the scope's workload rows in the window."""

    def sums(self) -> list[WorkloadUsageSums]:
        """Sums per workload and GPU."""
        ...

    def rows(
        self,
        *,
        workloads: Collection[WorkloadId] | None = None,
        uuids: Collection[str] | None = None,
    ) -> list[WorkloadUsage]:
        """The prorated rows of ``workloads`` and on ``uuids`` (each when given), in
        ``read_scope``'s order."""
        ...


def open_reads(
    store: Store, window: Window, scope: Scope
) -> tuple[ScopedRows, GpuReads, WorkloadReads]:
    """Validate ``scope`` (as ``read_scope``) and open the reads the rules use.

    Returns the scope's rows as ``read_scope`` reads them (without GPU rows, and without
    workload rows unless the scope is workload-level, when the store adds up sums itself),
    and the GPU and workload reads.

    Raises:
        UnknownSubjectError, HistoryQueryError, StoreError: as ``read_scope``.
    """
    if not isinstance(store, UsageSumReads):
        # Every bucket prorated evenly, as the store's sums are: the two reads agree.
        scoped = read_scope(store, window, scope, need_workloads=True, exact_edges=False)
        return scoped, RowGpuReads(scoped), RowWorkloadReads(scoped)
    scoped = read_scope(
        store, window, scope, need_workloads=False, need_gpu_rows=False, exact_edges=False
    )
    gpus = StoreGpuReads(store, scoped)
    scoped = dataclasses.replace(scoped, resolution=gpus.resolution)
    if scope.workload_level:
        return scoped, gpus, RowWorkloadReads(scoped)
    return scoped, gpus, StoreWorkloadReads(store, scoped)


class StoreGpuReads:
    """:class:`GpuReads` from a store's ``UsageSumReads``."""

    def __init__(self, store: UsageSumReads, scoped: ScopedRows) -> None:
        self._store = store
        self._window = scoped.window
        self._scope = scoped.scope
        self._gpus = scoped.gpus
        # As read_scope: 1-minute rollups expire first, so a short window none of whose
        # GPUs has a 1-minute row left is read from hours.
        self.resolution = resolution_for(scoped.window)
        found = self._read(self.resolution)
        if not found and self.resolution is Resolution.MINUTE:
            self.resolution = Resolution.HOUR
            found = self._read(self.resolution)
        self._sums = [s for s in found if s.uuid in self._gpus]
        self._found = {s.uuid for s in found}

    def _read(
        self,
        resolution: Resolution,
        uuids: Collection[str] | None = None,
        *,
        by: str = "gpu",
        hist: bool = False,
    ) -> list[GpuUsageSums]:
        return self._store.gpu_usage_sums(
            start_s=self._window.start_s,
            end_s=self._window.end_s,
            resolution=resolution,
            cluster=self._scope.cluster,
            node=self._scope.node,
            uuids=uuids,
            by=by,
            hist=hist,
        )

    def sums(
        self, uuids: Collection[str] | None = None, *, hist: bool = False
    ) -> list[GpuUsageSums]:
        if not hist:
            return self._sums if uuids is None else [s for s in self._sums if s.uuid in uuids]
        wanted = self._gpus.keys() if uuids is None else set(uuids) & self._gpus.keys()
        return self._read(self.resolution, self._listed(wanted), hist=True) if wanted else []

    def buckets(self, uuids: Collection[str]) -> list[GpuUsageSums]:
        wanted = set(uuids) & self._gpus.keys()
        return self._read(self.resolution, self._listed(wanted), by="bucket") if wanted else []

    def _listed(self, wanted: Collection[str]) -> Collection[str] | None:
        """``wanted``, or None when it holds every GPU with rows the filters select (a read
        without a list of GPUs is cheaper and reads the same rows)."""
        return None if self._found <= set(wanted) else wanted

    def rows(self, uuids: Collection[str]) -> list[GpuUsage]:
        wanted = set(uuids) & self._gpus.keys()
        if not wanted:
            return []
        w = self._window
        rows = self._store.gpu_usage_of(
            start_s=w.start_s, end_s=w.end_s, resolution=self.resolution, uuids=wanted
        )
        return prorate_gpu_rows(rows, w, self.resolution, wanted)[1]


class StoreWorkloadReads:
    """:class:`WorkloadReads` from a store's ``UsageSumReads`` (GPU-level scopes)."""

    def __init__(self, store: UsageSumReads, scoped: ScopedRows) -> None:
        self._store = store
        self._window = scoped.window
        self._cluster = scoped.scope.cluster
        self._gpus = scoped.gpus

    def sums(self) -> list[WorkloadUsageSums]:
        if not self._gpus:
            return []
        w = self._window
        return self._store.workload_usage_sums(
            start_s=w.start_s, end_s=w.end_s, cluster=self._cluster, uuids=self._gpus.keys()
        )

    def rows(
        self,
        *,
        workloads: Collection[WorkloadId] | None = None,
        uuids: Collection[str] | None = None,
    ) -> list[WorkloadUsage]:
        wanted = self._gpus.keys() if uuids is None else set(uuids) & self._gpus.keys()
        if not wanted or (workloads is not None and not workloads):
            return []
        w = self._window
        rows = self._store.workload_usage_of(
            start_s=w.start_s,
            end_s=w.end_s,
            cluster=self._cluster,
            workloads=workloads,
            uuids=None if uuids is None else wanted,
        )
        return prorate_workload_rows(rows, w, wanted)


class RowGpuReads:
    """:class:`GpuReads` over the GPU rows ``read_scope`` read."""

    def __init__(self, scoped: ScopedRows) -> None:
        self.resolution = scoped.resolution
        self._rows = scoped.gpu_rows
        self._sums = _gpu_sums(self._rows, hist=False)

    def sums(
        self, uuids: Collection[str] | None = None, *, hist: bool = False
    ) -> list[GpuUsageSums]:
        if not hist:
            return self._sums if uuids is None else [s for s in self._sums if s.uuid in uuids]
        return _gpu_sums(self.rows(uuids) if uuids is not None else self._rows, hist=True)

    def buckets(self, uuids: Collection[str]) -> list[GpuUsageSums]:
        return _gpu_sums(self.rows(uuids), hist=False, per_bucket=True)

    def rows(self, uuids: Collection[str]) -> list[GpuUsage]:
        wanted = set(uuids)
        return [r for r in self._rows if r.uuid in wanted]


class RowWorkloadReads:
    """:class:`WorkloadReads` over the workload rows ``read_scope`` read."""

    def __init__(self, scoped: ScopedRows) -> None:
        self._rows = scoped.workload_rows

    def sums(self) -> list[WorkloadUsageSums]:
        acc: dict[tuple[str, str, str, str], _WorkloadSum] = {}
        for r in self._rows:
            key = (r.namespace, r.user, r.workload, r.uuid)
            a = acc.get(key)
            if a is None:
                a = acc[key] = _WorkloadSum()
            a.add(r)
        return [a.done(*key) for key, a in sorted(acc.items())]

    def rows(
        self,
        *,
        workloads: Collection[WorkloadId] | None = None,
        uuids: Collection[str] | None = None,
    ) -> list[WorkloadUsage]:
        chosen = None if workloads is None else set(workloads)
        on = None if uuids is None else set(uuids)
        return [
            r
            for r in self._rows
            if (chosen is None or (r.namespace, r.user, r.workload) in chosen)
            and (on is None or r.uuid in on)
        ]


@dataclasses.dataclass(slots=True)
class _GpuSum:
    rows: int = 0
    seconds: float = 0.0
    allocated_s: float = 0.0
    util_sum: float = 0.0
    hist: list[float] = dataclasses.field(default_factory=list)
    mem_used_max: int | None = None
    mem_total_max: int | None = None


def _gpu_sums(
    rows: Iterable[GpuUsage], *, hist: bool, per_bucket: bool = False
) -> list[GpuUsageSums]:
    """Rows added up per GPU (in row order) or per bucket (in time order)."""
    acc: dict[tuple[str, str, str, float | None], _GpuSum] = {}
    for r in rows:
        key = ("", "", "", r.bucket_s) if per_bucket else (r.cluster, r.node, r.uuid, None)
        a = acc.get(key)
        if a is None:
            a = acc[key] = _GpuSum(hist=[0.0] * UTIL_HIST_BINS if hist else [])
        a.rows += 1
        a.seconds += r.seconds
        a.allocated_s += r.allocated_s
        a.util_sum += r.util_sum
        if hist:
            for b, s in enumerate(r.util_hist_s):
                a.hist[b] += s
        if r.mem_used_max_bytes is not None:
            a.mem_used_max = max(a.mem_used_max or 0, r.mem_used_max_bytes)
        if r.mem_total_bytes is not None:
            a.mem_total_max = max(a.mem_total_max or 0, r.mem_total_bytes)
    keys = sorted(acc, key=lambda k: k[3] or 0.0) if per_bucket else list(acc)
    return [
        GpuUsageSums(
            *k,
            a.rows,
            a.seconds,
            a.allocated_s,
            a.util_sum,
            tuple(a.hist),
            a.mem_used_max,
            a.mem_total_max,
        )
        for k in keys
        for a in (acc[k],)
    ]


@dataclasses.dataclass(slots=True)
class _WorkloadSum:
    hours: set[float] = dataclasses.field(default_factory=set)
    gpu_s: float = 0.0
    busy_gpu_s: float = 0.0
    idle_gpu_s: float = 0.0
    mem_peak: int | None = None
    kinds: set[str] = dataclasses.field(default_factory=set)

    def add(self, r: WorkloadUsage) -> None:
        self.hours.add(r.hour_s)
        self.gpu_s += r.gpu_s
        self.busy_gpu_s += r.busy_gpu_s
        if r.gpu_s > r.busy_gpu_s:
            self.idle_gpu_s += r.gpu_s - r.busy_gpu_s
        if r.mem_peak_bytes is not None:
            self.mem_peak = max(self.mem_peak or 0, r.mem_peak_bytes)
        if r.workload_kind:
            self.kinds.add(r.workload_kind)

    def done(self, namespace: str, user: str, workload: str, uuid: str) -> WorkloadUsageSums:
        return WorkloadUsageSums(
            namespace,
            user,
            workload,
            uuid,
            len(self.hours),
            min(self.hours),
            max(self.hours),
            self.gpu_s,
            self.busy_gpu_s,
            self.idle_gpu_s,
            self.mem_peak,
            min(self.kinds, default=None),
            max(self.kinds, default=None),
        )
