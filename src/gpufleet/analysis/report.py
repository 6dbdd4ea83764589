"""The FinOps report of seed 000 section 5: utilization against a target, savings, what to do.

:func:`build_report` runs the analyses over one window and scope (every number comes from
them, none is recomputed here):

* :func:`~gpufleet.analysis.utilization.analyze_utilization` grouped by namespace;
* :func:`~gpufleet.analysis.waste.compute_waste` by namespace;
* :func:`~gpufleet.analysis.trends.analyze_trends`, daily utilization with its forecast and
  its comparison with the equally long window before;
* :func:`~gpufleet.analysis.drilldown.drill_down` of GPU-hours held, this window against the
  equally long window before it (None when that window has no data);
* :func:`~gpufleet.analysis.recommend.recommend`.

Both comparisons with the window before are made only when history covers at least half of
it (:func:`~gpufleet.analysis.trends.history_coverage`); otherwise they carry a ``note``
instead of a change, the renderings show that reason instead of numbers, and the notes repeat
it. (The headline compares nothing across windows: its expected improvement is computed
within the window.)

The store is wrapped in :class:`~gpufleet.analysis.memo.MemoStore`, so the window's rows are
read once for all of them.

The headline is the seed's four lines as data (:class:`Headline`):

1. **GPU utilization** against ``target_util_pct``: the time-weighted mean of the scope.
2. **Potential savings**: the expected 30-day savings of the recommendations, each GPU counted
   under one recommendation only (the highest-saving one that releases it), so overlapping
   recommendations are not added twice. Added capacity (``scale_up``) is a cost, reported in
   the notes and not netted, as in :class:`~gpufleet.analysis.recommend_types.RecommendationSet`.
3. **Recommendation**: the kind whose counted recommendations save most together, with its
   highest-saving recommendation.
4. **Expected improvement** (:class:`ExpectedImprovement`):

   * cost reduction = potential monthly savings / current monthly cost, where the current
     monthly cost is every GPU-hour of the scope in the window (allocated and unallocated)
     at the price table, times the waste report's ``monthly_factor`` (30 days / window);
   * utilization after = used GPU-time / remaining GPU-time, where used GPU-time is the mean
     utilization times the window's GPU-hours (work is kept: idle time is released and moved
     work still runs) and remaining GPU-time is the window's GPU-hours less those the counted
     recommendations release. A recommendation's released GPU-hours are its saving divided by
     the monthly factor and its GPUs' price per GPU-hour (every rule prices released
     GPU-time that way).

``definitions`` carries this and DESIGN.md's metric definitions, with the thresholds used, as
text for the reader; ``notes`` carries the caveats of this report (fallback prices, list
prices, gaps in the data, overlapping recommendations, a short window).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gpufleet.analysis.drilldown import DrillDown, drill_down
from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.analysis.memo import MemoStore
from gpufleet.analysis.pricing import (
    DEFAULT_PRICE_TABLE,
    PriceTable,
)
from gpufleet.analysis.recommend import recommend
from gpufleet.analysis.recommend_types import Recommendation, RecommendationSet
from gpufleet.analysis.scope import WORKLOAD_KEYS, Scope, Window
from gpufleet.analysis.trends import (
    MIN_HISTORY_COVERAGE,
    TrendResult,
    analyze_trends,
    history_coverage,
    scope_label,
)
from gpufleet.analysis.utilization import UtilizationResult, analyze_utilization
from gpufleet.analysis.waste import WasteResult, compute_waste
from gpufleet.analysis.wire import to_wire
from gpufleet.store.base import GpuInventory, Store

__all__ = [
    "KIND_ACTIONS",
    "ExpectedImprovement",
    "Headline",
    "Report",
    "TopRecommendation",
    "build_report",
    "fmt_hours",
    "fmt_pct",
    "fmt_rate",
    "fmt_time",
    "fmt_usd",
    "report_json",
]

_HOUR = 3600.0
_DAY = 86_400.0
SHORT_WINDOW_S = 7 * _DAY
"""Windows shorter than a week get a note: their monthly figures extrapolate a part of the
weekly cycle."""
COVERAGE_NOTE_BELOW = 0.95
"""GPU readings covering less than this share of the window's GPU-time get a note."""
_LISTED = 5
KIND_ACTIONS: Mapping[str, str] = {
    "scale_down": "release unallocated GPUs",
    "scale_up": "add capacity",
    "consolidate": "consolidate workloads",
    "mig_or_share": "share GPUs (MIG or time-slicing)",
    "right_size": "right-size workloads",
    "reclaim_idle": "reclaim idle GPUs",
}
"""How the headline names each recommendation kind."""


