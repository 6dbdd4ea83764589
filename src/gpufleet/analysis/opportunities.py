"""Where GPUs are held but not used, and what to do about it, in one answer.

``GET /analysis/opportunities`` and ``gpufleet analyze opportunities`` show: workloads whose
mean utilization is under the under-utilized threshold, the workloads that hold GPUs idle
(highest idle cost first), and the recommendations that act on them (consolidate, share or
MIG, right-size, reclaim) with their expected monthly saving. Every number comes from
:func:`~gpufleet.analysis.utilization.analyze_utilization`,
:func:`~gpufleet.analysis.waste.compute_waste` and
:func:`~gpufleet.analysis.recommend.recommend` over one read of the window's rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpufleet.analysis.memo import MemoStore
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.recommend import recommend
from gpufleet.analysis.recommend_types import Recommendation
from gpufleet.analysis.scope import Scope, Window
from gpufleet.analysis.utilization import GroupUsage, UtilEntity, analyze_utilization
from gpufleet.analysis.waste import Waster, compute_waste
from gpufleet.store.base import Store

OPPORTUNITY_KINDS: tuple[str, ...] = ("consolidate", "mig_or_share", "right_size", "reclaim_idle")
"""Recommendation kinds that act on held-but-unused GPUs."""


@dataclass(frozen=True, slots=True)
class Opportunities:
    """Under-utilized workloads, idle holders and the recommendations for them."""

    window: Window
    scope: Scope
    idle_threshold_pct: float
    under_utilized_pct: float
    under_utilized_workloads: tuple[GroupUsage, ...]
    """Workloads with mean utilization below ``under_utilized_pct``, lowest first."""
    under_utilized_gpus: tuple[UtilEntity, ...]
    """GPUs (workloads, for a namespace/user/workload scope) below it, lowest first."""
    top_wasters: tuple[Waster, ...]
    idle_allocated_gpu_hours: float
    idle_allocated_cost_usd: float
    monthly_idle_allocated_cost_usd: float
    recommendations: tuple[Recommendation, ...]
    potential_monthly_saving_usd: float


def find_opportunities(
    store: Store,
    window: Window,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    idle_threshold_pct: float = 5.0,
    under_pct: float = 20.0,
    prices: PriceTable | None = None,
    top_n: int = 10,
) -> Opportunities:
    """Opportunities of ``scope`` over ``window`` (see the module docstring).

    Raises:
        HistoryQueryError: a threshold outside 0..100.
        UnknownSubjectError: a scope value with no data in the window.
        StoreError: the store cannot answer.
    """
    memo = MemoStore(store)
    util = analyze_utilization(
        memo,
        window,
        scope=scope,
        by="workload",
        idle_threshold_pct=idle_threshold_pct,
        under_pct=under_pct,
    )
    spent = compute_waste(
        memo,
        window,
        scope=scope,
        by=None,
        idle_threshold_pct=idle_threshold_pct,
        prices=prices,
        top_n=top_n,
    )
    found = recommend(
        memo,
        window,
        scope=scope,
        idle_threshold_pct=idle_threshold_pct,
        prices=prices,
        kinds=OPPORTUNITY_KINDS,
    )
    return Opportunities(
        window=window,
        scope=scope,
        idle_threshold_pct=idle_threshold_pct,
        under_utilized_pct=util.under_pct,
        under_utilized_workloads=tuple(
            sorted(
                (
                    g
                    for g in util.groups
                    if g.mean_gpu_util_pct is not None and g.mean_gpu_util_pct < under_pct
                ),
                key=lambda g: (g.mean_gpu_util_pct or 0.0, g.key),
            )
        ),
        under_utilized_gpus=util.under_utilized,
        top_wasters=spent.top_wasters,
        idle_allocated_gpu_hours=spent.idle_allocated_gpu_hours,
        idle_allocated_cost_usd=spent.idle_allocated_cost_usd,
        monthly_idle_allocated_cost_usd=spent.monthly_idle_allocated_cost_usd,
        recommendations=found.recommendations,
        potential_monthly_saving_usd=found.total_monthly_saving_usd,
    )
