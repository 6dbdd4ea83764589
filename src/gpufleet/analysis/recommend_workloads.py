"""Workload recommendation rules: ``reclaim_idle``, ``right_size`` and ``consolidate``.

See :mod:`gpufleet.analysis.recommend` for what each rule looks for. Each rule keeps the
workloads whose sums per GPU could pass its thresholds, then tests and measures those on
their hourly rows.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from gpufleet.analysis import recommend_types as t
from gpufleet.analysis.packing import Item, pack
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.recommend_common import (
    GIB,
    HOUR_S,
    Ctx,
    could_reach,
    could_stay_below,
    pct,
)
from gpufleet.analysis.recommend_types import Action, Recommendation, Target, confidence
from gpufleet.analysis.scope import weighted_percentile, workload_key
from gpufleet.analysis.waste import top_wasters
from gpufleet.store.base import WorkloadUsage, WorkloadUsageSums


def reclaim_idle(ctx: Ctx, prices: PriceTable) -> list[Recommendation]:
    maybe = []
    for key, per in ctx.workload_sums.items():
        held = sum(s.gpu_s for s in per)
        idle = sum(s.idle_gpu_s for s in per)
        if (
            idle > 0
            and could_reach(idle, t.RECLAIM_IDLE_FRACTION * held)
            and could_reach(idle, t.RECLAIM_MIN_IDLE_HOURS * HOUR_S)
        ):
            maybe.append(key)
    workloads = ctx.workload_rows(maybe)
    # The waste report's top wasters among them, from the rows compute_waste would read
    # (same window, scope and workload rows): a waster's figures are its own rows'.
    scoped = dataclasses.replace(
        ctx.scoped, workload_rows=[r for rows in workloads.values() for r in rows]
    )
    wasters = top_wasters(scoped, prices=prices, top_n=len(workloads))
    thr = ctx.scoped.stored_idle_threshold_pct  # what workload rows were classified at
    out = []
    for w in wasters:
        if w.idle_fraction < t.RECLAIM_IDLE_FRACTION or w.idle_gpu_hours < t.RECLAIM_MIN_IDLE_HOURS:
            continue
        key = f"{w.namespace}/{w.user}/{w.workload}"
        rows = [r for r in workloads.get(key, []) if r.gpu_s > 0]
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
    # Some GPU busy under the fraction of its time held, and some not.
    part = t.RIGHT_SIZE_BUSY_FRACTION
    maybe = []
    for key, sums in ctx.workload_sums.items():
        on = [s for s in sums if s.gpu_s > 0]
        if (
            key not in skip
            and len(on) >= 2
            and any(could_stay_below(s.busy_gpu_s, part * s.gpu_s) for s in on)
            and any(could_reach(s.busy_gpu_s, part * s.gpu_s) for s in on)
        ):
            maybe.append(key)
    out = []
    for key, rows in sorted(ctx.workload_rows(maybe).items()):
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


def _candidate(key: str, rows: list[WorkloadUsage], hours_in_window: float) -> _Cand | None:
    """``key`` as consolidate packs it, from its rows; None when it cannot be packed: not
    shareable, on several GPUs at once, without a memory peak or present too little."""
    kinds = {r.workload_kind for r in rows if r.workload_kind}
    per_hour: dict[float, set[str]] = {}
    for r in rows:
        per_hour.setdefault(r.hour_s, set()).add(r.uuid)
    one_gpu = max(len(u) for u in per_hour.values()) == 1
    peaks = [r.mem_peak_bytes for r in rows if r.mem_peak_bytes is not None]
    shareable = kinds <= t.SHAREABLE_KINDS if kinds else True
    presence = len(per_hour) / hours_in_window
    if not one_gpu or not shareable or not peaks or presence < t.CONSOLIDATE_MIN_PRESENCE:
        return None
    p95 = weighted_percentile(((r.util_sum / r.gpu_s, r.gpu_s) for r in rows if r.gpu_s > 0), 0.95)
    last = max(rows, key=lambda r: r.hour_s)
    held = sum(r.gpu_s for r in rows)
    return _Cand(key, last.uuid, max(peaks), p95 or 0.0, held, min(presence, 1.0))


def _last_gpu(key: str, per: list[WorkloadUsageSums], hours_in_window: float) -> str | None:
    """The GPU ``key`` held last when its sums show :func:`_candidate` would take it; ``""``
    when only its rows can tell (several kinds, or GPUs whose hours may overlap); None when
    its sums rule it out."""
    hours = sum(s.hours for s in per)  # at least its distinct hours
    if hours / hours_in_window < t.CONSOLIDATE_MIN_PRESENCE:
        return None
    kinds_min = min((s.workload_kind_min for s in per if s.workload_kind_min), default=None)
    kinds_max = max((s.workload_kind_max for s in per if s.workload_kind_max), default=None)
    if kinds_min is not None and not {kinds_min, kinds_max} <= t.SHAREABLE_KINDS:
        return None
    if all(s.mem_peak_bytes is None for s in per):
        return None
    settled = kinds_min == kinds_max and len({(s.namespace, s.user, s.workload) for s in per}) == 1
    spans = sorted((s.first_hour_s, s.last_hour_s) for s in per)
    if any(a[1] >= b[0] for a, b in itertools.pairwise(spans)):
        # Overlapping spans: more hours than the span has means two GPUs in one hour
        # (workload hours are whole hours); otherwise only the rows tell.
        if hours > (spans[-1][1] - spans[0][0]) / HOUR_S + 1:
            return None
        settled = False
    return max(per, key=lambda s: s.last_hour_s).uuid if settled else ""


def _foreign(ctx: Ctx, uuid: str, names: set[str], approx: tuple[float, float]) -> bool:
    """Whether others held ``uuid`` for at least the foreign share, from the sums
    ``approx`` (all workloads', the candidates') when they tell, else from its rows."""
    held_all, held_cand = approx
    share = t.CONSOLIDATE_FOREIGN_SHARE
    foreign = held_all - held_cand
    if not could_reach(foreign, share * held_all):
        return False
    if not could_stay_below(foreign, share * held_all):
        return True
    held_all = held_cand = 0.0
    for r in ctx.workload_reads.rows(uuids=(uuid,)):
        held_all += r.gpu_s
        if workload_key(r) in names:
            held_cand += r.gpu_s
    return held_all - held_cand >= share * held_all


def _groups(ctx: Ctx, skip: set[str]) -> dict[tuple[str, str, int], list[_Cand]]:
    """Candidates for packing per (cluster, model, memory) of the GPU each held last, only
    groups of more than one such GPU (one GPU cannot be packed onto fewer)."""
    hours_in_window = ctx.window.span_s / HOUR_S
    last: dict[str, str] = {}
    unsettled: list[str] = []
    for key, per in ctx.workload_sums.items():
        if key in skip:
            continue
        uuid = _last_gpu(key, per, hours_in_window)
        if uuid:
            last[key] = uuid
        elif uuid is not None:
            unsettled.append(key)
    for key, rows in ctx.workload_rows(unsettled).items():
        c = _candidate(key, rows, hours_in_window)
        if c is not None:
            last[key] = c.uuid
    names = set(last)
    held_all: dict[str, float] = {}
    held_cand: dict[str, float] = {}
    for key, per in ctx.workload_sums.items():
        for s in per:
            held_all[s.uuid] = held_all.get(s.uuid, 0.0) + s.gpu_s
            if key in names:
                held_cand[s.uuid] = held_cand.get(s.uuid, 0.0) + s.gpu_s
    foreign: dict[str, bool] = {}
    members: dict[tuple[str, str, int], set[str]] = {}
    for key, uuid in last.items():
        group = _group_of(ctx, uuid)
        if group is None:
            continue
        if uuid not in foreign:
            approx = (held_all.get(uuid, 0.0), held_cand.get(uuid, 0.0))
            foreign[uuid] = _foreign(ctx, uuid, names, approx)
        # A GPU others also use is not freed by moving these workloads off it.
        if not foreign[uuid]:
            members.setdefault(group, set()).add(key)
    packable = {k for keys in members.values() if len({last[k] for k in keys}) > 1 for k in keys}
    groups: dict[tuple[str, str, int], list[_Cand]] = {}
    for key, rows in ctx.workload_rows(packable).items():
        c = _candidate(key, rows, hours_in_window)
        group = _group_of(ctx, c.uuid) if c is not None else None
        if c is not None and group is not None:
            groups.setdefault(group, []).append(c)
    return groups


def _group_of(ctx: Ctx, uuid: str) -> tuple[str, str, int] | None:
    """(cluster, model, memory) of a GPU, None when its memory is not known."""
    inv = ctx.scoped.gpus.get(uuid)
    if inv is None or not inv.mem_total_bytes:
        return None
    return inv.cluster, inv.name or "unknown", inv.mem_total_bytes


def consolidate(ctx: Ctx, skip: set[str]) -> list[Recommendation]:
    groups = _groups(ctx, skip)
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
        gpus = ctx.gpus_of(freed)
        saving = sum(ctx.monthly_usd(u, gpus[u].seconds) for u in freed if u in gpus)
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