@dataclass(frozen=True, slots=True)
class TopRecommendation:
    """The recommendation the headline names: the best of the kind that saves most."""

    id: str
    kind: str
    title: str
    expected_monthly_saving_usd: float
    confidence_label: str
    kind_count: int
    """Counted recommendations of the same kind (this one included)."""
    kind_monthly_saving_usd: float
    """Their expected savings together."""


@dataclass(frozen=True, slots=True)
class ExpectedImprovement:
    """What the counted recommendations would change (see the module docstring)."""

    current_monthly_cost_usd: float
    """Every GPU-hour of the scope at the price table, scaled to 30 days."""
    monthly_saving_usd: float
    cost_reduction_pct: float | None
    """``monthly_saving_usd`` over ``current_monthly_cost_usd`` in percent; None at no cost."""
    gpu_hours: float
    """GPU-hours of the scope in the window."""
    released_gpu_hours: float
    """GPU-hours in the window the counted recommendations release."""
    mean_gpu_util_pct: float | None
    utilization_after_pct: float | None
    """Mean utilization once those GPU-hours are released (None without readings, or when
    nothing would remain)."""
    counted: tuple[str, ...]
    """Ids of the recommendations behind the figures."""
    overlapping: tuple[str, ...]
    """Ids left out because a higher-saving counted one already releases one of their GPUs."""


@dataclass(frozen=True, slots=True)
class Headline:
    """The seed's four lines as data."""

    mean_gpu_util_pct: float | None
    target_util_pct: float
    util_gap_pct_points: float | None
    """``target_util_pct - mean_gpu_util_pct`` (positive: below target)."""
    potential_monthly_saving_usd: float
    recommendations: int
    """Counted recommendations with a saving."""
    idle_monthly_cost_usd: float
    """Idle allocated plus unallocated GPU-time of the window at the price table, per month
    (the waste report's figures; context for the savings, not part of them)."""
    idle_allocated_monthly_cost_usd: float
    unallocated_monthly_cost_usd: float
    top_recommendation: TopRecommendation | None
    expected_improvement: ExpectedImprovement

    def sentences(self) -> tuple[str, str, str, str]:
        """The four lines in words, e.g. ``GPU utilization: 45.2 % (target 80 %)``."""
        target = f"target {self.target_util_pct:g} %"
        if self.mean_gpu_util_pct is None:
            util = f"GPU utilization: no readings ({target})"
        else:
            util = f"GPU utilization: {self.mean_gpu_util_pct:.1f} % ({target})"
        n = self.recommendations
        savings = (
            f"Potential savings: {_usd(self.potential_monthly_saving_usd)}/month from {n} "
            f"recommendation{'' if n == 1 else 's'}; idle GPU-time costs "
            f"{_usd(self.idle_monthly_cost_usd)}/month "
            f"({_usd(self.idle_allocated_monthly_cost_usd)} held idle, "
            f"{_usd(self.unallocated_monthly_cost_usd)} unallocated)"
        )
        top = self.top_recommendation
        if top is None:
            rec = "Recommendation: none; no rule's thresholds were met in this window"
        else:
            action = KIND_ACTIONS.get(top.kind, top.kind)
            first = (
                f"{top.title} ({_usd(top.expected_monthly_saving_usd)}/month, "
                f"{top.confidence_label} confidence)"
            )
            if top.kind_count > 1:
                rec = (
                    f"Recommendation: {action} ({top.kind_count} recommendations, "
                    f"{_usd(top.kind_monthly_saving_usd)}/month); first: {first}"
                )
            else:
                rec = f"Recommendation: {action}: {first}"
        e = self.expected_improvement
        if e.cost_reduction_pct is None or e.monthly_saving_usd <= 0:
            improvement = "Expected improvement: none (no recommendation saves anything)"
        else:
            improvement = (
                f"Expected improvement: {e.cost_reduction_pct:.1f} % cost reduction "
                f"({_usd(e.monthly_saving_usd)} of {_usd(e.current_monthly_cost_usd)} a month)"
            )
            if e.utilization_after_pct is not None and e.mean_gpu_util_pct is not None:
                improvement += (
                    f"; utilization {e.mean_gpu_util_pct:.1f} % -> "
                    f"{e.utilization_after_pct:.1f} % with {e.released_gpu_hours:,.0f} of "
                    f"{e.gpu_hours:,.0f} GPU-hours released"
                )
        return util, savings, rec, improvement


