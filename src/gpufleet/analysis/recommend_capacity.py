"""GPU-capacity recommendation rules: ``scale_down``, ``scale_up`` and ``mig_or_share``.

See :mod:`gpufleet.analysis.recommend` for what each rule looks for. Each rule keeps the GPUs
(or pools) whose window sums could pass its thresholds, then tests and measures those on
their rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gpufleet.analysis import recommend_types as t
from gpufleet.analysis.recommend_common import (
    GIB,
    HOUR_S,
    Ctx,
    Gpu,
    could_reach,
    could_stay_below,
    pct,
    sum_hists,
)
from gpufleet.analysis.recommend_types import Action, Recommendation, Target, confidence
from gpufleet.analysis.scope import hist_idle_s, hist_percentile
from gpufleet.store.base import UTIL_HIST_BINS


def scale_down(ctx: Ctx) -> list[Recommendation]:
    least = t.SCALE_DOWN_UNALLOCATED_FRACTION
    maybe = [
        s.uuid
        for s in ctx.gpu_sums.values()
        if s.seconds > 0 and could_reach(s.seconds - s.allocated_s, least * s.seconds)
    ]
    surplus: dict[tuple[str, str], list[Gpu]] = {}
    for g in ctx.gpus_of(maybe).values():
        free = g.seconds - g.allocated_s
        if g.seconds > 0 and free / g.seconds >= t.SCALE_DOWN_UNALLOCATED_FRACTION:
            inv = ctx.scoped.gpus[g.uuid]
            surplus.setdefault((inv.cluster, inv.node), []).append(g)
    out = []
    for (cluster, node), gs in sorted(surplus.items()):
        gs.sort(key=lambda g: ctx.scoped.gpus[g.uuid].index)
        on_node = [
            u for u, inv in ctx.scoped.gpus.items() if inv.node == node and inv.cluster == cluster
        ]
        whole = len(gs) == len(on_node)
        uuids = tuple(g.uuid for g in gs)
        labels = tuple(ctx.label(u) for u in uuids)
        fracs = [(g.seconds - g.allocated_s) / g.seconds for g in gs]
        evidence = [
            f"{ctx.label(g.uuid)}: unallocated {(g.seconds - g.allocated_s) / HOUR_S:.1f} h of "
            f"{g.seconds / HOUR_S:.1f} h ({100 * f:.1f} %), "
            f"mean utilization {g.mean_util:.1f} % {ctx.when}"
            for g, f in zip(gs, fracs, strict=True)
        ]
        if whole:
            evidence.append(f"all {len(gs)} GPUs of {node} qualify")
            action = Action("drain_node", {"cluster": cluster, "node": node})
            title = f"Drain {node}: its {len(gs)} GPUs sat unallocated {ctx.when}"
            title_zh = f"下线{node}：其{len(gs)}块GPU一直未分配{ctx.when_zh}"
        else:
            action = Action(
                "release_gpus", {"cluster": cluster, "node": node, "gpu_uuids": list(uuids)}
            )
            title = f"Release {len(gs)} of {len(on_node)} GPUs on {node}: unallocated {ctx.when}"
            title_zh = f"释放{node}上{len(on_node)}块GPU中的{len(gs)}块：一直未分配{ctx.when_zh}"
        saving = sum(ctx.monthly_usd(g.uuid, g.seconds) for g in gs)
        buckets = [r for g in gs for r in g.rows if r.seconds > 0]
        held = sum(
            1
            for r in buckets
            if (r.seconds - r.allocated_s) / r.seconds >= t.SCALE_DOWN_UNALLOCATED_FRACTION
        )
        conf = confidence(
            min(g.seconds for g in gs) / HOUR_S,
            (min(fracs) - t.SCALE_DOWN_UNALLOCATED_FRACTION)
            / (1 - t.SCALE_DOWN_UNALLOCATED_FRACTION),
            held / len(buckets) if buckets else 0.0,
        )
        metrics: dict[str, float | int | None] = {
            "gpus": len(gs),
            "gpu_hours": sum(g.seconds for g in gs) / HOUR_S,
            "unallocated_gpu_hours": sum(g.seconds - g.allocated_s for g in gs) / HOUR_S,
            "min_unallocated_fraction": min(fracs),
        }
        target = Target(cluster, node, uuids, labels)
        out.append(
            ctx.rec("scale_down", target, title, evidence, metrics, action, saving, conf, title_zh)
        )
    return out


@dataclass(slots=True)
class _Bucket:
    """One bucket of a pool: its GPU-time, allocated time, GPUs, memory-saturated GPUs and
    utilization histogram (counts are floats, as they are divided and compared as such)."""

    seconds: float = 0.0
    allocated_s: float = 0.0
    gpus: float = 0.0
    mem_saturated: float = 0.0
    rows: list[tuple[float, ...]] = field(default_factory=list)
    """The utilization histograms of its GPUs (summed only when the bucket needs a p95)."""


def scale_up(ctx: Ctx) -> list[Recommendation]:
    pools: dict[tuple[str, str], list[str]] = {}
    for u in ctx.gpu_sums:
        inv = ctx.scoped.gpus[u]
        pools.setdefault((inv.cluster, inv.name or "unknown"), []).append(u)
    out = []
    for (cluster, model), uuids in sorted(pools.items()):
        # Saturated buckets are among those allocated above the rate: too few, no pool.
        buckets = ctx.gpu_reads.buckets(uuids)
        rate = t.SCALE_UP_ALLOCATION_RATE
        busy = sum(
            1 for b in buckets if b.seconds > 0 and could_reach(b.allocated_s, rate * b.seconds)
        )
        if not buckets or busy / len(buckets) < t.SCALE_UP_HOURS_FRACTION:
            continue
        rec = _scale_up_pool(ctx, cluster, model, list(ctx.gpus_of(uuids).values()))
        if rec is not None:
            out.append(rec)
    return out


def _scale_up_pool(ctx: Ctx, cluster: str, model: str, gs: list[Gpu]) -> Recommendation | None:
    """``scale_up``'s test and recommendation for one pool, from its GPUs' rows."""
    per: dict[float, _Bucket] = {}
    mem_limit = t.SCALE_UP_MEM_PEAK_PCT
    for g in gs:
        for r in g.rows:
            acc = per.get(r.bucket_s)
            if acc is None:
                acc = per[r.bucket_s] = _Bucket()
            acc.seconds += r.seconds
            acc.allocated_s += r.allocated_s
            acc.gpus += 1
            used, total = r.mem_used_max_bytes, r.mem_total_bytes
            if used is not None and total and pct(used or 0, total or 0) >= mem_limit:
                acc.mem_saturated += 1
            acc.rows.append(r.util_hist_s)
    saturated = 0
    for acc in per.values():
        alloc = acc.allocated_s / acc.seconds if acc.seconds > 0 else 0.0
        if alloc <= t.SCALE_UP_ALLOCATION_RATE:
            continue  # not saturated whatever its utilization: no histogram needed
        hot = acc.mem_saturated >= 0.5 * acc.gpus
        if not hot:
            p95 = hist_percentile(sum_hists(acc.rows), 0.95) or 0.0
            hot = p95 > t.SCALE_UP_P95_UTIL_PCT
        saturated += hot
    seconds = sum(g.seconds for g in gs)
    if not per or seconds <= 0 or saturated / len(per) < t.SCALE_UP_HOURS_FRACTION:
        return None
    alloc_rate = sum(g.allocated_s for g in gs) / seconds
    hist = [sum(g.hist[b] for g in gs) for b in range(UTIL_HIST_BINS)]
    p95 = hist_percentile(hist, 0.95) or 0.0
    mem_sat = sum(
        1
        for g in gs
        if g.mem_peak and g.mem_total and pct(g.mem_peak, g.mem_total) >= t.SCALE_UP_MEM_PEAK_PCT
    )
    add = max(1, math.ceil(len(gs) * alloc_rate / t.SCALE_UP_TARGET_ALLOCATION - len(gs)))
    per_gpu = ctx.price(gs[0].uuid) * t.MONTH_H
    cost = add * per_gpu
    evidence = [
        f"{len(gs)} {model} GPUs in {cluster}: allocation rate {100 * alloc_rate:.1f} %, "
        f"p95 utilization {p95:.1f} % {ctx.when}",
        f"saturated (allocation > {100 * t.SCALE_UP_ALLOCATION_RATE:.0f} % with p95 "
        f"utilization > {t.SCALE_UP_P95_UTIL_PCT:.0f} % or memory at "
        f"{t.SCALE_UP_MEM_PEAK_PCT:.0f} %) in "
        f"{saturated} of {len(per)} buckets ({pct(saturated, len(per)):.0f} %)",
        f"memory peaked at or above {t.SCALE_UP_MEM_PEAK_PCT:.0f} % on {mem_sat} of {len(gs)} GPUs",
        f"{add} more GPU(s) bring allocation to {100 * t.SCALE_UP_TARGET_ALLOCATION:.0f} %: "
        f"${cost:,.2f} a month at ${per_gpu / t.MONTH_H:.2f} per GPU-hour",
        "queued demand is not recorded, so the GPU-hours that were short are not measured",
    ]
    margin = min(
        (alloc_rate - t.SCALE_UP_ALLOCATION_RATE) / (1 - t.SCALE_UP_ALLOCATION_RATE),
        max((p95 - t.SCALE_UP_P95_UTIL_PCT) / (100 - t.SCALE_UP_P95_UTIL_PCT), mem_sat / len(gs)),
    )
    conf = confidence(seconds / len(gs) / HOUR_S, margin, saturated / len(per))
    metrics: dict[str, float | int | None] = {
        "gpus": len(gs),
        "allocation_rate": alloc_rate,
        "p95_gpu_util_pct": p95,
        "saturated_buckets": saturated,
        "buckets": len(per),
        "mem_saturated_gpus": mem_sat,
        "add_gpus": add,
        "shortfall_gpu_hours": None,
    }
    action = Action("add_capacity", {"cluster": cluster, "gpu_model": model, "gpus": add})
    title = f"Add {add} {model} GPU(s) to {cluster}: saturated {ctx.when}"
    title_zh = f"为{cluster}增加{add}块{model} GPU：资源饱和{ctx.when_zh}"
    target = Target(cluster, gpu_model=model, gpu_uuids=tuple(sorted(g.uuid for g in gs)))
    return ctx.rec("scale_up", target, title, evidence, metrics, action, -cost, conf, title_zh)


def _mig_profile(ctx: Ctx, g: Gpu, p95: float) -> tuple[str, int] | None:
    """(profile, compute sevenths) of the smallest MIG profile holding the GPU's peaks."""
    inv = ctx.scoped.gpus[g.uuid]
    table = t.mig_table(inv.name, g.mem_total)
    if table is None or not g.mem_total:
        return None
    need_mem = (g.mem_peak or 0) * (1 + t.PACKING_HEADROOM)
    need_util = p95 * (1 + t.PACKING_HEADROOM)
    for p in t.MIG_PROFILES[table]:
        if (
            p.memory_eighths / 8 * g.mem_total >= need_mem
            and 100 * p.compute_sevenths / 7 >= need_util
        ):
            return p.name, p.compute_sevenths
    return None


