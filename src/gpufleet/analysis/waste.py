"""Idle GPU-hours and what they cost, per team, user, workload, node or GPU model.

DESIGN.md "Definitions", exactly: **waste** is idle-allocated GPU-time (a GPU holding a compute
process while its utilization is below the idle threshold), priced per GPU model from a
:class:`~gpufleet.analysis.pricing.PriceTable`. Unallocated GPU-time (no process at all) is
reported apart: it is capacity nobody asked for, not capacity someone holds idle.
**Efficiency** is OpenCost's used / allocated: busy allocated GPU-hours over allocated ones.

Sources follow :mod:`gpufleet.analysis.utilization`: GPU-level scopes and groups (cluster,
node, gpu, gpu_model) read per-GPU rollups at ``idle_threshold_pct``; namespace, user and
workload groups and the top-waster list read per-workload rows, whose idle time was classified
at the store's threshold (``WasteResult.workload_idle_threshold_pct``). A workload-level scope
has no unallocated time (idle capacity belongs to no namespace), so it reports zero there.

The monthly projection scales the window's cost to 30 days (``monthly_factor``) on the
assumption that the window is typical; a window of a few hours extrapolates its noise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from gpufleet.analysis.history import HistoryQueryError
from gpufleet.analysis.pricing import DEFAULT_PRICE_TABLE, PriceTable
from gpufleet.analysis.scope import (
    GPU_KEYS,
    Scope,
    ScopedRows,
    Window,
    check_group_key,
    covered_span_s,
    gpu_label,
    idle_at,
    key_of,
    read_scope,
    stored_idle_threshold,
    workload_key,
)
from gpufleet.store._gc import gc_paused
from gpufleet.store.base import GpuUsage, Store, WorkloadUsage

MONTH_S = 30 * 86_400.0
_HOUR = 3600.0


@dataclass(slots=True)
class _Cost:
    """Running GPU-seconds and their cost of one group."""

    gpu_s: float = 0.0
    allocated_s: float = 0.0
    idle_allocated_s: float = 0.0
    allocated_usd: float = 0.0
    idle_allocated_usd: float = 0.0
    gpus: set[str] = field(default_factory=set)

    def add(self, uuid: str, gpu_s: float, allocated_s: float, idle_s: float, usd_h: float) -> None:
        self.gpu_s += gpu_s
        self.allocated_s += allocated_s
        self.idle_allocated_s += idle_s
        self.allocated_usd += allocated_s / _HOUR * usd_h
        self.idle_allocated_usd += idle_s / _HOUR * usd_h
        self.gpus.add(uuid)


@dataclass(frozen=True, slots=True)
class WasteGroup:
    """Waste of one value of the group-by key."""

    key: str
    gpus: int
    allocated_gpu_hours: float
    used_gpu_hours: float
    idle_allocated_gpu_hours: float
    idle_allocated_cost_usd: float
    allocated_cost_usd: float
    efficiency: float | None
    """used / allocated GPU-hours; None when nothing was allocated."""
    monthly_idle_allocated_cost_usd: float


@dataclass(frozen=True, slots=True)
class Waster:
    """A workload holding GPUs idle, with the evidence."""

    namespace: str
    user: str
    workload: str
    workload_kind: str | None
    nodes: tuple[str, ...]
    gpus: tuple[str, ...]
    """``node GPU index`` of every GPU it held idle."""
    gpu_uuids: tuple[str, ...]
    held_gpu_hours: float
    idle_gpu_hours: float
    idle_fraction: float
    mean_gpu_util_pct: float | None
    idle_cost_usd: float
    monthly_idle_cost_usd: float
    mem_held_peak_bytes: int | None
    """Most memory it held at once on one GPU."""
    mem_held_peak_pct: float | None
    """That peak as a share of the GPU's memory."""