@dataclass(frozen=True, slots=True)
class Report:
    """The FinOps report of one window and scope (see the module docstring)."""

    window: Window
    scope: Scope
    generated_s: float
    target_util_pct: float
    idle_threshold_pct: float
    headline: Headline
    utilization: UtilizationResult
    """Grouped by namespace."""
    waste: WasteResult
    """Grouped by namespace."""
    trends: TrendResult
    """Daily utilization, with its forecast."""
    drilldown: DrillDown | None
    """GPU-hours held, this window against the previous equally long one; None when that
    window has no data, and not a comparison (its ``note`` set) when history covers under
    half of it."""
    recommendations: RecommendationSet
    definitions: Mapping[str, str]
    """What each number means, with the thresholds used (term -> text)."""
    notes: tuple[str, ...]
    """Caveats: fallback prices, list prices, gaps in the data, overlaps, a short window."""

    @property
    def scope_label(self) -> str:
        """The scope's named values joined by ``/`` (``all`` for the whole fleet)."""
        return scope_label(self.scope)


def _usd(value: float) -> str:
    return fmt_usd(value)


# ---- formatting shared by the Markdown and HTML renderings --------------------------------

NA = "n/a"
"""What a missing number reads as."""


def fmt_usd(value: float | None, cents: bool = False) -> str:
    """``$1,234`` (or ``$1,234.56``); ``-$12`` for a negative amount."""
    if value is None or not math.isfinite(value):
        return NA
    text = f"${abs(value):,.2f}" if cents else f"${abs(value):,.0f}"
    return f"-{text}" if value < 0 and text.strip("$0.,") else text


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """A percentage (0..100) as ``45.2 %``."""
    return NA if value is None or not math.isfinite(value) else f"{value:.{digits}f} %"


def fmt_rate(value: float | None, digits: int = 1) -> str:
    """A fraction (0..1) as a percentage, ``0.452`` -> ``45.2 %``."""
    return NA if value is None else fmt_pct(100.0 * value, digits)


def fmt_hours(value: float | None) -> str:
    """GPU-hours with a precision that suits their size."""
    if value is None or not math.isfinite(value):
        return NA
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def fmt_time(ts_s: float | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    """A UTC time."""
    return NA if ts_s is None or not math.isfinite(ts_s) else _utc(ts_s, fmt)


def _utc(ts_s: float, fmt: str = "%Y-%m-%d") -> str:
    return datetime.fromtimestamp(ts_s, tz=UTC).strftime(fmt)


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LISTED])
    return shown if len(items) <= _LISTED else f"{shown} and {len(items) - _LISTED} more"


def _released_uuids(rec: Recommendation) -> tuple[str, ...]:
    """The GPUs a recommendation frees (a consolidation names them; others free their target)."""
    freed = rec.action.params.get("release_gpu_uuids")
    if rec.kind == "consolidate" and isinstance(freed, list | tuple):
        return tuple(str(u) for u in freed)
    return rec.target.gpu_uuids


