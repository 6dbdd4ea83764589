"""Workload recommendation rules: ``reclaim_idle``, ``right_size`` and ``consolidate``.

See :mod:`gpufleet.analysis.recommend` for what each rule looks for.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpufleet.analysis import recommend_types as t
from gpufleet.analysis.packing import Item, pack
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.recommend_common import GIB, HOUR_S, Ctx, pct
from gpufleet.analysis.recommend_types import Action, Recommendation, Target, confidence
from gpufleet.analysis.scope import weighted_percentile, workload_key
from gpufleet.analysis.waste import top_wasters


def reclaim_idle(ctx: Ctx, prices: PriceTable) -> list[Recommendation]:
    # The waste report's top wasters, from the rows the context already holds (the ones
    # compute_waste would read: same window, scope and workload rows).
    wasters = top_wasters(ctx.scoped, prices=prices, top_n=len(ctx.workloads))
    thr = ctx.scoped.stored_idle_threshold_pct  # what workload rows were classified at
    out = []
    for w in wasters:
        if w.idle_fraction < t.RECLAIM_IDLE_FRACTION or w.idle_gpu_hours < t.RECLAIM_MIN_IDLE_HOURS:
            continue
        key = f"{w.namespace}/{w.user}/{w.workload}"
        rows = [r for r in ctx.workloads.get(key, []) if r.gpu_s > 0]
        idle_hours = sum(
            1 for r in rows if (r.gpu_s - r.busy_gpu_s) / r.gpu_s >= t.RECLAIM_IDLE_FRACTION
        )
        mean = w.mean_gpu_util_pct or 0.0
        evidence = [
            f"{key} held {', '.join(w.gpus)} for {w.held_gpu_hours:.1f} GPU-h {ctx.when}; "
            f"{w.idle_gpu_hours:.1f} GPU-h ({100 * w.idle_fraction:.1f} %) below {thr:g} % "
            f"utilization, mean utilization {mean:.1f} %",
            f"idle cost ${w.idle_cost_usd:,.2f} in the window, "
            f"${w.monthly_idle_cost_usd:,.2f} over 30 days",
        ]
        if w.mem_held_peak_bytes is not None:
            share = (
                f" ({w.mem_held_peak_pct:.1f} % of the GPU)"
                if w.mem_held_peak_pct is not None
                else ""
            )
            evidence.append(f"holds up to {w.mem_held_peak_bytes / GIB:.1f} GiB of memory{share}")
        conf = confidence(
            w.held_gpu_hours / len(w.gpus),
            1 - mean / thr if thr > 0 else 0.0,
            idle_hours / len(rows) if rows else 0.0,
        )
        metrics: dict[str, float | int | None] = {
            "held_gpu_hours": w.held_gpu_hours,
            "idle_gpu_hours": w.idle_gpu_hours,
            "idle_fraction": w.idle_fraction,
            "mean_gpu_util_pct": w.mean_gpu_util_pct,
            "idle_cost_usd": w.idle_cost_usd,
            "mem_held_peak_bytes": w.mem_held_peak_bytes,
        }
        action = Action(
            "notify_owner",
            {
                "namespace": w.namespace,
                "user": w.user,
                "workload": w.workload,
                "gpu_uuids": list(w.gpu_uuids),
                "then": "reclaim",
            },
        )
        title = (
            f"{key} holds {len(w.gpus)} GPU(s) idle: {w.idle_gpu_hours:.0f} idle GPU-h {ctx.when}"
        )
        title_zh = (
            f"{key}占用{len(w.gpus)}块GPU但空闲：空闲{w.idle_gpu_hours:.0f} GPU时{ctx.when_zh}"
        )
        cluster = next((r.cluster for r in rows), ctx.scoped.scope.cluster or "")
        target = Target(
            cluster,
            w.nodes[0] if len(w.nodes) == 1 else None,
            w.gpu_uuids,
            w.gpus,
            w.namespace,
            w.user,
            w.workload,
        )
        saving = w.monthly_idle_cost_usd
        out.append(
            ctx.rec(
                "reclaim_idle", target, title, evidence, metrics, action, saving, conf, title_zh
            )
        )
    return out


def right_size(ctx: Ctx, skip: set[str]) -> list[Recommendation]:
    out = []
    for key, rows in sorted(ctx.workloads.items()):
        if key in skip:
            continue
        per: dict[str, list[float]] = {}
        for r in rows:
            acc = per.setdefault(r.uuid, [0.0, 0.0])
            acc[0] += r.gpu_s
            acc[1] += r.busy_gpu_s
        held = {u: v for u, v in per.items() if v[0] > 0}
        idle = sorted(u for u, (s, b) in held.items() if b / s < t.RIGHT_SIZE_BUSY_FRACTION)
        if len(held) < 2 or not idle or len(idle) == len(held):
            continue
        first = rows[0]
        busy = sorted(set(held) - set(idle), key=ctx.label)
        evidence = [
            f"{ctx.label(u)}: busy {held[u][1] / HOUR_S:.1f} h of {held[u][0] / HOUR_S:.1f} h held "
            f"({pct(held[u][1], held[u][0]):.1f} %) {ctx.when}"
            for u in sorted(held, key=ctx.label)
        ]
        evidence.append(
            f"{len(idle)} of its {len(held)} GPUs were busy under "
            f"{100 * t.RIGHT_SIZE_BUSY_FRACTION:.0f} % of the time it held them"
        )
        saving = sum(ctx.monthly_usd(u, held[u][0]) for u in idle)
        idle_rows = [r for r in rows if r.uuid in idle and r.gpu_s > 0]
        quiet = sum(1 for r in idle_rows if r.busy_gpu_s / r.gpu_s < t.RIGHT_SIZE_BUSY_FRACTION)
        worst = max(held[u][1] / held[u][0] for u in idle)
        conf = confidence(
            min(held[u][0] for u in idle) / HOUR_S,
            1 - worst / t.RIGHT_SIZE_BUSY_FRACTION,
            quiet / len(idle_rows) if idle_rows else 0.0,
        )
        metrics: dict[str, float | int | None] = {
            "gpus_held": len(held),
            "gpus_needed": len(busy),
            "idle_gpu_hours": sum(held[u][0] - held[u][1] for u in idle) / HOUR_S,
            "max_idle_gpu_busy_fraction": worst,
        }
        action = Action(
            "resize_workload",
            {
                "namespace": first.namespace,
                "user": first.user,
                "workload": first.workload,
                "from_gpus": len(held),
                "to_gpus": len(busy),
                "release_gpu_uuids": idle,
            },
        )
        title = f"Resize {key} from {len(held)} to {len(busy)} GPU(s)"
        title_zh = f"将{key}从{len(held)}块GPU缩减到{len(busy)}块"
        labels = tuple(ctx.label(u) for u in idle)
        target = Target(
            first.cluster, None, tuple(idle), labels, first.namespace, first.user, first.workload
        )
        out.append(
            ctx.rec("right_size", target, title, evidence, metrics, action, saving, conf, title_zh)
        )
    return out


@dataclass(frozen=True, slots=True)
class _Cand:
    key: str
    uuid: str
    """The GPU it held last."""
    mem_peak: int
    util_p95: float
    held_s: float
    presence: float


def _candidates(ctx: Ctx, skip: set[str]) -> list[_Cand]:
    hours_in_window = ctx.window.span_s / HOUR_S
    out = []
    for key, rows in ctx.workloads.items():
        kinds = {r.workload_kind for r in rows if r.workload_kind}
        per_hour: dict[float, set[str]] = {}
        for r in rows:
            per_hour.setdefault(r.hour_s, set()).add(r.uuid)
        one_gpu = max(len(u) for u in per_hour.values()) == 1
        peaks = [r.mem_peak_bytes for r in rows if r.mem_peak_bytes is not None]
        shareable = kinds <= t.SHAREABLE_KINDS if kinds else True
        presence = len(per_hour) / hours_in_window
        if (
            key in skip
            or not one_gpu
            or not shareable
            or not peaks
            or presence < t.CONSOLIDATE_MIN_PRESENCE
        ):
            continue
        p95 = weighted_percentile(
            ((r.util_sum / r.gpu_s, r.gpu_s) for r in rows if r.gpu_s > 0), 0.95
        )
        last = max(rows, key=lambda r: r.hour_s)
        held = sum(r.gpu_s for r in rows)
        out.append(_Cand(key, last.uuid, max(peaks), p95 or 0.0, held, min(presence, 1.0)))
    return out


def consolidate(ctx: Ctx, skip: set[str]) -> list[Recommendation]:
    cands = _candidates(ctx, skip)
    names = {c.key for c in cands}
    held_all: dict[str, float] = {}
    held_cand: dict[str, float] = {}
    for r in ctx.scoped.workload_rows:
        held_all[r.uuid] = held_all.get(r.uuid, 0.0) + r.gpu_s
        if workload_key(r) in names:
            held_cand[r.uuid] = held_cand.get(r.uuid, 0.0) + r.gpu_s
    groups: dict[tuple[str, str, int], list[_Cand]] = {}
    for c in cands:
        inv = ctx.scoped.gpus.get(c.uuid)
        foreign = held_all.get(c.uuid, 0.0) - held_cand.get(c.uuid, 0.0)
        # A GPU others also use is not freed by moving these workloads off it.
        if (
            inv is None
            or not inv.mem_total_bytes
            or foreign >= t.CONSOLIDATE_FOREIGN_SHARE * held_all[c.uuid]
        ):
            continue
        groups.setdefault((inv.cluster, inv.name or "unknown", inv.mem_total_bytes), []).append(c)
    out = []
    for (cluster, model, mem_total), cs in sorted(groups.items()):
        sources = sorted({c.uuid for c in cs}, key=ctx.label)
        by_key = {c.key: c for c in cs}
        packing = pack(
            [Item(c.key, c.mem_peak, c.util_p95) for c in cs],
            mem_total,
            headroom=t.PACKING_HEADROOM,
        )
        after = len(packing.bins) + len({by_key[i.name].uuid for i in packing.unplaced})
        if after >= len(sources):
            continue
        taken = {by_key[i.name].uuid for i in packing.unplaced}
        plan: list[tuple[str, str]] = []  # (workload, target GPU)
        for b in packing.bins:
            # Keep each bin on the GPU already holding most of its bytes: fewest bytes moved.
            mine: dict[str, int] = {}
            for i in b.items:
                mine[by_key[i.name].uuid] = mine.get(by_key[i.name].uuid, 0) + i.mem_bytes
            free = [
                u for u in sorted(mine, key=lambda u: (-mine[u], ctx.label(u))) if u not in taken
            ]
            dest = free[0] if free else next(u for u in sources if u not in taken)
            taken.add(dest)
            plan += [(i.name, dest) for i in b.items]
        freed = [u for u in sources if u not in taken]
        moves = [(k, by_key[k].uuid, d) for k, d in plan if by_key[k].uuid != d]
        evidence = [
            f"{len(cs)} shareable workloads held {len(sources)} {model} GPUs {ctx.when}; "
            f"their measured peaks fit on {after} with {100 * t.PACKING_HEADROOM:.0f} % headroom "
            f"(lower bound {packing.lower_bound})",
        ]
        evidence += [
            f"{k}: peak {by_key[k].mem_peak / GIB:.1f} GiB, p95 hourly utilization "
            f"{by_key[k].util_p95:.1f} %, move {ctx.label(src)} -> {ctx.label(dst)}"
            for k, src, dst in moves
        ]
        evidence.append(f"frees {', '.join(ctx.label(u) for u in freed)}")
        saving = sum(ctx.monthly_usd(u, ctx.gpus[u].seconds) for u in freed if u in ctx.gpus)
        conf = confidence(
            sum(c.held_s for c in cs) / len(cs) / HOUR_S,
            len(freed) / len(sources),
            sum(c.presence for c in cs) / len(cs),
        )
        metrics: dict[str, float | int | None] = {
            "workloads": len(cs),
            "gpus_before": len(sources),
            "gpus_after": after,
            "gpus_freed": len(freed),
            "lower_bound": packing.lower_bound,
        }
        action = Action(
            "move_workload",
            {
                "moves": [
                    {"workload": k, "from_gpu_uuid": s, "to_gpu_uuid": d} for k, s, d in moves
                ],
                "release_gpu_uuids": freed,
            },
        )
        title = f"Consolidate {len(cs)} workloads from {len(sources)} to {after} {model} GPUs"
        title_zh = f"将{len(cs)}个工作负载从{len(sources)}块{model} GPU合并到{after}块"
        target = Target(
            cluster, None, tuple(sources), tuple(ctx.label(u) for u in sources), gpu_model=model
        )
        out.append(
            ctx.rec("consolidate", target, title, evidence, metrics, action, saving, conf, title_zh)
        )
    return out
