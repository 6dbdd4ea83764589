"""Answers in words, English or Chinese, from tool results only.

Each function takes the JSON results of :mod:`gpufleet.analyst.tools` and returns a short
direct answer with the key numbers and a list of insights (seed 001's tone: "This week's
average utilization is 65 %, up 7 points from last week's 58 %"). Every number printed is a
field of a result, rounded for reading: nothing is computed here beyond rounding, picking
and ordering (the language layer never computes numbers, issue 4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

Result = Mapping[str, Any]

METRIC_EN = {
    "utilization": "GPU utilization",
    "allocation_rate": "GPU allocation rate",
    "idle_fraction": "idle share of GPU time",
    "gpu_hours": "GPU-hours",
}
METRIC_ZH = {
    "utilization": "GPU利用率",
    "allocation_rate": "GPU分配率",
    "idle_fraction": "GPU空闲占比",
    "gpu_hours": "GPU时数",
}


def num(value: float | None, digits: int = 1) -> str:
    """``value`` rounded for reading (``n/a`` when missing)."""
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def pct(value: float | None, zh: bool = False) -> str:
    """A percentage on the 0..100 scale."""
    if value is None:
        return "n/a"
    return f"{value:.1f}%" if zh else f"{value:.1f} %"


def frac_pct(value: float | None, zh: bool = False) -> str:
    """A 0..1 fraction as a percentage."""
    return pct(None if value is None else 100.0 * value, zh)


def usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.0f}" if abs(value) >= 100 else f"${value:,.2f}"


def metric_value(value: float | None, metric: str, zh: bool = False) -> str:
    if metric == "gpu_hours":
        return f"{num(value)} GPU-h" if not zh else f"{num(value)} GPU时"
    return pct(value, zh)


def metric_change(change: float | None, metric: str, zh: bool = False) -> str:
    """``+7.0 points`` / ``-3.2 GPU-h``; the change of a rate is in percentage points."""
    if change is None:
        return "n/a"
    sign = "+" if change >= 0 else ""
    if metric == "gpu_hours":
        return f"{sign}{num(change)} GPU-h" if not zh else f"{sign}{num(change)} GPU时"
    return f"{sign}{change:.1f} points" if not zh else f"{sign}{change:.1f}个百分点"


def _direction(change: float | None, zh: bool) -> str:
    if change is None:
        return "unknown" if not zh else "未知"
    if change > 0:
        return "up" if not zh else "上升"
    if change < 0:
        return "down" if not zh else "下降"
    return "unchanged" if not zh else "持平"


_BARE = (
    "today",
    "yesterday",
    "this week",
    "last week",
    "this month",
    "last month",
    "this year",
    "last year",
    "last weekend",
)
_DATE_LABEL = re.compile(r"\d{4}-\d{2}-\d{2}")
_WEEKDAY_LABELS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _in(label: str) -> str:
    """How a sentence says a window: ``in the past 7 days``, ``in October 2026``, but
    ``today``, ``last week``, ``since Monday``, ``on 2026-11-20``, ``from 2026-11-01 to
    2026-11-07``, ``on Monday``."""
    if label in _BARE or label.startswith("since "):
        return label
    if " to " in label and _DATE_LABEL.match(label):
        return f"from {label}"
    if _DATE_LABEL.fullmatch(label) or label in _WEEKDAY_LABELS:
        return f"on {label}"
    return f"in {label}"


def over(label: str) -> str:
    """A window opening a sentence: ``over the past 7 days``, but ``yesterday``, ``on
    Monday`` (the caller capitalizes the sentence)."""
    said = _in(label)
    return f"over {label}" if said.startswith("in ") and label.startswith("the ") else said


def capitalized(text: str) -> str:
    """``text`` with its first letter capitalized and the rest as written ("GPU ...")."""
    return text[:1].upper() + text[1:]


def scope_name(scope: Mapping[str, Any], zh: bool) -> str:
    """What an answer is about: the narrowest level its scope names, with the workload kind
    it is narrowed to ("team-a's training workloads"), so a kind carried over from an
    earlier turn is never silent."""
    base = next(
        (
            str(scope[k])
            for k in ("workload", "user", "namespace", "node", "gpu", "gpu_model")
            if scope.get(k)
        ),
        None,
    )
    kind = scope.get("workload_kind")
    if kind:
        if base is None:
            return f"{kind}类工作负载" if zh else f"{kind} workloads"
        return f"{base}的{kind}类工作负载" if zh else f"{base}'s {kind} workloads"
    if base is not None:
        return base
    if scope.get("cluster"):
        return str(scope["cluster"])
    return "the fleet" if not zh else "整个集群"


# ---- trend ---------------------------------------------------------------------------------


def trend(r: Result, label: str, zh: bool) -> tuple[str, list[str]]:
    series = r["series"]
    metric = series["metric"]
    name = scope_name(series["scope"], zh)
    cmp = r["comparison"]
    slope = r.get("slope")
    value = cmp.get("value_b")
    points = [p for p in series["points"] if p.get("value") is not None]
    what = METRIC_ZH[metric] if zh else METRIC_EN[metric]
    if not points:
        if zh:
            return f"{name}在{label}没有{what}数据。", []
        return f"There is no {what} data for {name} {_in(label)}.", []
    direction = slope["direction"] if slope else "flat"
    first, last = points[0], points[-1]
    if zh:
        word = {"rising": "上升", "falling": "下降", "flat": "不明显"}[direction]
        answer = (
            f"{label}{name}的{what}平均为{metric_value(value, metric, True)}，"
            f"整体趋势{word}（从{metric_value(first['value'], metric, True)}"
            f"到{metric_value(last['value'], metric, True)}）。"
        )
    else:
        word = {
            "rising": "is trending upward",
            "falling": "is trending downward",
            "flat": "shows no clear trend",
        }[direction]
        answer = (
            f"{over(label)}, {what} of {name} averaged {metric_value(value, metric)} and "
            f"{word} (first bucket {metric_value(first['value'], metric)}, last "
            f"{metric_value(last['value'], metric)})."
        )
    if len(points) < 3:
        few = len(points)
        answer += (
            f"（只有{few}个时间段有数据。）"
            if zh
            else f" Only {few} bucket{'s' if few != 1 else ''} of the window have data."
        )
    insights: list[str] = []
    if slope:
        ci = ""
        if slope.get("ci_low_per_day") is not None:
            lo, hi = num(slope["ci_low_per_day"], 2), num(slope["ci_high_per_day"], 2)
            ci = f" (95 % CI {lo} .. {hi})"
        unit = "GPU-h" if metric == "gpu_hours" else ("个百分点" if zh else "points")
        insights.append(
            f"趋势斜率：每天{num(slope['per_day'], 2)}{unit}{ci}"
            if zh
            else f"Slope: {num(slope['per_day'], 2)} {unit} per day{ci}, robust (Theil-Sen) fit."
        )
    if cmp.get("note"):
        insights.append(f"未与之前比较：{cmp['note']}" if zh else f"Not compared: {cmp['note']}.")
    elif cmp.get("value_a") is not None and cmp.get("change") is not None:
        change = metric_change(cmp["change"], metric, zh)
        if zh:
            insights.append(
                f"与之前同样长的时间段（{metric_value(cmp['value_a'], metric, True)}）"
                f"相比：{change}"
            )
        else:
            insights.append(
                f"Against the window before it ({metric_value(cmp['value_a'], metric)}): {change}."
            )
    peak = max(points, key=lambda p: p["value"])
    low = min(points, key=lambda p: p["value"])
    if zh:
        insights.append(
            f"最高{metric_value(peak['value'], metric, True)}（{peak['start'][:13]}），"
            f"最低{metric_value(low['value'], metric, True)}（{low['start'][:13]}）"
        )
    else:
        insights.append(
            f"Highest {metric_value(peak['value'], metric)} ({peak['start'][:13]}), "
            f"lowest {metric_value(low['value'], metric)} ({low['start'][:13]})."
        )
    for cp in r.get("change_points", [])[:2]:
        before, after = cp.get("before_mean"), cp.get("after_mean")
        at = str(cp.get("ts") or cp.get("start") or "")[:13]
        if before is not None and after is not None:
            insights.append(
                f"{at}出现变化：{metric_value(before, metric, True)} → "
                f"{metric_value(after, metric, True)}"
                if zh
                else f"Shift at {at}: {metric_value(before, metric)} -> "
                f"{metric_value(after, metric)}."
            )
    fc = r.get("forecast")
    if fc and fc.get("points"):
        nxt = fc["points"][0]
        lo, hi = nxt.get("lo80"), nxt.get("hi80")
        when = str(nxt.get("start") or "")[:10]
        insights.append(
            f"预测{when}：{metric_value(nxt['value'], metric, True)}"
            f"（80%区间 {metric_value(lo, metric, True)} – {metric_value(hi, metric, True)}）"
            if zh
            else f"Forecast for {when}: {metric_value(nxt['value'], metric)} "
            f"(80 % interval {metric_value(lo, metric)} – {metric_value(hi, metric)}, "
            f"{fc['method']})."
        )
    return answer, insights


def _held_now(r: Result, name: str, zh: bool) -> tuple[str, list[str]]:
    """Realtime of a namespace, user, workload or kind: the GPUs it holds now."""
    gpus = r["gpus"]
    if gpus == 0:
        return (
            f"截至{r['as_of']}，{name}在最近两分钟没有占用GPU。"
            if zh
            else f"{name} held no GPU in the two minutes before {r['as_of']}.",
            [],
        )
    answer = (
        f"{name}目前占用{gpus}块GPU，平均利用率{pct(r['mean_gpu_util_pct'], True)}"
        f"（截至{r['as_of']}）。"
        if zh
        else f"{name} holds {gpus} GPU{'s' if gpus != 1 else ''} now, mean utilization "
        f"{pct(r['mean_gpu_util_pct'])} as of {r['as_of']}."
    )
    labels = r.get("labels", {})
    held = sorted(
        (g for g in r["by"] if g.get("mean_gpu_util_pct") is not None),
        key=lambda g: -g["mean_gpu_util_pct"],
    )
    shown = [
        f"{labels.get(g['key'], g['key'])} {pct(g['mean_gpu_util_pct'], zh)}" for g in held[:5]
    ]
    insights = []
    if shown:
        insights.append(("GPU：" if zh else "GPUs: ") + ("，" if zh else ", ").join(shown))
    return answer, insights


# ---- compare -------------------------------------------------------------------------------


def compare_windows(
    r: Result, first_label: str, second_label: str, name: str, zh: bool
) -> tuple[str, list[str]]:
    c = r["window_comparison"]
    metric = c["metric"]
    what = METRIC_ZH[metric] if zh else METRIC_EN[metric]
    now, before = c.get("value_b"), c.get("value_a")
    change = c.get("change")
    if c.get("note"):
        answer = (
            f"{name}{first_label}的平均{what}为{metric_value(now, metric, True)}；"
            f"未比较：{c['note']}。"
            if zh
            else f"{capitalized(what)} of {name} averaged {metric_value(now, metric)} "
            f"{_in(first_label)}; {c['note']}."
        )
    elif before is None or now is None:
        if zh:
            answer = (
                f"{name}{first_label}的平均{what}为{metric_value(now, metric, True)}；"
                f"{second_label}没有数据，无法比较。"
            )
        else:
            answer = (
                f"{capitalized(what)} of {name} was {metric_value(now, metric)} "
                f"{_in(first_label)}; there is no data {_in(second_label)} to compare with."
            )
    elif zh:
        answer = (
            f"{name}{first_label}的平均{what}为{metric_value(now, metric, True)}，"
            f"比{second_label}的{metric_value(before, metric, True)}"
            f"{_direction(change, True)}{metric_change(change, metric, True).lstrip('+-')}。"
        )
    else:
        answer = (
            f"{capitalized(what)} of {name} averaged {metric_value(now, metric)} "
            f"{_in(first_label)}, {_direction(change, False)} "
            f"{metric_change(change, metric).lstrip('+-')} from {metric_value(before, metric)} "
            f"{_in(second_label)}."
        )
    insights = []
    if c.get("change_pct") is not None:
        insights.append(
            f"相对变化：{num(c['change_pct'])}%"
            if zh
            else f"Relative change: {num(c['change_pct'])} %."
        )
    insights.append(
        f"GPU时数：{num(c['gpu_hours_b'])}（{first_label}） vs "
        f"{num(c['gpu_hours_a'])}（{second_label}）"
        if zh
        else f"GPU-hours: {num(c['gpu_hours_b'])} ({first_label}) vs {num(c['gpu_hours_a'])} "
        f"({second_label})."
    )
    return answer, insights


def compare_entities(r: Result, label: str, zh: bool) -> tuple[str, list[str]]:
    c = r["entity_comparison"]
    metric = c["metric"]
    what = METRIC_ZH[metric] if zh else METRIC_EN[metric]
    a, b = c["subject_a"], c["subject_b"]
    va, vb = c.get("value_a"), c.get("value_b")
    change = c.get("change")
    if zh:
        answer = (
            f"{label}{a}的{what}为{metric_value(va, metric, True)}，{b}为"
            f"{metric_value(vb, metric, True)}"
            f"（{b}相对{a}：{metric_change(change, metric, True)}）。"
        )
        insights = [f"GPU时数：{a} {num(c['gpu_hours_a'])}，{b} {num(c['gpu_hours_b'])}"]
    else:
        answer = (
            f"{over(label)}, {what} of {a} was {metric_value(va, metric)} and of {b} "
            f"{metric_value(vb, metric)} ({b} vs {a}: {metric_change(change, metric)})."
        )
        insights = [f"GPU-hours: {a} {num(c['gpu_hours_a'])}, {b} {num(c['gpu_hours_b'])}."]
    return answer, insights


# ---- drill-down ----------------------------------------------------------------------------


def drilldown(r: Result, first_label: str, second_label: str, zh: bool) -> tuple[str, list[str]]:
    root = r["root"]
    metric = r["metric"]
    what = METRIC_ZH[metric] if zh else METRIC_EN[metric]
    name = root["name"]
    change = root.get("change")
    rel = root.get("change_pct")
    rel_text = f" ({num(rel)} %)" if rel is not None and not zh else ""
    before = root.get("before")
    if r.get("note"):
        # Too little history before: absolute parts only, no relative change (analysis says why).
        rel = None
    if zh:
        rel_text = f"（{num(rel)}%）" if rel is not None else ""
        if before is None:
            answer = (
                f"{name}{first_label}的{what}为{metric_value(root.get('after'), metric, True)}；"
                f"{second_label}没有数据，以下是{first_label}的主要构成。"
            )
        else:
            answer = (
                f"{name}{first_label}的{what}为{metric_value(root.get('after'), metric, True)}，"
                f"{second_label}为{metric_value(before, metric, True)}，"
                f"{_direction(change, True)}{metric_change(change, metric, True).lstrip('+-')}"
                f"{rel_text}。"
            )
    elif before is None:
        answer = (
            f"{capitalized(what)} of {name} {_in(first_label)} is "
            f"{metric_value(root.get('after'), metric)}; there is no data {_in(second_label)} to "
            f"compare with, so these are its biggest parts."
        )
    else:
        answer = (
            f"{capitalized(what)} of {name} {_in(first_label)} is "
            f"{metric_value(root.get('after'), metric)}, {_direction(change, False)} "
            f"{metric_change(change, metric).lstrip('+-')}{rel_text} from "
            f"{metric_value(before, metric)} {_in(second_label)}."
        )
    path = r.get("path", [])[1:]
    insights = []
    if r.get("note"):
        insights.append(f"说明：{r['note']}" if zh else f"Note: {r['note']}.")
    if path:
        top = path[0]
        share = top.get("share_of_total_change")
        share_text = ""
        if share is not None:
            share_text = (
                f"（占变化的{frac_pct(share, True)}）"
                if zh
                else f" ({frac_pct(share)} of the change)"
            )
        answer += (
            f"主要原因是{top['level']} {top['name']}{share_text}。"
            if zh
            else f" The main driver is {top['level']} {top['name']}{share_text}."
        )
    for node in path:
        insights.append(node["summary"])
    for child in root.get("children", [])[1:4]:
        insights.append(child["summary"])
    return answer, insights


# ---- realtime, metadata --------------------------------------------------------------------


_HOLDERS = ("namespace", "user", "workload", "workload_kind")


def realtime(r: Result, name: str, zh: bool) -> tuple[str, list[str]]:
    gpus, allocated = r["gpus"], r["allocated_gpus"]
    if any(k in r.get("scope", {}) for k in _HOLDERS):
        return _held_now(r, name, zh)
    if gpus == 0:
        return (
            (f"截至{r['as_of']}，最近两分钟没有存储的GPU样本（运行中的agent每10秒写入一次）。", [])
            if zh
            else (
                f"No GPU samples are stored for the two minutes before {r['as_of']}: nothing "
                "has been written yet (a running agent writes every 10 s by default) or no "
                "GPU reported.",
                [],
            )
        )
    if zh:
        answer = (
            f"{name}共有{gpus}块GPU在上报，其中{allocated}块大部分时间有任务"
            f"（最近两分钟的GPU时间分配率{frac_pct(r['allocation_rate'], True)}），"
            f"平均利用率{pct(r['mean_gpu_util_pct'], True)}（截至{r['as_of']}）。"
        )
    else:
        answer = (
            f"{name} has {gpus} GPUs reporting, {allocated} of them allocated most of the last "
            f"two minutes ({frac_pct(r['allocation_rate'])} of their GPU-time), mean utilization "
            f"{pct(r['mean_gpu_util_pct'])} as of {r['as_of']}."
        )
    busy = sorted(
        (g for g in r["by"] if g.get("mean_gpu_util_pct") is not None),
        key=lambda g: -g["mean_gpu_util_pct"],
    )
    insights = []
    idle = [g for g in r["by"] if (g.get("allocation_rate") or 0) < 0.5]
    if idle:
        insights.append(
            f"空闲（未分配）GPU：{len(idle)}块" if zh else f"Unallocated GPUs: {len(idle)}."
        )
    if busy:
        b = busy[0]
        gpu = r.get("labels", {}).get(b["key"], b["key"])
        insights.append(
            f"最忙的GPU：{gpu}（{pct(b['mean_gpu_util_pct'], True)}）"
            if zh
            else f"Busiest GPU: {gpu} ({pct(b['mean_gpu_util_pct'])})."
        )
    return answer, insights


def ranking(r: Result, label: str, zh: bool) -> tuple[str, list[str]]:
    rows = r["ranked"]
    field, level = r["field"], r["by"]
    what_en = "GPU utilization" if field == "mean_gpu_util_pct" else "GPU allocation rate"
    what_zh = "GPU利用率" if field == "mean_gpu_util_pct" else "GPU分配率"

    def value(g: Result) -> str:
        v = g[field]
        return pct(v, zh) if field == "mean_gpu_util_pct" else frac_pct(v, zh)

    if not rows:
        return (f"{label}没有数据。", []) if zh else (f"There is no data {_in(label)}.", [])
    top = rows[0]
    word = ("最高" if r["order"] == "high" else "最低") if zh else r["order"] + "est"
    if zh:
        level_zh = {"namespace": "命名空间", "user": "用户", "workload": "工作负载", "node": "节点"}
        answer = (
            f"{label}{what_zh}{word}的{level_zh.get(level, level)}是{top['key']}（{value(top)}）。"
        )
    else:
        answer = (
            f"{_in(label).capitalize()}, the {level} with the {word} {what_en} was "
            f"{top['key']} ({value(top)}, {num(top['gpu_hours'])} GPU-hours)."
        )
    insights = [
        f"{i}. {g['key']}: {value(g)}（{num(g['gpu_hours'])} GPU时）"
        if zh
        else f"{i}. {g['key']}: {value(g)} ({num(g['gpu_hours'])} GPU-hours)"
        for i, g in enumerate(rows[:5], 1)
    ]
    return answer, insights


def numbered(options: Sequence[str]) -> str:
    return "\n".join(f"{i}. {o}" for i, o in enumerate(options, 1))


def metadata(
    level: str, values: Sequence[str] | Mapping[str, int], label: str, zh: bool
) -> tuple[str, list[str]]:
    names_en = {
        "cluster": "clusters",
        "namespace": "namespaces",
        "user": "users",
        "node": "nodes",
        "gpu_model": "GPU models",
        "workload": "workloads",
        "workload_kind": "workload kinds",
        "dimension": "dimension keys",
    }
    names_zh = {
        "cluster": "集群",
        "namespace": "命名空间",
        "user": "用户",
        "node": "节点",
        "gpu_model": "GPU型号",
        "workload": "工作负载",
        "workload_kind": "工作负载类型",
        "dimension": "维度键",
    }
    if isinstance(values, Mapping):
        shown = [f"{k} ({v})" for k, v in values.items()]
    else:
        shown = list(values)
    limit = 20
    listed = shown[:limit]
    more = len(shown) - len(listed)
    if zh:
        answer = f"{label}有数据的{names_zh[level]}共{len(shown)}个：\n{numbered(listed)}"
        if more:
            answer += f"\n……以及另外{more}个"
    else:
        noun = names_en[level] if len(shown) != 1 else names_en[level].removesuffix("s")
        answer = f"{len(shown)} {noun} with data {_in(label)}:\n{numbered(listed)}"
        if more:
            answer += f"\n... and {more} more"
    return answer, []


# ---- waste, recommendations, alerts ----------------------------------------------------------


def waste(r: Result, label: str, name: str, zh: bool) -> tuple[str, list[str]]:
    if not r.get("gpu_hours"):
        return (
            (f"{label}{name}没有GPU数据，无法计算浪费。", [])
            if zh
            else (f"There is no GPU data for {name} {_in(label)}, so no waste to count.", [])
        )
    if zh:
        answer = (
            f"{label}{name}已分配但空闲的GPU时数为{num(r['idle_allocated_gpu_hours'])}，"
            f"成本{usd(r['idle_allocated_cost_usd'])}（折合每月{usd(r['monthly_idle_allocated_cost_usd'])}）；"
            f"另有{num(r['unallocated_gpu_hours'])}个未分配的GPU时（{usd(r['unallocated_cost_usd'])}）。"
            f"效率（使用/分配）为{frac_pct(r['efficiency'], True)}。"
        )
    else:
        answer = (
            f"{over(label)}, {name} had {num(r['idle_allocated_gpu_hours'])} GPU-hours allocated "
            f"but idle, costing {usd(r['idle_allocated_cost_usd'])} "
            f"({usd(r['monthly_idle_allocated_cost_usd'])} a month at this rate); another "
            f"{num(r['unallocated_gpu_hours'])} GPU-hours sat unallocated "
            f"({usd(r['unallocated_cost_usd'])}). Efficiency (used / allocated) was "
            f"{frac_pct(r['efficiency'])}."
        )
    insights = []
    for g in r.get("groups", [])[:3]:
        insights.append(
            f"{g['key']}：空闲已分配{num(g['idle_allocated_gpu_hours'])}GPU时（{usd(g['idle_allocated_cost_usd'])}）"
            if zh
            else f"{g['key']}: {num(g['idle_allocated_gpu_hours'])} idle allocated GPU-hours "
            f"({usd(g['idle_allocated_cost_usd'])})."
        )
    for w in r.get("top_wasters", [])[:3]:
        insights.append(
            f"{w['namespace']}/{w['user']}/{w['workload']} 空闲{num(w['idle_gpu_hours'])}GPU时"
            f"（{usd(w['idle_cost_usd'])}）"
            if zh
            else f"{w['namespace']}/{w['user']}/{w['workload']} held GPUs idle for "
            f"{num(w['idle_gpu_hours'])} GPU-hours ({usd(w['idle_cost_usd'])})."
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
        return (f"{label}没有告警。", []) if zh else (f"No alerts {_in(label)}.", [])
    if zh:
        answer = f"{label}共有{len(items)}条告警，其中{len(active)}条仍未解除。"
    else:
        noun = "alert" if len(items) == 1 else "alerts"
        answer = f"{len(items)} {noun} {_in(label)}, {len(active)} still active."
    insights = [f"[{a['severity']}] {a['node']}: {a['message']}" for a in items[:5]]
    return answer, insights


HELP_EN = (
    "I answer questions about GPU usage from the recorded history. Try:\n"
    "1. What's the utilization trend over the past 7 days?\n"
    "2. Compare this week with last week\n"
    "3. Why is ml-team's utilization lower this week than last week?\n"
    "4. How many GPUs are in use right now?\n"
    "5. Which namespaces exist?\n"
    "6. How much did idle GPUs cost last week?\n"
    "7. What should we change to save money?\n"
    "8. Any alerts today?"
)
HELP_ZH = (
    "我可以根据历史数据回答GPU使用相关的问题，例如：\n"
    "1. 过去7天的GPU利用率趋势如何？\n"
    "2. 对比本周和上周\n"
    "3. 为什么ml-team本周的利用率比上周低？\n"
    "4. 现在有多少GPU在使用？\n"
    "5. 有哪些命名空间？\n"
    "6. 上周空闲GPU浪费了多少钱？\n"
    "7. 有什么节省成本的建议？\n"
    "8. 今天有告警吗？"
)