@dataclass(frozen=True, slots=True)
class _Counted:
    counted: tuple[Recommendation, ...]
    overlapping: tuple[Recommendation, ...]
    released_gpu_hours: float
    mixed_prices: tuple[str, ...]
    """Ids whose GPUs have different prices (released GPU-hours use their mean price)."""


def _count(
    recs: RecommendationSet,
    inventory: Mapping[str, GpuInventory],
    table: PriceTable,
    monthly_factor: float,
    mean_price: float,
) -> _Counted:
    """Pick the recommendations behind the headline and the GPU-hours they release."""
    claimed: set[str] = set()
    counted: list[Recommendation] = []
    overlapping: list[Recommendation] = []
    mixed: list[str] = []
    released = 0.0
    for rec in recs.recommendations:  # highest saving first
        if rec.expected_monthly_saving_usd <= 0:
            continue
        uuids = _released_uuids(rec)
        if claimed.intersection(uuids):
            overlapping.append(rec)
            continue
        claimed.update(uuids)
        counted.append(rec)
        prices = [table.lookup(g.name if (g := inventory.get(u)) else None)[0] for u in uuids]
        if len(set(prices)) > 1:
            mixed.append(rec.id)
        price = sum(prices) / len(prices) if prices else mean_price
        if price > 0 and monthly_factor > 0:
            released += rec.expected_monthly_saving_usd / monthly_factor / price
    return _Counted(tuple(counted), tuple(overlapping), released, tuple(mixed))


def _improvement(
    util: UtilizationResult, waste: WasteResult, chosen: _Counted
) -> ExpectedImprovement:
    current = (waste.allocated_cost_usd + waste.unallocated_cost_usd) * waste.monthly_factor
    saving = sum(r.expected_monthly_saving_usd for r in chosen.counted)
    gpu_hours = util.gpu_hours
    released = min(chosen.released_gpu_hours, gpu_hours)
    mean = util.mean_gpu_util_pct
    after: float | None = None
    if mean is not None and gpu_hours - released > 0:
        after = min(mean * gpu_hours / (gpu_hours - released), 100.0)
    return ExpectedImprovement(
        current_monthly_cost_usd=current,
        monthly_saving_usd=saving,
        cost_reduction_pct=min(100.0 * saving / current, 100.0) if current > 0 else None,
        gpu_hours=gpu_hours,
        released_gpu_hours=released,
        mean_gpu_util_pct=mean,
        utilization_after_pct=after,
        counted=tuple(r.id for r in chosen.counted),
        overlapping=tuple(r.id for r in chosen.overlapping),
    )


def _top(chosen: _Counted) -> TopRecommendation | None:
    """The highest-saving recommendation of the kind that saves most together."""
    if not chosen.counted:
        return None
    by_kind: dict[str, list[Recommendation]] = {}
    for r in chosen.counted:  # highest saving first, so each list starts with its best
        by_kind.setdefault(r.kind, []).append(r)
    same = max(
        by_kind.values(),
        key=lambda rs: (
            sum(r.expected_monthly_saving_usd for r in rs),
            -chosen.counted.index(rs[0]),
        ),
    )
    top = same[0]
    return TopRecommendation(
        id=top.id,
        kind=top.kind,
        title=top.title,
        expected_monthly_saving_usd=top.expected_monthly_saving_usd,
        confidence_label=top.confidence_label,
        kind_count=len(same),
        kind_monthly_saving_usd=sum(r.expected_monthly_saving_usd for r in same),
    )


