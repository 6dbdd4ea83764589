"""How busy GPUs were over a window, for a scope, optionally per group (seed 000 section 4.3).

Definitions are DESIGN.md's, exactly:

* utilization is NVML ``utilization.gpu``, time-weighted: ``util_sum / seconds with a reading``;
* allocated GPU-time is time holding a compute process; allocation rate = allocated / total;
* idle GPU-time is time with utilization below ``idle_threshold_pct``; idle fraction = idle
  GPU-time / total GPU-time; idle allocated = allocated and idle.

Where numbers come from:

* GPU-level scopes and group-bys (cluster, node, gpu, gpu_model) use per-GPU rollups
  (``Store.gpu_usage``). At the store's own threshold idle time is its ``idle_s`` exactly; at
  any other threshold it is read off the 5 %-bin utilization histogram, linearly interpolated
  inside the bin the threshold falls in (exact at multiples of 5 %). Idle *allocated* time at
  another threshold scales the bucket's change in idle time by its allocated share, which is
  exact for buckets wholly allocated or unallocated (every 1-minute bucket at 1 sample/min).
* Percentiles come from the same histogram, interpolated linearly inside a 5 % bin, so they are
  good to +-2.5 points.
* Workload-level scopes and group-bys (namespace, user, workload) use per-workload hourly rows
  (``Store.workload_usage``): utilization = ``util_sum / gpu_s``, idle = ``gpu_s - busy_gpu_s``.
  Those rows were classified at write time, so per-workload idle always uses the store's
  threshold (``UtilizationResult.workload_idle_threshold_pct``). A workload's time is allocated
  time by definition, so its allocation rate is 1; no histogram exists, so no percentiles.
* Memory use % is the time-weighted mean (and p95) of each bucket's mean used memory over the
  GPU's total memory (``Store.gpu_series``); the p95 is over bucket means, so it smooths
  spikes shorter than a bucket. ``peak_mem_used_pct`` is the highest single reading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gpufleet.analysis.history import HistoryQueryError
from gpufleet.analysis.scope import (
    GPU_KEYS,
    WORKLOAD_FILTER_KEYS,
    Scope,
    ScopedRows,
    Window,
    add_bins,
    check_group_key,
    gpu_label,
    hist_percentile,
    idle_at,
    key_of,
    memory_use_pct,
    read_scope,
    stored_idle_threshold,
)
from gpufleet.store._gc import gc_paused
from gpufleet.store.base import UTIL_HIST_BINS, GpuUsage, Store, WorkloadUsage

MEM_SATURATED_PCT = 95.0
"""A GPU whose memory use peaked at or above this share is memory-bound (a bottleneck sign)."""
_HOUR = 3600.0
_NO_HIST = (0.0,) * UTIL_HIST_BINS
"""The histogram a group starts from (every bin's first addition is ``0.0 + s``)."""


@dataclass(slots=True)
class Usage:
    """Running totals of GPU-time over rows of one group (all in seconds)."""

    seconds: float = 0.0
    allocated_s: float = 0.0
    idle_s: float = 0.0
    idle_allocated_s: float = 0.0
    util_sum: float = 0.0
    util_s: float = 0.0
    """Seconds with a utilization reading (the weight of the mean)."""
    throttled_s: float = 0.0
    samples: int = 0
    hist: list[float] | None = None
    gpus: set[str] = field(default_factory=set)
    util_max_pct: float | None = None
    """Highest utilization reading of the GPU rows added (caps the histogram's p95, which
    interpolates inside a 5 % bin: all readings at 0 % would otherwise read as p95 4.75 %)."""
    keep_hist: bool = True
    """Whether :meth:`add_gpu` sums the histogram (``hist`` stays None without it: a caller
    that reads no percentile of this group skips twenty additions per row)."""

    def add_gpu(
        self, row: GpuUsage, idle_s: float, idle_allocated_s: float, util_s: float | None = None
    ) -> None:
        """Add one GPU bucket with its idle time at the analysis threshold.

        ``util_s`` is ``sum(row.util_hist_s)`` when the caller has it already (a row is
        often added to several totals).
        """
        self.seconds += row.seconds
        self.allocated_s += row.allocated_s
        self.idle_s += idle_s
        self.idle_allocated_s += idle_allocated_s
        self.util_sum += row.util_sum
        self.util_s += sum(row.util_hist_s) if util_s is None else util_s
        self.throttled_s += row.throttled_s
        self.samples += row.samples
        if self.keep_hist:
            self.hist = add_bins(self.hist or _NO_HIST, row.util_hist_s)
        if row.util_max_pct is not None and (
            self.util_max_pct is None or row.util_max_pct > self.util_max_pct
        ):
            self.util_max_pct = row.util_max_pct
        self.gpus.add(row.uuid)

    def p95_util_pct(self) -> float | None:
        """The 95th percentile of utilization from the histogram, at most the highest
        reading."""
        p = hist_percentile(self.hist, 0.95) if self.hist else None
        if p is None or self.util_max_pct is None:
            return p
        return min(p, self.util_max_pct)

    def add_workload(self, row: WorkloadUsage) -> None:
        """Add one workload-hour: held time is allocated; idle is held time not busy."""
        idle = max(row.gpu_s - row.busy_gpu_s, 0.0)
        self.seconds += row.gpu_s
        self.allocated_s += row.gpu_s
        self.idle_s += idle
        self.idle_allocated_s += idle
        self.util_sum += row.util_sum
        self.util_s += row.gpu_s
        self.samples += row.samples
        self.gpus.add(row.uuid)

    @property
    def mean_util_pct(self) -> float | None:
        """Time-weighted mean utilization (None without readings)."""
        return self.util_sum / self.util_s if self.util_s > 0 else None

    def share(self, part_s: float) -> float | None:
        """``part_s`` as a fraction of all GPU-time (None when there is none)."""
        return part_s / self.seconds if self.seconds > 0 else None


@dataclass(frozen=True, slots=True)
class GroupUsage:
    """One row of a group-by: the usage of one key."""

    key: str
    gpus: int
    gpu_hours: float
    allocated_gpu_hours: float
    unallocated_gpu_hours: float
    idle_gpu_hours: float
    idle_allocated_gpu_hours: float
    allocation_rate: float | None
    idle_fraction: float | None
    mean_gpu_util_pct: float | None
    p95_gpu_util_pct: float | None
    """None for workload-level keys (their rows have no histogram)."""


@dataclass(frozen=True, slots=True)
class UtilEntity:
    """A GPU or workload flagged as under- or over-utilized."""

    kind: str
    """``gpu`` or ``workload``."""
    key: str
    """GPU UUID, or ``namespace/user/workload``."""
    label: str
    """``node GPU index`` for a GPU, the key for a workload."""
    mean_gpu_util_pct: float
    gpu_hours: float
    idle_fraction: float | None
    allocation_rate: float | None


@dataclass(frozen=True, slots=True)
class GpuFlag:
    """A GPU showing a bottleneck sign, with the value that triggered it."""

    uuid: str
    label: str
    value: float
    """Throttled fraction of its time, or peak memory use %."""


@dataclass(frozen=True, slots=True)
class Bottlenecks:
    """Signs that GPUs were limited by something other than work to do."""

    throttled_fraction: float | None
    """Share of GPU-time with a thermal or power throttle reason active."""
    throttled_gpus: tuple[GpuFlag, ...]
    mem_saturated_pct: float
    mem_saturated_gpus: tuple[GpuFlag, ...]
    """GPUs whose memory use peaked at or above ``mem_saturated_pct``."""


@dataclass(frozen=True, slots=True)
class UtilizationResult:
    """Utilization of a scope over a window (fields are described in the module docstring)."""

    window: Window
    scope: Scope
    by: str | None
    source: str
    """``gpu_usage`` (GPU-level scope) or ``workload_usage`` (workload-level scope)."""
    resolution: str
    idle_threshold_pct: float
    idle_method: str
    """``stored`` (the store's idle seconds), ``histogram`` or ``workload_rows``."""
    workload_idle_threshold_pct: float
    gpus: int
    gpu_hours: float
    allocated_gpu_hours: float
    unallocated_gpu_hours: float
    idle_gpu_hours: float
    idle_allocated_gpu_hours: float
    allocation_rate: float | None
    idle_fraction: float | None
    mean_gpu_util_pct: float | None
    p50_gpu_util_pct: float | None
    p95_gpu_util_pct: float | None
    mean_mem_used_pct: float | None
    p95_mem_used_pct: float | None
    peak_mem_used_pct: float | None
    samples: int
    samples_basis: str
    """``gpu_samples``: GPU readings behind the GPU rollups; ``workload_samples``: readings
    behind the workload rows (both prorated at the window's edges)."""
    under_pct: float
    over_pct: float
    under_utilized: tuple[UtilEntity, ...]
    """Mean utilization below ``under_pct``, lowest first."""
    over_utilized: tuple[UtilEntity, ...]
    """Mean utilization above ``over_pct``, highest first."""
    bottlenecks: Bottlenecks
    groups: tuple[GroupUsage, ...]
    """One row per value of ``by``, most GPU-hours first (empty when ``by`` is None)."""


def _group_row(key: str, u: Usage) -> GroupUsage:
    return GroupUsage(
        key=key,
        gpus=len(u.gpus),
        gpu_hours=u.seconds / _HOUR,
        allocated_gpu_hours=u.allocated_s / _HOUR,
        unallocated_gpu_hours=max(u.seconds - u.allocated_s, 0.0) / _HOUR,
        idle_gpu_hours=u.idle_s / _HOUR,
        idle_allocated_gpu_hours=u.idle_allocated_s / _HOUR,
        allocation_rate=u.share(u.allocated_s),
        idle_fraction=u.share(u.idle_s),
        mean_gpu_util_pct=u.mean_util_pct,
        p95_gpu_util_pct=u.p95_util_pct(),
    )


def _accumulate(
    scoped: ScopedRows,
    keyfs: Sequence[tuple[Callable[[GpuUsage | WorkloadUsage], str], bool]],
    threshold: float,
    *,
    workloads: bool,
    with_total: bool = True,
) -> tuple[Usage, list[dict[str, Usage]]]:
    """The scope's total (empty unless ``with_total``) and usage per key of each of
    ``keyfs`` (key function, whether its groups need the histogram), from workload rows or
    from GPU rows at ``threshold``, in one pass: each row is added to every total in row
    order, so each total is what a pass of its own would give."""
    total = Usage()
    outs: list[dict[str, Usage]] = [{} for _ in keyfs]
    pairs = [(out, keyf, hist) for out, (keyf, hist) in zip(outs, keyfs, strict=True)]
    if workloads:
        for w in scoped.workload_rows:
            if with_total:
                total.add_workload(w)
            for out, keyf, _ in pairs:
                k = keyf(w)
                u = out.get(k)
                if u is None:
                    u = out[k] = Usage()
                u.add_workload(w)
        return total, outs
    stored = scoped.stored_idle_threshold_pct
    for r in scoped.gpu_rows:
        idle, idle_alloc = idle_at(r, threshold, stored)
        util_s = sum(r.util_hist_s)
        if with_total:
            total.add_gpu(r, idle, idle_alloc, util_s)
        for out, keyf, hist in pairs:
            k = keyf(r)
            u = out.get(k)
            if u is None:
                u = out[k] = Usage(keep_hist=hist)
            u.add_gpu(r, idle, idle_alloc, util_s)
    return total, outs


def _entities(
    per: dict[str, Usage], kind: str, label: Callable[[str], str], under: float, over: float
) -> tuple[tuple[UtilEntity, ...], tuple[UtilEntity, ...]]:
    flagged = [
        UtilEntity(
            kind=kind,
            key=k,
            label=label(k),
            mean_gpu_util_pct=mean,
            gpu_hours=u.seconds / _HOUR,
            idle_fraction=u.share(u.idle_s),
            allocation_rate=u.share(u.allocated_s),
        )
        for k, u in per.items()
        if (mean := u.mean_util_pct) is not None
    ]
    low = sorted(
        (e for e in flagged if e.mean_gpu_util_pct < under), key=lambda e: e.mean_gpu_util_pct
    )
    high = sorted(
        (e for e in flagged if e.mean_gpu_util_pct > over), key=lambda e: -e.mean_gpu_util_pct
    )
    return tuple(low), tuple(high)


def _workload_mem_peak(scoped: ScopedRows) -> float | None:
    peaks = [
        100.0 * r.mem_peak_bytes / total
        for r in scoped.workload_rows
        if r.mem_peak_bytes is not None
        and (total := (g.mem_total_bytes if (g := scoped.gpus.get(r.uuid)) else None))
    ]
    return max(peaks, default=None)


def _bottlenecks(scoped: ScopedRows, uuids: set[str]) -> Bottlenecks:
    per: dict[str, list[float]] = {}
    peak: dict[str, float] = {}
    for r in scoped.gpu_rows:
        if r.uuid not in uuids:
            continue
        acc = per.setdefault(r.uuid, [0.0, 0.0])
        acc[0] += r.throttled_s
        acc[1] += r.seconds
        if r.mem_used_max_bytes is not None and r.mem_total_bytes:
            pct = 100.0 * r.mem_used_max_bytes / r.mem_total_bytes
            peak[r.uuid] = max(peak.get(r.uuid, 0.0), pct)
    label = {u: gpu_label(scoped.gpus.get(u), u) for u in per}
    throttled = sorted(
        (GpuFlag(u, label[u], t / s) for u, (t, s) in per.items() if t > 0 and s > 0),
        key=lambda f: -f.value,
    )
    saturated = sorted(
        (GpuFlag(u, label[u], p) for u, p in peak.items() if p >= MEM_SATURATED_PCT),
        key=lambda f: -f.value,
    )
    total_s = sum(s for _, s in per.values())
    return Bottlenecks(
        throttled_fraction=sum(t for t, _ in per.values()) / total_s if total_s > 0 else None,
        throttled_gpus=tuple(throttled),
        mem_saturated_pct=MEM_SATURATED_PCT,
        mem_saturated_gpus=tuple(saturated),
    )


@gc_paused()
def analyze_utilization(
    store: Store,
    window: Window,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    by: str | None = None,
    idle_threshold_pct: float = 5.0,
    under_pct: float = 20.0,
    over_pct: float = 90.0,
) -> UtilizationResult:
    """Utilization, allocation and idle time of ``scope`` over ``window``, grouped by ``by``.

    Raises:
        HistoryQueryError: an unknown group-by key or a threshold outside 0..100.
        UnknownSubjectError: a scope value with no data in the window.
        StoreError: the store cannot answer.
    """
    check_group_key(by)
    for name, value in (
        ("idle_threshold_pct", idle_threshold_pct),
        ("under_pct", under_pct),
        ("over_pct", over_pct),
    ):
        if not 0.0 <= value <= 100.0:
            raise HistoryQueryError(f"{name} must be between 0 and 100; got {value}")
    # At the store's threshold every GPU-level figure is a sum per GPU (or per GPU
    # attribute): read each GPU's window as one row. Another threshold shifts idle allocated
    # time bucket by bucket (see idle_at), so it needs the buckets.
    scoped = read_scope(
        store,
        window,
        scope,
        need_workloads=scope.workload_level or by in WORKLOAD_FILTER_KEYS,
        summed=idle_threshold_pct == stored_idle_threshold(store),
    )
    stored, gpus, wl = scoped.stored_idle_threshold_pct, scoped.gpus, scope.workload_level
    entity_of: Callable[[GpuUsage | WorkloadUsage], str] = (
        (lambda r: key_of("workload", r, gpus)) if wl else (lambda r: r.uuid)
    )
    # Grouping by GPU on GPU rows groups exactly as the per-GPU entities do: one pass serves
    # both. Grouping by a workload key on GPU rows reads the workload rows instead.
    # Entities are judged by their mean only; groups report a p95 (from GPU rows).
    group_from_workloads = by is not None and (wl or by not in GPU_KEYS)
    same_as_entities = by == "gpu" and not wl
    keyfs = [(entity_of, same_as_entities)]
    if by is not None and not same_as_entities and group_from_workloads == wl:
        keyfs.append((lambda r: key_of(by, r, gpus), True))
    total, (per_entity, *same_pass) = _accumulate(scoped, keyfs, idle_threshold_pct, workloads=wl)
    if wl:
        under, over = _entities(per_entity, "workload", str, under_pct, over_pct)
        used = {r.uuid for r in scoped.workload_rows}
        source, idle_method, basis = "workload_usage", "workload_rows", "workload_samples"
    else:
        label = lambda u: gpu_label(gpus.get(u), u)  # noqa: E731 - a one-line key function
        under, over = _entities(per_entity, "gpu", label, under_pct, over_pct)
        used = set(per_entity)
        source, basis = "gpu_usage", "gpu_samples"
        idle_method = "stored" if idle_threshold_pct == stored else "histogram"
    groups: dict[str, Usage] = {}
    if same_as_entities:
        groups = per_entity
    elif same_pass:
        groups = same_pass[0]
    elif by is not None:
        _, (groups,) = _accumulate(
            scoped,
            [(lambda r: key_of(by, r, gpus), True)],
            idle_threshold_pct,
            workloads=group_from_workloads,
            with_total=False,
        )
    rows = sorted(
        (_group_row(k, u) for k, u in groups.items()), key=lambda g: (-g.gpu_hours, g.key)
    )
    # A workload-level scope reports only its own memory peak (see below): no series read.
    mem_mean, mem_p95, mem_peak = (
        memory_use_pct(store, scoped, used) if used and not wl else (None, None, None)
    )
    return UtilizationResult(
        window=window,
        scope=scope,
        by=by,
        source=source,
        resolution=scoped.resolution.value,
        idle_threshold_pct=idle_threshold_pct,
        idle_method=idle_method,
        workload_idle_threshold_pct=stored,
        gpus=len(used),
        gpu_hours=total.seconds / _HOUR,
        allocated_gpu_hours=total.allocated_s / _HOUR,
        unallocated_gpu_hours=max(total.seconds - total.allocated_s, 0.0) / _HOUR,
        idle_gpu_hours=total.idle_s / _HOUR,
        idle_allocated_gpu_hours=total.idle_allocated_s / _HOUR,
        allocation_rate=total.share(total.allocated_s),
        idle_fraction=total.share(total.idle_s),
        mean_gpu_util_pct=total.mean_util_pct,
        p50_gpu_util_pct=hist_percentile(total.hist, 0.5) if total.hist else None,
        p95_gpu_util_pct=total.p95_util_pct(),
        # A GPU's memory readings include other holders; a workload scope reports only its
        # own peak (the per-workload rows carry no mean memory share).
        mean_mem_used_pct=None if scope.workload_level else mem_mean,
        p95_mem_used_pct=None if scope.workload_level else mem_p95,
        peak_mem_used_pct=_workload_mem_peak(scoped) if scope.workload_level else mem_peak,
        samples=total.samples,
        samples_basis=basis,
        under_pct=under_pct,
        over_pct=over_pct,
        under_utilized=under,
        over_utilized=over,
        bottlenecks=_bottlenecks(scoped, used),
        groups=tuple(rows),
    )
