"""What to change in a fleet, from what was measured (seed 000 sections 4.4 and 5).

:func:`recommend` reads one window of history and returns :class:`RecommendationSet`: each
recommendation names its target, the measured evidence (numbers and the window), a
machine-readable action for an executor, the expected saving over 30 days from the price
table, and a confidence with its basis (see :mod:`gpufleet.analysis.recommend_types`, which
also holds every threshold). Definitions are DESIGN.md's: allocated = holding a compute
process, idle = utilization below the idle threshold.

The rules, one per kind:

* ``scale_down``: a GPU nobody held for at least 90 % of its observed time is surplus; a node
  is drained only when every GPU of it is surplus, else its surplus GPUs are released. GPUs
  held while idle are ``reclaim_idle``'s: their owner has to let go first.
* ``scale_up``: per cluster and GPU model, hours with allocation above 90 % and either p95
  utilization above 90 % or at least half the GPUs at 95 % memory, in at least half the hours.
  Capacity is sized to bring allocation to 80 %; its cost is a negative saving. Demand that
  waited in a queue is not recorded, so the GPU-hours short are reported as not measured.
* ``consolidate``: shareable workloads (inference, notebook, batch, or unknown kind on one
  GPU at a time; never training) present for half the window are packed by
  :func:`~gpufleet.analysis.packing.pack` on peak memory and the p95 of their hourly mean
  utilization (workload rows have no histogram), with 10 % headroom.
* ``mig_or_share``: a GPU allocated half the time whose memory peaked below half and whose
  p95 utilization stayed below 30 % (yet above idle on average) gets the smallest MIG profile
  that holds both, or time-slicing where the model has no MIG table.
* ``right_size``: a workload on several GPUs, some busy and some busy under 10 % of the time
  it held them, is resized to the busy ones.
* ``reclaim_idle``: the waste report's top wasters idle for at least 80 % of their held time
  and 4 GPU-hours: the owner is notified, with the idle GPU-hours and their cost.

Workload-level scopes (namespace, user, workload) own no capacity, so they get only the
workload kinds (consolidate, right_size, reclaim_idle).

The capacity rules live in :mod:`~gpufleet.analysis.recommend_capacity`, the workload rules
in :mod:`~gpufleet.analysis.recommend_workloads`, and the context they share in
:mod:`~gpufleet.analysis.recommend_common`. A rule reads window sums first (added up by the
store when it can, see :mod:`~gpufleet.analysis.recommend_reads`) and then the rows of the
few GPUs and workloads that could pass its thresholds: its findings and numbers are those
every row of the window would give, from a fraction of the rows.
"""

from __future__ import annotations

from collections.abc import Collection

from gpufleet.analysis import recommend_types as t
from gpufleet.analysis.history import HistoryQueryError
from gpufleet.analysis.pricing import DEFAULT_PRICE_TABLE, PriceTable
from gpufleet.analysis.recommend_capacity import mig_or_share, scale_down, scale_up
from gpufleet.analysis.recommend_common import Ctx
from gpufleet.analysis.recommend_reads import open_reads
from gpufleet.analysis.recommend_types import Recommendation, RecommendationSet
from gpufleet.analysis.recommend_workloads import consolidate, reclaim_idle, right_size
from gpufleet.analysis.scope import Scope, Window
from gpufleet.store._gc import gc_paused
from gpufleet.store.base import Store


@gc_paused()
def recommend(
    store: Store,
    window: Window,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    idle_threshold_pct: float = 5.0,
    prices: PriceTable | None = None,
    kinds: Collection[str] | None = None,
) -> RecommendationSet:
    """Recommendations for ``scope`` over ``window``, highest expected saving first.

    Args:
        store: the history to read.
        window: the time range the evidence comes from.
        scope: the part of the fleet.
        idle_threshold_pct: utilization below which GPU-time is idle (GPU-level rules; the
            workload rules use the store's threshold, as the waste report does).
        prices: USD per GPU-hour by model (default: public list prices, see ``pricing``).
        kinds: the kinds to look for (default: all of ``recommend_types.KINDS``).

    Raises:
        HistoryQueryError: an unknown kind or a threshold outside 0..100.
        UnknownSubjectError: a scope value with no data in the window.
        StoreError: the store cannot answer.
    """
    if not 0.0 <= idle_threshold_pct <= 100.0:
        raise HistoryQueryError(
            f"idle_threshold_pct must be between 0 and 100; got {idle_threshold_pct}"
        )
    wanted = tuple(t.KINDS if kinds is None else kinds)
    unknown = sorted(set(wanted) - set(t.KINDS))
    if unknown:
        raise HistoryQueryError(
            f"unknown recommendation kind(s) {', '.join(unknown)}; use: {', '.join(t.KINDS)}"
        )
    table = prices or DEFAULT_PRICE_TABLE
    scoped, gpu_reads, workload_reads = open_reads(store, window, scope)
    ctx = Ctx(scoped, gpu_reads, workload_reads, table, idle_threshold_pct)
    found: list[Recommendation] = []
    gpu_level = not scope.workload_level
    if gpu_level and "scale_down" in wanted:
        found += scale_down(ctx)
    if gpu_level and "scale_up" in wanted:
        found += scale_up(ctx)
    if gpu_level and "mig_or_share" in wanted:
        found += mig_or_share(ctx)
    # Reclaim runs first among workload rules: an idle holder is released, not moved or resized.
    reclaim = reclaim_idle(ctx, table)
    idle = {f"{r.target.namespace}/{r.target.user}/{r.target.workload}" for r in reclaim}
    if "reclaim_idle" in wanted:
        found += reclaim
    if "right_size" in wanted:
        found += right_size(ctx, idle)
    if "consolidate" in wanted:
        found += consolidate(ctx, idle)
    found.sort(key=lambda r: (-r.expected_monthly_saving_usd, r.kind, r.id))
    thresholds = {
        name.lower(): float(value)
        for name, value in vars(t).items()
        if name.isupper() and isinstance(value, int | float) and not isinstance(value, bool)
    }
    return RecommendationSet(
        window=window,
        scope=scope,
        idle_threshold_pct=idle_threshold_pct,
        kinds=wanted,
        recommendations=tuple(found),
        total_monthly_saving_usd=sum(max(r.expected_monthly_saving_usd, 0.0) for r in found),
        prices_usd_per_gpu_hour=dict(sorted(ctx.used.items())),
        fallback_models=tuple(sorted(ctx.fallback)),
        thresholds={**thresholds, "idle_threshold_pct": idle_threshold_pct},
    )