def _definitions(
    util: UtilizationResult,
    waste: WasteResult,
    trends: TrendResult,
    recs: RecommendationSet,
    target_util_pct: float,
    table: PriceTable,
) -> dict[str, str]:
    thr = util.idle_threshold_pct
    stored = waste.workload_idle_threshold_pct
    prices = ", ".join(f"{m} ${p:.2f}" for m, p in waste.prices_usd_per_gpu_hour.items())
    thresholds = ", ".join(f"{k} = {v:g}" for k, v in sorted(recs.thresholds.items()))
    fc = trends.forecast
    method = f"{fc.method} (season {fc.season or 'none'})" if fc is not None else "none"
    return {
        "gpu_utilization": (
            "NVML utilization.gpu (% of time a kernel ran), time-weighted over the window: "
            "the sum of utilization x seconds over the seconds with a reading."
        ),
        "target_utilization": (
            f"The utilization the report compares against ({target_util_pct:g} %): an input "
            "of the report, not a measurement."
        ),
        "allocated": (
            "A GPU is allocated when it holds at least one compute process (agent) or a lease "
            "(hub). Allocation rate = allocated GPU-time / total GPU-time."
        ),
        "idle": (
            f"A GPU-interval is idle when its utilization is below {thr:g} %. Idle allocated = "
            f"allocated and idle. Per-namespace, per-workload figures and the workload rules "
            f"use the store's rollup threshold ({stored:g} %)."
        ),
        "waste": (
            "Waste = idle allocated GPU-hours, priced per GPU model from the price table; "
            "unallocated GPU-hours (no process at all) are reported apart."
        ),
        "efficiency": "As OpenCost: used / allocated GPU-hours (used = allocated and not idle).",
        "prices": (
            f"USD per GPU-hour by model: {prices or 'none used'}; models the table does not "
            f"know cost ${table.fallback_usd_per_gpu_hour:.2f}."
        ),
        "monthly": (
            f"Window costs x 30 days / window length (monthly factor "
            f"{waste.monthly_factor:.3g}), assuming the window is typical."
        ),
        "potential_savings": (
            "Sum of the expected 30-day savings of the recommendations, each GPU counted under "
            "one recommendation only (the highest-saving one that releases it); a "
            "recommendation that would release a GPU already counted is left out. Added "
            "capacity (scale_up) is a cost and is not netted."
        ),
        "expected_improvement": (
            "Cost reduction = potential monthly savings / current monthly cost, the current "
            "cost being every GPU-hour of the scope in the window (allocated and unallocated) "
            "at the price table x the monthly factor. Utilization after = used GPU-time / "
            "remaining GPU-time: used = mean utilization x the window's GPU-hours (work is "
            "kept; released time is idle or its work moves), remaining = the window's "
            "GPU-hours less those the counted recommendations release (a recommendation's "
            "saving / monthly factor / its GPUs' price per GPU-hour)."
        ),
        "recommendation_thresholds": thresholds,
        "trend": (
            f"Daily time-weighted utilization. Forecast: {method}, "
            f"{len(fc.points) if fc else 0} days ahead; the band is the 80 % prediction "
            "interval (the 95 % one in the data). Slope: Theil-Sen per day, flat when its "
            "confidence interval contains 0."
        ),
        "change": (
            "GPU-hours held per namespace, user and workload in this window against the "
            "equally long window just before it; each child's contribution is its change. "
            "The window before is compared (here and in the trend) only when history covers "
            "at least half of it, judged from when the GPUs were first seen."
        ),
    }


def _gap_days(trends: TrendResult) -> list[str]:
    return [_utc(p.start_s) for p in trends.series.points if p.value is None]