def _mig_candidates(ctx: Ctx) -> list[str]:
    """GPUs whose sums could pass ``mig_or_share``'s test: allocation and memory first, then
    utilization from the histograms of those alone (histograms are the costly part to add).

    The p95 is under the threshold only if at least 95 % of the time is below it, and a GPU's
    memory total (its latest reading) is at most the largest one.
    """
    light = [
        s.uuid
        for s in ctx.gpu_sums.values()
        if s.seconds > 0
        and could_reach(s.allocated_s, t.MIG_MIN_ALLOCATION * s.seconds)
        and s.mem_total_max_bytes
        and s.mem_used_max_bytes is not None
        and could_stay_below(s.mem_used_max_bytes, t.MIG_MEM_PEAK_FRACTION * s.mem_total_max_bytes)
    ]
    if not light:
        return []
    out = []
    for s in ctx.gpu_reads.sums(light, hist=True):
        total = sum(s.util_hist_s)
        if (
            total > 0
            and could_reach(hist_idle_s(s.util_hist_s, t.MIG_P95_UTIL_PCT), 0.95 * total)
            and could_reach(s.util_sum, ctx.threshold * total)
        ):
            out.append(s.uuid)
    return out


def mig_or_share(ctx: Ctx) -> list[Recommendation]:
    out = []
    for g in sorted(ctx.gpus_of(_mig_candidates(ctx)).values(), key=lambda g: ctx.label(g.uuid)):
        if g.seconds <= 0 or g.allocated_s / g.seconds < t.MIG_MIN_ALLOCATION or not g.mem_total:
            continue
        p95 = hist_percentile(g.hist, 0.95)
        mem_frac = (g.mem_peak or 0) / g.mem_total
        small = g.mem_peak is not None and mem_frac < t.MIG_MEM_PEAK_FRACTION
        # Below the idle threshold on average it is reclaim_idle's, not a sharing candidate.
        if p95 is None or not small or p95 >= t.MIG_P95_UTIL_PCT or g.mean_util < ctx.threshold:
            continue
        inv = ctx.scoped.gpus[g.uuid]
        profile = _mig_profile(ctx, g, p95)
        cost = ctx.monthly_usd(g.uuid, g.seconds)
        evidence = [
            f"{ctx.label(g.uuid)}: peak memory {(g.mem_peak or 0) / GIB:.1f} GiB of "
            f"{g.mem_total / GIB:.1f} GiB ({100 * mem_frac:.1f} %), p95 utilization {p95:.1f} %, "
            f"mean {g.mean_util:.1f} %, allocated {pct(g.allocated_s, g.seconds):.1f} % of "
            f"{g.seconds / HOUR_S:.1f} h {ctx.when}",
        ]
        if profile is not None:
            name, sevenths = profile
            saving = cost * (7 - sevenths) / 7
            evidence.append(
                f"fits MIG {name} ({sevenths}/7 of the SMs) with "
                f"{100 * t.PACKING_HEADROOM:.0f} % headroom, "
                f"freeing {7 - sevenths}/7 of the GPU for other work"
            )
            action = Action(
                "enable_mig",
                {"cluster": inv.cluster, "node": inv.node, "gpu_uuid": g.uuid, "profile": name},
            )
            title = f"Run the work on {ctx.label(g.uuid)} in a MIG {name} instance"
            title_zh = f"将{ctx.label(g.uuid)}上的工作放到MIG {name}实例中运行"
        else:
            used = max(mem_frac, p95 / 100) * (1 + t.PACKING_HEADROOM)
            saving = cost * max(0.0, 1 - used)
            evidence.append(
                f"{inv.name or 'this model'} has no MIG profile table here; its work uses "
                f"{100 * used:.0f} % of the GPU with headroom, the rest can be time-sliced"
            )
            action = Action(
                "enable_time_slicing",
                {"cluster": inv.cluster, "node": inv.node, "gpu_uuid": g.uuid},
            )
            title = f"Share {ctx.label(g.uuid)} by time-slicing"
            title_zh = f"通过时间片共享{ctx.label(g.uuid)}"
        quiet = sum(
            1
            for r in g.rows
            if (q := hist_percentile(r.util_hist_s, 0.95)) is not None and q < t.MIG_P95_UTIL_PCT
        )
        margin = min(1 - mem_frac / t.MIG_MEM_PEAK_FRACTION, 1 - p95 / t.MIG_P95_UTIL_PCT)
        conf = confidence(g.seconds / HOUR_S, margin, quiet / len(g.rows))
        metrics: dict[str, float | int | None] = {
            "mem_peak_bytes": g.mem_peak,
            "mem_total_bytes": g.mem_total,
            "p95_gpu_util_pct": p95,
            "mean_gpu_util_pct": g.mean_util,
            "allocation_rate": g.allocated_s / g.seconds,
        }
        target = Target(inv.cluster, inv.node, (g.uuid,), (ctx.label(g.uuid),), gpu_model=inv.name)
        out.append(
            ctx.rec(
                "mig_or_share", target, title, evidence, metrics, action, saving, conf, title_zh
            )
        )
    return out
