"""Waste, recommendations and alerts in words, English or Chinese, from the tool results
only (``get_gpu_waste``, ``get_recommendations``, ``get_alerts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpufleet.analyst.answer import (
    HOLDERS,
    Result,
    capitalized,
    frac_pct,
    in_window,
    num,
    over,
    usd,
)


def waste(r: Result, label: str, name: str, zh: bool) -> tuple[str, list[str]]:
    if not r.get("gpu_hours"):
        return (
            (f"{label}{name}没有GPU数据，无法计算浪费。", [])
            if zh
            else (f"There is no GPU data for {name} {in_window(label)}, so no waste to count.", [])
        )
    # Unallocated time belongs to no namespace: a namespace's (user's, workload's) waste has
    # none to report.
    held_only = any(k in r.get("scope", {}) for k in HOLDERS)
    if zh:
        unallocated = (
            ""
            if held_only
            else f"另有{num(r['unallocated_gpu_hours'])}个未分配的GPU时"
            f"（{usd(r['unallocated_cost_usd'])}）。"
        )
        answer = (
            f"{label}{name}已分配但空闲的GPU时数为{num(r['idle_allocated_gpu_hours'])}，"
            f"成本{usd(r['idle_allocated_cost_usd'])}（折合每月{usd(r['monthly_idle_allocated_cost_usd'])}）"
            f"{'；' + unallocated if unallocated else '。'}"
            f"效率（使用/分配）为{frac_pct(r['efficiency'], True)}。"
        )
    else:
        unallocated = (
            ""
            if held_only
            else f"; another {num(r['unallocated_gpu_hours'])} GPU-hours sat unallocated "
            f"({usd(r['unallocated_cost_usd'])})"
        )
        answer = (
            f"{over(label)}, {name} had {num(r['idle_allocated_gpu_hours'])} GPU-hours allocated "
            f"but idle, costing {usd(r['idle_allocated_cost_usd'])} "
            f"({usd(r['monthly_idle_allocated_cost_usd'])} a month at this rate){unallocated}. "
            f"Efficiency (used / allocated) was {frac_pct(r['efficiency'])}."
        )
    coverage = r.get("history_coverage")
    if coverage is not None and coverage < 0.95:
        # "last month" with a few days of history: the totals are of those days only.
        covered, hours = num(r.get("covered_hours"), 0), num(r["window"]["hours"], 0)
        answer += (
            f"（历史数据只覆盖了这个时间范围{hours}小时中的{covered}小时，"
            f"即{frac_pct(coverage, True)}，以上合计只含这部分。）"
            if zh
            else f" History covers only {covered} of the window's {hours} hours "
            f"({frac_pct(coverage)}); the totals are of that part."
        )
    insights = []
    for g in r.get("groups", [])[:3]:
        insights.append(
            f"{g['key']}：空闲已分配{num(g['idle_allocated_gpu_hours'])}GPU时（{usd(g['idle_allocated_cost_usd'])}）"
            if zh
            else f"{g['key']}: {num(g['idle_allocated_gpu_hours'])} idle allocated GPU-hours "
            f"({usd(g['idle_allocated_cost_usd'])})."
        )
    listed = (
        {str(g["key"]) for g in r.get("groups", [])[:3]} if r.get("by") == "workload" else set()
    )
    wasters = [
        w
        for w in r.get("top_wasters", [])
        if f"{w['namespace']}/{w['user']}/{w['workload']}" not in listed
        and w["workload"] not in listed
    ]
    for w in wasters[:3]:
        insights.append(
            f"{w['namespace']}/{w['user']}/{w['workload']} 空闲{num(w['idle_gpu_hours'])}GPU时"
            f"（{usd(w['idle_cost_usd'])}）"
            if zh
            else f"{w['namespace']}/{w['user']}/{w['workload']} held GPUs idle for "
            f"{num(w['idle_gpu_hours'])} GPU-hours ({usd(w['idle_cost_usd'])})."
        )
    return answer, insights


def waste_ranking(r: Result, label: str, name: str, zh: bool) -> tuple[str, list[str]]:
    """The groups of a waste result ranked by idle allocated GPU-hours (most first; the
    result orders them by idle cost, which the price table ties to them)."""
    level = {"namespace": "命名空间", "user": "用户", "workload": "工作负载", "node": "节点"}
    by = str(r.get("by") or "")
    rows = [g for g in r.get("groups", []) if g.get("idle_allocated_gpu_hours")]
    if not rows:
        return (
            (f"{label}{name}没有已分配但空闲的GPU时间。", [])
            if zh
            else (f"{capitalized(over(label))}, {name} had no allocated GPU-time left idle.", [])
        )
    top = rows[0]
    hours, cost = num(top["idle_allocated_gpu_hours"]), usd(top["idle_allocated_cost_usd"])
    if zh:
        answer = (
            f"{label}浪费最多的{level.get(by, by)}是{top['key']}：已分配但空闲{hours} GPU时"
            f"（{cost}），效率{frac_pct(top.get('efficiency'), True)}。"
        )
    else:
        answer = (
            f"{capitalized(over(label))}, the {by} that wasted the most was {top['key']}: "
            f"{hours} GPU-hours allocated but idle ({cost}), efficiency "
            f"{frac_pct(top.get('efficiency'))}."
        )
    insights = []
    for i, g in enumerate(rows[:5], 1):
        h, c = num(g["idle_allocated_gpu_hours"]), usd(g["idle_allocated_cost_usd"])
        insights.append(
            f"{i}. {g['key']}：空闲{h} GPU时（{c}）"
            if zh
            else f"{i}. {g['key']}: {h} idle GPU-hours ({c})"
        )
    return answer, insights


def recommend(r: Result, label: str, zh: bool) -> tuple[str, list[str]]:
    recs = r.get("recommendations", [])
    if not recs:
        return (
            (f"根据{label}的数据，没有需要调整的地方。", [])
            if zh
            else (f"Nothing to change based on {label}: no rule found anything.", [])
        )
    total = r.get("total_monthly_saving_usd")
    if zh:
        answer = (
            f"根据{label}的数据，有{len(recs)}条建议，预计每月可节省{usd(total)}。"
            f"首要建议：{_title(recs[0], True)}。"
        )
    else:
        answer = (
            f"{len(recs)} recommendation{'s' if len(recs) != 1 else ''} from {label}, with an "
            "expected saving of "
            f"{usd(total)} a month. First: {recs[0]['title']}."
        )
    insights = [
        (
            f"{_title(x, True)}（每月{usd(x['expected_monthly_saving_usd'])}，"
            f"置信度{_CONFIDENCE_ZH.get(x['confidence_label'], x['confidence_label'])}，"
            f"id {x['id']}）"
            if zh
            else f"{x['title']} ({usd(x['expected_monthly_saving_usd'])}/month, "
            f"{x['confidence_label']} confidence, id {x['id']})"
        )
        for x in recs[:5]
    ]
    return answer, insights


_CONFIDENCE_ZH = {"high": "高", "medium": "中", "low": "低"}


def _title(rec: Mapping[str, Any], zh: bool) -> str:
    return str(rec.get("title_zh") or rec["title"]) if zh else str(rec["title"])


def alerts(r: Result, label: str, zh: bool) -> tuple[str, list[str]]:
    items = r.get("alerts", [])
    active = [a for a in items if a.get("resolved") is None]
    if not items:
        return (f"{label}没有告警。", []) if zh else (f"No alerts {in_window(label)}.", [])
    if zh:
        answer = f"{label}共有{len(items)}条告警，其中{len(active)}条仍未解除。"
    else:
        noun = "alert" if len(items) == 1 else "alerts"
        answer = f"{len(items)} {noun} {in_window(label)}, {len(active)} still active."
    insights = [f"[{a['severity']}] {a['node']}: {a['message']}" for a in items[:5]]
    return answer, insights