def _notes(
    util: UtilizationResult,
    waste: WasteResult,
    trends: TrendResult,
    drill: DrillDown | None,
    recs: RecommendationSet,
    chosen: _Counted,
    table: PriceTable,
    scope: Scope,
) -> list[str]:
    window = util.window
    notes: list[str] = []
    fallback = sorted(set(waste.fallback_models) | set(recs.fallback_models))
    if fallback:
        notes.append(
            f"No price for {_listed(fallback)}: priced at the fallback "
            f"${table.fallback_usd_per_gpu_hour:.2f} per GPU-hour; add them to the price "
            "table for real figures."
        )
    listed = sorted(
        m
        for m, p in waste.prices_usd_per_gpu_hour.items()
        if m not in fallback and DEFAULT_PRICE_TABLE.lookup(m) == (p, False)
    )
    if listed:
        notes.append(
            f"{_listed(listed)} priced at public on-demand list prices (the default table); "
            "reserved, spot or owned GPUs usually cost less: configure your prices."
        )
    if window.span_s < SHORT_WINDOW_S:
        notes.append(
            f"The window is {window.span_s / _HOUR:.0f} h long: monthly figures scale it "
            f"{waste.monthly_factor:.3g}-fold and a part of the weekly cycle may be missing."
        )
    gaps = _gap_days(trends)
    if gaps:
        notes.append(
            f"No GPU data on {len(gaps)} of {len(trends.series.points)} days: {_listed(gaps)}."
        )
    if not scope.workload_level and util.gpus and window.span_s > 0:
        coverage = util.gpu_hours / (util.gpus * window.span_s / _HOUR)
        if coverage < COVERAGE_NOTE_BELOW:
            notes.append(
                f"Readings cover {100 * coverage:.0f} % of the window's GPU-time for the "
                f"{util.gpus} GPUs seen (GPUs added or removed, agents down, or gaps)."
            )
    if scope.workload_level:
        notes.append(
            "A namespace, user or workload scope owns no capacity: unallocated GPU-time and "
            "the capacity rules (scale_down, scale_up, mig_or_share) are left out, and the "
            "current cost is that of the GPU-time it held."
        )
    if util.idle_threshold_pct != waste.workload_idle_threshold_pct:
        notes.append(
            f"Idle at {util.idle_threshold_pct:g} % applies to GPU-level figures; "
            "per-namespace idle time and the workload rules use the store's "
            f"{waste.workload_idle_threshold_pct:g} % (workload rows were classified when "
            "written)."
        )
    if drill is None:
        before = Window(window.start_s - window.span_s, window.start_s)
        notes.append(f"No data in the previous window ({before.label()}): no change to explain.")
    elif drill.note:
        notes.append(f"Previous window ({drill.before.label()}): {drill.note}.")
    if chosen.overlapping:
        ids = [f"{r.id} ({r.kind})" for r in chosen.overlapping]
        saving = sum(r.expected_monthly_saving_usd for r in chosen.overlapping)
        notes.append(
            f"Left out of the savings as overlapping a higher-saving recommendation's GPUs: "
            f"{_listed(ids)} ({_usd(saving)}/month together)."
        )
    if chosen.mixed_prices:
        notes.append(
            f"Recommendations {_listed(list(chosen.mixed_prices))} span GPUs of different "
            "prices: their released GPU-hours use the mean price."
        )
    ups = recs.of_kind("scale_up")
    if ups:
        cost = -sum(r.expected_monthly_saving_usd for r in ups)
        notes.append(
            f"{len(ups)} scale-up recommendation{'' if len(ups) == 1 else 's'} would add "
            f"{_usd(cost)}/month of capacity; not netted against the savings."
        )
    if trends.forecast is not None and trends.forecast.note:
        notes.append(f"Forecast: {trends.forecast.note}")
    return notes


def _check_target(target_util_pct: float) -> None:
    if not (math.isfinite(target_util_pct) and 0.0 < target_util_pct <= 100.0):
        raise HistoryQueryError(
            f"target_util_pct must be above 0 and at most 100; got {target_util_pct}"
        )


def _no_data(store: Store, window: Window, scope: Scope) -> UnknownSubjectError:
    inventory = store.inventory(scope.cluster)
    if not inventory:
        return UnknownSubjectError(f"no GPU data in {window.label()}; the store holds none yet")
    first = min(g.first_seen_s for g in inventory)
    last = max(g.last_seen_s for g in inventory)
    history = Window(first, last) if last > first else None
    span = history.label() if history is not None else _utc(first, "%Y-%m-%d %H:%M")
    return UnknownSubjectError(
        f"no GPU data in {window.label()}; the history covers {span}: pick a window inside it"
    )