@dataclass(frozen=True, slots=True)
class WasteResult:
    """Idle-allocated and unallocated GPU-hours of a scope over a window, and their cost."""

    window: Window
    scope: Scope
    by: str | None
    source: str
    """``gpu_usage`` (GPU-level scope) or ``workload_usage`` (workload-level scope)."""
    idle_threshold_pct: float
    workload_idle_threshold_pct: float
    gpu_hours: float
    allocated_gpu_hours: float
    used_gpu_hours: float
    efficiency: float | None
    idle_allocated_gpu_hours: float
    idle_allocated_cost_usd: float
    allocated_cost_usd: float
    unallocated_gpu_hours: float
    unallocated_cost_usd: float
    monthly_factor: float
    """30 days / the hours of the window history covers (``covered_hours``): what the
    window's costs are multiplied by for a month."""
    covered_hours: float
    """Hours of the window the selected GPUs' history covers (see ``covered_span_s``)."""
    history_coverage: float
    """``covered_hours`` over the window's hours (0..1): below 1, "last month" holds only
    part of a month of history and its totals are of that part."""
    monthly_idle_allocated_cost_usd: float
    monthly_unallocated_cost_usd: float
    groups: tuple[WasteGroup, ...]
    """One row per value of ``by``, highest idle cost first."""
    top_wasters: tuple[Waster, ...]
    """Workloads with idle GPU-time, highest idle cost first."""
    prices_usd_per_gpu_hour: dict[str, float]
    """Price used for each GPU model in the scope."""
    fallback_models: tuple[str, ...]
    """Models the price table did not know, priced at its fallback."""


class _Pricer:
    """Price per GPU UUID from its model, remembering models that fell back.

    A UUID's model is fixed for the call, so its price is looked up once and then answered
    from ``by_uuid`` (a lookup matches words against every key of the table).
    """

    def __init__(self, table: PriceTable, scoped: ScopedRows) -> None:
        self.table = table
        self.scoped = scoped
        self.used: dict[str, float] = {}
        self.fallback: set[str] = set()
        self.by_uuid: dict[str, float] = {}

    def __call__(self, uuid: str) -> float:
        price = self.by_uuid.get(uuid)
        if price is None:
            price = self.by_uuid[uuid] = self._lookup(uuid)
        return price

    def _lookup(self, uuid: str) -> float:
        gpu = self.scoped.gpus.get(uuid)
        name = gpu.name if gpu is not None else None
        price, fell_back = self.table.lookup(name)
        label = name or "unknown"
        self.used[label] = price
        if fell_back:
            self.fallback.add(label)
        return price


def _gpu_costs(
    rows: Iterable[GpuUsage],
    keyf: Callable[[GpuUsage], str] | None,
    price: _Pricer,
    threshold: float,
    stored: float,
) -> tuple[_Cost, dict[str, _Cost], float, float]:
    """The total, the cost per ``keyf`` key (none when ``keyf`` is None), and the unallocated
    GPU-seconds and their cost, in one pass over the rows (in row order, as separate passes
    would add them)."""
    total = _Cost()
    out: dict[str, _Cost] = {}
    unallocated_s = unallocated_usd = 0.0
    for r in rows:
        _, idle_alloc = idle_at(r, threshold, stored)
        usd_h = price(r.uuid)
        total.add(r.uuid, r.seconds, r.allocated_s, idle_alloc, usd_h)
        free = max(r.seconds - r.allocated_s, 0.0)
        unallocated_s += free
        unallocated_usd += free / _HOUR * usd_h
        if keyf is not None:
            k = keyf(r)
            c = out.get(k)
            if c is None:
                c = out[k] = _Cost()
            c.add(r.uuid, r.seconds, r.allocated_s, idle_alloc, usd_h)
    return total, out, unallocated_s, unallocated_usd


def _workload_costs(
    rows: Iterable[WorkloadUsage], keyf: Callable[[WorkloadUsage], str], price: _Pricer
) -> dict[str, _Cost]:
    out: dict[str, _Cost] = {}
    for r in rows:
        idle = max(r.gpu_s - r.busy_gpu_s, 0.0)
        k = keyf(r)
        c = out.get(k)
        if c is None:
            c = out[k] = _Cost()
        c.add(r.uuid, r.gpu_s, r.gpu_s, idle, price(r.uuid))
    return out