def build_report(
    store: Store,
    window: Window,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    idle_threshold_pct: float = 5.0,
    prices: PriceTable | None = None,
    target_util_pct: float = 80.0,
    clock: Callable[[], float] = time.time,
) -> Report:
    """The FinOps report of ``scope`` over ``window`` (see the module docstring).

    Args:
        store: the history to read (wrapped in a :class:`MemoStore` for the report).
        window: the time range; the drill-down compares it with the one just before it.
        scope: the part of the fleet.
        idle_threshold_pct: utilization below which GPU-time is idle.
        prices: USD per GPU-hour by model (default: public list prices, see ``pricing``).
        target_util_pct: the utilization the headline compares against.
        clock: epoch seconds now, for ``generated_s``.

    Raises:
        HistoryQueryError: a threshold outside 0..100 or a target outside (0, 100].
        UnknownSubjectError: a scope value with no data in the window, or no GPU data in the
            window at all (the message says what the history covers).
        StoreError: the store cannot answer.
    """
    _check_target(target_util_pct)
    memo = MemoStore(store)
    table = prices or DEFAULT_PRICE_TABLE
    util = analyze_utilization(
        memo, window, scope=scope, by="namespace", idle_threshold_pct=idle_threshold_pct
    )
    if util.gpus == 0 or util.gpu_hours <= 0:
        raise _no_data(memo, window, scope)
    waste = compute_waste(
        memo,
        window,
        scope=scope,
        by="namespace",
        idle_threshold_pct=idle_threshold_pct,
        prices=table,
    )
    trends = analyze_trends(
        memo,
        window,
        scope=scope,
        granularity="day",
        metric="utilization",
        idle_threshold_pct=idle_threshold_pct,
    )
    previous = Window(window.start_s - window.span_s, window.start_s)
    # A previous window history barely covers is not compared (see history_coverage): only
    # its totals are shown, so the tree below them is not built.
    covered, _ = history_coverage(memo, previous, scope)
    levels = WORKLOAD_KEYS if covered >= MIN_HISTORY_COVERAGE else ()
    drill: DrillDown | None = drill_down(
        memo, previous, window, scope=scope, metric="gpu_hours", levels=levels
    )
    if drill is not None and drill.root.gpu_hours_before <= 0:
        drill = None
    recs = recommend(memo, window, scope=scope, idle_threshold_pct=idle_threshold_pct, prices=table)
    inventory = {g.uuid: g for g in memo.inventory(scope.cluster)}
    mean_price = (
        (waste.allocated_cost_usd + waste.unallocated_cost_usd) / waste.gpu_hours
        if waste.gpu_hours > 0
        else table.fallback_usd_per_gpu_hour
    )
    chosen = _count(recs, inventory, table, waste.monthly_factor, mean_price)
    improvement = _improvement(util, waste, chosen)
    mean = util.mean_gpu_util_pct
    headline = Headline(
        mean_gpu_util_pct=mean,
        target_util_pct=target_util_pct,
        util_gap_pct_points=target_util_pct - mean if mean is not None else None,
        potential_monthly_saving_usd=improvement.monthly_saving_usd,
        recommendations=len(chosen.counted),
        idle_monthly_cost_usd=(
            waste.monthly_idle_allocated_cost_usd + waste.monthly_unallocated_cost_usd
        ),
        idle_allocated_monthly_cost_usd=waste.monthly_idle_allocated_cost_usd,
        unallocated_monthly_cost_usd=waste.monthly_unallocated_cost_usd,
        top_recommendation=_top(chosen),
        expected_improvement=improvement,
    )
    return Report(
        window=window,
        scope=scope,
        generated_s=clock(),
        target_util_pct=target_util_pct,
        idle_threshold_pct=idle_threshold_pct,
        headline=headline,
        utilization=util,
        waste=waste,
        trends=trends,
        drilldown=drill,
        recommendations=recs,
        definitions=_definitions(util, waste, trends, recs, target_util_pct, table),
        notes=tuple(_notes(util, waste, trends, drill, recs, chosen, table, scope)),
    )


def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: :func:`to_wire` of it, with ``headline.sentences``."""
    data: dict[str, Any] = to_wire(report)
    data["headline"]["sentences"] = list(report.headline.sentences())
    data["scope_label"] = report.scope_label
    return data