def _group(key: str, c: _Cost, monthly: float) -> WasteGroup:
    used_s = c.allocated_s - c.idle_allocated_s
    return WasteGroup(
        key=key,
        gpus=len(c.gpus),
        allocated_gpu_hours=c.allocated_s / _HOUR,
        used_gpu_hours=used_s / _HOUR,
        idle_allocated_gpu_hours=c.idle_allocated_s / _HOUR,
        idle_allocated_cost_usd=c.idle_allocated_usd,
        allocated_cost_usd=c.allocated_usd,
        efficiency=used_s / c.allocated_s if c.allocated_s > 0 else None,
        monthly_idle_allocated_cost_usd=c.idle_allocated_usd * monthly,
    )


def _wasters(scoped: ScopedRows, price: _Pricer, monthly: float, top_n: int) -> list[Waster]:
    per: dict[str, list[WorkloadUsage]] = {}
    for r in scoped.workload_rows:
        per.setdefault(workload_key(r), []).append(r)
    out: list[Waster] = []
    for rows in per.values():
        held = sum(r.gpu_s for r in rows)
        idle_rows = [r for r in rows if r.gpu_s > r.busy_gpu_s]
        idle = sum(r.gpu_s - r.busy_gpu_s for r in idle_rows)
        if idle <= 0 or held <= 0:
            continue
        cost = sum((r.gpu_s - r.busy_gpu_s) / _HOUR * price(r.uuid) for r in idle_rows)
        uuids = sorted({r.uuid for r in idle_rows})
        peak_pct: float | None = None
        peak_bytes: int | None = None
        for r in rows:
            gpu = scoped.gpus.get(r.uuid)
            if r.mem_peak_bytes is None:
                continue
            peak_bytes = max(peak_bytes or 0, r.mem_peak_bytes)
            if gpu is not None and gpu.mem_total_bytes:
                pct = 100.0 * r.mem_peak_bytes / gpu.mem_total_bytes
                peak_pct = pct if peak_pct is None else max(peak_pct, pct)
        first = rows[0]
        out.append(
            Waster(
                namespace=first.namespace,
                user=first.user,
                workload=first.workload,
                workload_kind=next((r.workload_kind for r in rows if r.workload_kind), None),
                nodes=tuple(sorted({r.node for r in idle_rows})),
                gpus=tuple(gpu_label(scoped.gpus.get(u), u) for u in uuids),
                gpu_uuids=tuple(uuids),
                held_gpu_hours=held / _HOUR,
                idle_gpu_hours=idle / _HOUR,
                idle_fraction=idle / held,
                mean_gpu_util_pct=sum(r.util_sum for r in rows) / held,
                idle_cost_usd=cost,
                monthly_idle_cost_usd=cost * monthly,
                mem_held_peak_bytes=peak_bytes,
                mem_held_peak_pct=peak_pct,
            )
        )
    out.sort(key=lambda w: (-w.idle_cost_usd, w.namespace, w.user, w.workload))
    return out[:top_n]


@gc_paused()
def compute_waste(
    store: Store,
    window: Window,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    by: str | None = "namespace",
    idle_threshold_pct: float = 5.0,
    prices: PriceTable | None = None,
    top_n: int = 10,
) -> WasteResult:
    """Idle-allocated and unallocated GPU-hours of ``scope`` over ``window``, priced.

    Args:
        store: the history to read.
        window: the time range.
        scope: the part of the fleet.
        by: group-by key (one of ``GROUP_KEYS``) or None for totals only.
        idle_threshold_pct: utilization below which GPU-time is idle.
        prices: USD per GPU-hour by model (default: public list prices, see ``pricing``).
        top_n: how many workloads the top-waster list keeps.

    Raises:
        HistoryQueryError: an unknown group-by key, a threshold outside 0..100 or a
            negative ``top_n``.
        UnknownSubjectError: a scope value with no data in the window.
        StoreError: the store cannot answer.
    """
    check_group_key(by)
    if not 0.0 <= idle_threshold_pct <= 100.0:
        raise HistoryQueryError(
            f"idle_threshold_pct must be between 0 and 100; got {idle_threshold_pct}"
        )
    if top_n < 0:
        raise HistoryQueryError(f"top_n must be 0 or more; got {top_n}")
    # Waste adds GPU rows up per GPU and key: at the store's threshold one row per GPU does.
    summed = idle_threshold_pct == stored_idle_threshold(store)
    scoped = read_scope(store, window, scope, need_workloads=True, summed=summed)
    return _waste(scoped, by, idle_threshold_pct, prices, top_n)


def top_wasters(
    scoped: ScopedRows, *, prices: PriceTable | None = None, top_n: int = 10
) -> tuple[Waster, ...]:
    """``compute_waste(...).top_wasters`` of rows already read (they depend on the workload
    rows and prices only, not on the idle threshold or the group-by)."""
    price = _Pricer(prices or DEFAULT_PRICE_TABLE, scoped)
    return tuple(_wasters(scoped, price, MONTH_S / covered_span_s(scoped), top_n))


def _waste(
    scoped: ScopedRows,
    by: str | None,
    idle_threshold_pct: float,
    prices: PriceTable | None,
    top_n: int,
) -> WasteResult:
    """:func:`compute_waste` of the rows it read."""
    window, scope = scoped.window, scoped.scope
    stored = scoped.stored_idle_threshold_pct
    price = _Pricer(prices or DEFAULT_PRICE_TABLE, scoped)
    # Scaled from the part of the window history covers (see covered_span_s).
    covered_s = covered_span_s(scoped)
    monthly = MONTH_S / covered_s
    gpus = scoped.gpus
    groups: dict[str, _Cost] = {}
    from_workloads = by is not None and (scope.workload_level or by not in GPU_KEYS)
    if scope.workload_level:
        total = _workload_costs(scoped.workload_rows, lambda r: "", price).get("", _Cost())
        unallocated_s = unallocated_usd = 0.0
        source = "workload_usage"
    else:
        keyf = None if by is None or from_workloads else (lambda r: key_of(by, r, gpus))
        total, groups, unallocated_s, unallocated_usd = _gpu_costs(
            scoped.gpu_rows, keyf, price, idle_threshold_pct, stored
        )
        source = "gpu_usage"
    if from_workloads and by is not None:
        groups = _workload_costs(scoped.workload_rows, lambda r: key_of(by, r, gpus), price)
    rows = sorted(
        (_group(k, c, monthly) for k, c in groups.items()),
        key=lambda g: (-g.idle_allocated_cost_usd, g.key),
    )
    wasters = _wasters(scoped, price, monthly, top_n)
    whole = _group("", total, monthly)
    return WasteResult(
        window=window,
        scope=scope,
        by=by,
        source=source,
        idle_threshold_pct=idle_threshold_pct,
        workload_idle_threshold_pct=stored,
        gpu_hours=total.gpu_s / _HOUR,
        allocated_gpu_hours=whole.allocated_gpu_hours,
        used_gpu_hours=whole.used_gpu_hours,
        efficiency=whole.efficiency,
        idle_allocated_gpu_hours=whole.idle_allocated_gpu_hours,
        idle_allocated_cost_usd=whole.idle_allocated_cost_usd,
        allocated_cost_usd=whole.allocated_cost_usd,
        unallocated_gpu_hours=unallocated_s / _HOUR,
        unallocated_cost_usd=unallocated_usd,
        monthly_factor=monthly,
        covered_hours=covered_s / _HOUR,
        history_coverage=covered_s / window.span_s,
        monthly_idle_allocated_cost_usd=whole.monthly_idle_allocated_cost_usd,
        monthly_unallocated_cost_usd=unallocated_usd * monthly,
        groups=tuple(rows),
        top_wasters=tuple(wasters),
        prices_usd_per_gpu_hour=dict(sorted(price.used.items())),
        fallback_models=tuple(sorted(price.fallback)),
    )
