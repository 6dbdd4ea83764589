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
        return "无" if zh else "n/a"
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


def moved(change: float | None, metric: str, zh: bool) -> str:
    """``up 2.0 points`` / ``下降2.0个百分点``; ``unchanged`` / ``持平`` for no change."""
    if change is not None and round(change, 1) == 0:
        return "持平" if zh else "unchanged"
    amount = metric_change(change, metric, zh).lstrip("+-")
    return f"{_direction(change, zh)}{amount}" if zh else f"{_direction(change, zh)} {amount}"


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
    "the day before",
    "the week before",
    "the week before last",
    "the day before yesterday",
    "the month before last",
)
_DATE_LABEL = re.compile(r"\d{4}-\d{2}-\d{2}")
_WEEKDAY_LABELS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def in_window(label: str) -> str:
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
    said = in_window(label)
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


def coverage_note(window: Mapping[str, Any], coverage: float | None, label: str, zh: bool) -> str:
    """Why two windows are not compared: history covers too little of the earlier one,
    ``window`` (its ``start``/``end`` ISO times), named ``label``."""
    span = f"{str(window['start'])[:10]} – {str(window['end'])[:10]}"
    if not coverage:
        if zh:
            return f"{label}（{span}）没有历史数据，因此未作比较"
        return f"there is no history in {label} ({span}), so it is not compared"
    if zh:
        return f"历史数据只覆盖了{label}（{span}）的{frac_pct(coverage, True)}，因此未作比较"
    return f"history covers only {frac_pct(coverage)} of {label} ({span}), so it is not compared"


_BUCKET_EN = {"hour": "hourly", "day": "daily", "week": "weekly"}
_BUCKET_ZH = {"hour": "小时", "day": "天", "week": "周"}


def _bucket_time(start: str, granularity: str, zh: bool) -> str:
    """A bucket as a reader names it: ``2026-11-21 06:00`` for an hour, ``2026-11-21`` for a
    day, ``the week of 2026-11-16`` for a week."""
    if granularity == "hour":
        return f"{start[:10]} {start[11:16]}"
    if granularity == "week":
        return f"{start[:10]}当周" if zh else f"the week of {start[:10]}"
    return start[:10]


def trend(r: Result, label: str, zh: bool, now_iso: str | None = None) -> tuple[str, list[str]]:
    """The trend of a series; a forecast is shown only when it is of time after ``now_iso``
    (a window in the past is followed by data, not by a forecast)."""
    series = r["series"]
    metric = series["metric"]
    gran = str(series.get("granularity") or "day")
    name = scope_name(series["scope"], zh)
    cmp = r["comparison"]
    slope = r.get("slope")
    value = cmp.get("value_b")
    buckets = series["points"]
    points = [p for p in buckets if p.get("value") is not None]
    # First, last, highest and lowest are read from whole buckets: a half-day bucket at a
    # window's edge is not "the highest day" (it still counts in the mean and the slope).
    whole = [p for p in points if not p.get("partial")]
    picks = whole if len(whole) >= 2 else points
    what = METRIC_ZH[metric] if zh else METRIC_EN[metric]
    if not points:
        if zh:
            return f"{name}在{label}没有{what}数据。", []
        return f"There is no {what} data for {name} {in_window(label)}.", []
    # Within one day the hours follow the daily cycle: a slope over them is no trend.
    within_day = gran == "hour" and len(buckets) <= 24
    if within_day:
        slope = None
    direction = slope["direction"] if slope else "flat"
    first, last = picks[0], picks[-1]
    # A robust slope over all buckets may point the other way from the first and last alone.
    against = (direction == "falling" and last["value"] > first["value"]) or (
        direction == "rising" and last["value"] < first["value"]
    )
    v_first, v_last = (
        metric_value(first["value"], metric, zh),
        metric_value(last["value"], metric, zh),
    )
    if zh:
        word = {"rising": "上升", "falling": "下降", "flat": "不明显"}[direction]
        ends = (
            f"虽然最后一个时间段（{v_last}）"
            f"{'高' if direction == 'falling' else '低'}于第一个（{v_first}）"
            if against
            else f"从{v_first}到{v_last}"
        )
        mean = metric_value(value, metric, True)
        how = "合计" if metric == "gpu_hours" else "平均为"
        answer = f"{label}{name}的{what}{how}{mean}，整体趋势{word}（{ends}）。"
        if within_day:
            answer = (
                f"{label}{name}的{what}{how}{mean}（第一个小时{v_first}，最后一个小时{v_last}；"
                "一天之内随作息变化，不判断趋势）。"
            )
    else:
        word = {
            "rising": "is trending upward",
            "falling": "is trending downward",
            "flat": "shows no clear trend",
        }[direction]
        ends = (
            f"across its buckets, though the last ({v_last}) is "
            f"{'above' if direction == 'falling' else 'below'} the first ({v_first})"
            if against
            else f"(first bucket {v_first}, last {v_last})"
        )
        how = "totalled" if metric == "gpu_hours" else "averaged"
        answer = (
            f"{over(label)}, {what} of {name} {how} {metric_value(value, metric)} and "
            f"{word} {ends}."
        )
        if within_day:
            answer = (
                f"{over(label)}, {what} of {name} {how} {metric_value(value, metric)} (first "
                f"hour {v_first}, last {v_last}); within a day it follows the daily cycle, so "
                "no trend is read."
            )
    few = len(points)
    if few < len(buckets):
        # Partial coverage ("last month" with a few days of history): the mean is of those.
        total = len(buckets)
        answer += (
            f"（按{_BUCKET_ZH.get(gran, gran)}统计的{total}个时间段中只有{few}个有数据，"
            f"从{_bucket_time(first['start'], gran, True)}开始。）"
            if zh
            else f" Only {few} of the window's {total} {_BUCKET_EN.get(gran, gran)} buckets "
            f"{'has' if few == 1 else 'have'} data, "
            f"from {_bucket_time(first['start'], gran, False)}."
        )
    elif len(buckets) < 3:
        answer += (
            f"（这个时间范围按{_BUCKET_ZH.get(gran, gran)}统计只有{len(buckets)}个时间段，"
            "不足以判断趋势。）"
            if zh
            else f" The window has only {len(buckets)} {_BUCKET_EN.get(gran, gran)} "
            f"bucket{'s' if len(buckets) != 1 else ''}, too few to read a trend."
        )
    insights: list[str] = []
    if slope:
        ci = ""
        if slope.get("ci_low_per_day") is not None:
            lo, hi = num(slope["ci_low_per_day"], 2), num(slope["ci_high_per_day"], 2)
            ci = f"（95%置信区间 {lo} .. {hi}）" if zh else f" (95 % CI {lo} .. {hi})"
        unit = (
            ("GPU时" if zh else "GPU-h")
            if metric == "gpu_hours"
            else ("个百分点" if zh else "points")
        )
        insights.append(
            f"趋势斜率：每天{num(slope['per_day'], 2)} {unit}{ci}"
            if zh
            else f"Slope: {num(slope['per_day'], 2)} {unit} per day{ci}, robust (Theil-Sen) fit."
        )
    if cmp.get("note"):
        earlier = "之前同样长的时间段" if zh else "the window of the same length before"
        note = coverage_note(cmp["window_a"], cmp.get("history_coverage"), earlier, zh)
        insights.append(f"{note}。" if zh else f"{capitalized(note)}.")
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
    peak = max(picks, key=lambda p: p["value"])
    low = min(picks, key=lambda p: p["value"])
    p_at, l_at = _bucket_time(peak["start"], gran, zh), _bucket_time(low["start"], gran, zh)
    if zh:
        insights.append(
            f"最高{metric_value(peak['value'], metric, True)}（{p_at}），"
            f"最低{metric_value(low['value'], metric, True)}（{l_at}）"
        )
    else:
        insights.append(
            f"Highest {metric_value(peak['value'], metric)} ({p_at}), "
            f"lowest {metric_value(low['value'], metric)} ({l_at})."
        )
    net = bool(r.get("shifts_deseasonalized"))
    for cp in r.get("change_points", [])[:2]:
        before, after = cp.get("before_mean"), cp.get("after_mean")
        at = _bucket_time(str(cp.get("ts") or cp.get("start") or ""), gran, zh)
        if before is not None and after is not None:
            # Levels net of the weekly pattern when one was fitted: say so, they are not the
            # plain means of the days.
            basis = ("（已去除周期规律）" if zh else " (weekly pattern removed)") if net else ""
            insights.append(
                f"{at}出现变化：{metric_value(before, metric, True)} → "
                f"{metric_value(after, metric, True)}{basis}"
                if zh
                else f"Shift at {at}: {metric_value(before, metric)} -> "
                f"{metric_value(after, metric)}{basis}."
            )
    fc = r.get("forecast")
    if fc and fc.get("points"):
        nxt = fc["points"][0]
        start = str(nxt.get("start") or "")
        if now_iso is None or start >= now_iso[: len(start)]:
            lo, hi = nxt.get("lo80"), nxt.get("hi80")
            when = _bucket_time(start, gran, zh)
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
    # Every GPU held, busiest first, up to twelve; the idle ones are what an engineer looks for.
    shown = [
        f"{labels.get(g['key'], g['key'])} {pct(g['mean_gpu_util_pct'], zh)}" for g in held[:12]
    ]
    insights = []
    if shown:
        more = len(held) - len(shown)
        tail = (f"，另有{more}块" if zh else f", and {more} more") if more else ""
        insights.append(("GPU：" if zh else "GPUs: ") + ("，" if zh else ", ").join(shown) + tail)
    idle = [g for g in held if (g.get("idle_fraction") or 0) >= 0.5]
    if idle:
        names = ("、" if zh else ", ").join(labels.get(g["key"], g["key"]) for g in idle)
        insights.append(
            f"其中空闲（利用率低于阈值）的GPU：{names}" if zh else f"Held but idle: {names}."
        )
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
        # window_a is the reference (the earlier window: see the engine); its history is short.
        note = coverage_note(c["window_a"], c.get("history_coverage"), second_label, zh)
        answer = (
            f"{name}{first_label}的平均{what}为{metric_value(now, metric, True)}，"
            f"{second_label}为{metric_value(before, metric, True)}；{note}。"
            if zh
            else f"{capitalized(what)} of {name} averaged {metric_value(now, metric)} "
            f"{in_window(first_label)} and {metric_value(before, metric)} "
            f"{in_window(second_label)}; {note}."
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
                f"{in_window(first_label)}; there is no data {in_window(second_label)} "
                "to compare with."
            )
    elif zh:
        answer = (
            f"{name}{first_label}的平均{what}为{metric_value(now, metric, True)}，"
            f"{'与' if moved(change, metric, True) == '持平' else '比'}{second_label}的"
            f"{metric_value(before, metric, True)}{moved(change, metric, True)}。"
        )
    else:
        answer = (
            f"{capitalized(what)} of {name} averaged {metric_value(now, metric)} "
            f"{in_window(first_label)}, {moved(change, metric, False)} "
            f"from {metric_value(before, metric)} "
            f"{in_window(second_label)}."
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
    hours_b, hours_a = c["window_b"].get("hours"), c["window_a"].get("hours")
    if hours_a and hours_b and hours_a != hours_b:
        # "this week" (60 h so far) against last week (168 h): totals are not comparable.
        insights.append(
            f"两个时间段长度不同（{first_label}{num(hours_b, 0)}小时，{second_label}"
            f"{num(hours_a, 0)}小时）：请比较比率，而不是GPU时数总量"
            if zh
            else f"The windows differ in length ({num(hours_b, 0)} h {in_window(first_label)}, "
            f"{num(hours_a, 0)} h {in_window(second_label)}): compare the rates, not the GPU-hour "
            "totals."
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


def allocation_moved(r: Result, first_label: str, second_label: str, zh: bool) -> str:
    """The allocation rate of both windows of a drill-down, as its first line."""
    c = r["window_comparison"]
    now, before, change = c.get("value_b"), c.get("value_a"), c.get("change")
    if zh:
        was, now_v = (metric_value(v, "allocation_rate", True) for v in (before, now))
        return (
            f"分配率（被占用的GPU时间占比）：{second_label}{was} → {first_label}{now_v}"
            f"（{metric_change(change, 'allocation_rate', True)}）"
        )
    return (
        f"Allocation rate (share of GPU-time held): {metric_value(before, 'allocation_rate')} "
        f"{in_window(second_label)} -> {metric_value(now, 'allocation_rate')} "
        f"{in_window(first_label)} ({metric_change(change, 'allocation_rate')})."
    )


def compare_several(results: Sequence[Result], label: str, zh: bool) -> tuple[str, list[str]]:
    """Three or more entities of one level: each comparison is of the first with another."""
    comps = [r["entity_comparison"] for r in results]
    metric = comps[0]["metric"]
    what = METRIC_ZH[metric] if zh else METRIC_EN[metric]
    first = comps[0]
    pairs = [(first["subject_a"], first.get("value_a"), first["gpu_hours_a"])]
    pairs += [(c["subject_b"], c.get("value_b"), c["gpu_hours_b"]) for c in comps]
    values = [f"{n}为{metric_value(v, metric, True)}" for n, v, _ in pairs]
    if zh:
        answer = f"{label}各自的{what}：{'，'.join(values)}。"
    else:
        shown = [f"{n} {metric_value(v, metric)}" for n, v, _ in pairs]
        answer = f"{capitalized(over(label))}, {what}: {', '.join(shown[:-1])} and {shown[-1]}."
    ranked = sorted((p for p in pairs if p[1] is not None), key=lambda p: -p[1])
    insights = []
    if ranked:
        top, low = ranked[0], ranked[-1]
        insights.append(
            f"最高：{top[0]}（{metric_value(top[1], metric, True)}），"
            f"最低：{low[0]}（{metric_value(low[1], metric, True)}）"
            if zh
            else f"Highest: {top[0]} ({metric_value(top[1], metric)}); lowest: {low[0]} "
            f"({metric_value(low[1], metric)})."
        )
    hours = [f"{n} {num(h)}" for n, _, h in pairs]
    insights.append(f"GPU时数：{'，'.join(hours)}" if zh else f"GPU-hours: {', '.join(hours)}.")
    return answer, insights


# ---- realtime, metadata --------------------------------------------------------------------


_HOLDERS = ("namespace", "user", "workload", "workload_kind")


def _idle_now(r: Result, zh: bool) -> list[str]:
    """Which GPUs are free now (unallocated most of the last two minutes) and which are held
    but idle (allocated, and idle most of that time): "which GPUs are idle right now?"."""
    labels = r.get("labels", {})
    rows = sorted(r["by"], key=lambda g: labels.get(g["key"], g["key"]))
    free = [labels.get(g["key"], g["key"]) for g in rows if (g.get("allocation_rate") or 0) < 0.5]
    held_idle = [
        labels.get(g["key"], g["key"])
        for g in rows
        if (g.get("allocation_rate") or 0) >= 0.5 and (g.get("idle_fraction") or 0) >= 0.5
    ]
    out = []
    for names, en, zh_text in (
        (free, "Free (unallocated)", "空闲（未分配）"),
        (held_idle, "Allocated but idle", "已分配但空闲"),
    ):
        sep = "、" if zh else ", "
        shown = sep.join(names[:12]) + (f" … (+{len(names) - 12})" if len(names) > 12 else "")
        if zh:
            out.append(f"{zh_text}的GPU{len(names)}块" + (f"：{shown}" if names else ""))
        else:
            out.append(f"{en} GPUs: " + (f"{len(names)} ({shown})." if names else "none."))
    return out


def realtime(r: Result, name: str, zh: bool, idle: bool = False) -> tuple[str, list[str]]:
    """The state now; ``idle`` (the question asks which GPUs are idle or free) lists them."""
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
            f"{name} has {gpus} GPUs reporting, {allocated} of them allocated for most of the "
            f"last two minutes (allocation rate {frac_pct(r['allocation_rate'])} of all GPU-time "
            "then), mean utilization "
            f"{pct(r['mean_gpu_util_pct'])} as of {r['as_of']}."
        )
    busy = sorted(
        (g for g in r["by"] if g.get("mean_gpu_util_pct") is not None),
        key=lambda g: -g["mean_gpu_util_pct"],
    )
    insights = []
    if idle:
        insights.extend(_idle_now(r, zh))
    else:
        free = [g for g in r["by"] if (g.get("allocation_rate") or 0) < 0.5]
        if free:
            insights.append(
                f"空闲（未分配）GPU：{len(free)}块" if zh else f"Unallocated GPUs: {len(free)}."
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
    what_en, what_zh = {
        "mean_gpu_util_pct": ("GPU utilization", "GPU利用率"),
        "allocation_rate": ("GPU allocation rate", "GPU分配率"),
        "gpu_hours": ("GPU-hours", "GPU时数"),
    }[field]

    def value(g: Result) -> str:
        if field == "gpu_hours":
            return f"{num(g['gpu_hours'])} GPU时" if zh else f"{num(g['gpu_hours'])} GPU-hours"
        v = g[field]
        return pct(v, zh) if field == "mean_gpu_util_pct" else frac_pct(v, zh)

    def also(g: Result) -> str:
        """The other side of a row: GPU-hours beside a rate, utilization beside GPU-hours."""
        if field == "gpu_hours":
            u = g.get("mean_gpu_util_pct")
            return f"利用率{pct(u, True)}" if zh else f"{pct(u)} utilization"
        return f"{num(g['gpu_hours'])} GPU时" if zh else f"{num(g['gpu_hours'])} GPU-hours"

    if not rows:
        return (f"{label}没有数据。", []) if zh else (f"There is no data {in_window(label)}.", [])
    top = rows[0]
    high = r["order"] == "high"
    if zh:
        word = "最高" if high else "最低"
        if field == "gpu_hours":
            word = "最多" if high else "最少"
        level_zh = {"namespace": "命名空间", "user": "用户", "workload": "工作负载", "node": "节点"}
        answer = (
            f"{label}{what_zh}{word}的{level_zh.get(level, level)}是{top['key']}"
            f"（{value(top)}，{also(top)}）。"
        )
    else:
        word = ("high" if high else "low") + "est"
        if field == "gpu_hours":
            word = "most" if high else "fewest"
        answer = (
            f"{capitalized(over(label))}, the {level} with the {word} {what_en} was "
            f"{top['key']} ({value(top)}, {also(top)})."
        )
    insights = [
        f"{i}. {g['key']}: {value(g)}（{also(g)}）"
        if zh
        else f"{i}. {g['key']}: {value(g)} ({also(g)})"
        for i, g in enumerate(rows[:5], 1)
    ]
    return answer, insights


def numbered(options: Sequence[str]) -> str:
    return "\n".join(f"{i}. {o}" for i, o in enumerate(options, 1))


METADATA_SHOWN = 20
"""Names a metadata answer lists (the rest are counted)."""


def metadata(
    level: str,
    values: Sequence[str] | Mapping[str, int],
    label: str,
    zh: bool,
    of: str | None = None,
) -> tuple[str, list[str]]:
    """The names of one level with data in the window (``of`` a namespace or user)."""
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
    listed = shown[:METADATA_SHOWN]
    more = len(shown) - len(listed)
    if zh:
        whose = f"{of}" if of else ""
        answer = f"{label}{whose}有数据的{names_zh[level]}共{len(shown)}个：\n{numbered(listed)}"
        if not shown:
            answer = f"{label}{whose}没有有数据的{names_zh[level]}。"
        if more:
            answer += f"\n……以及另外{more}个"
    else:
        noun = names_en[level] if len(shown) != 1 else names_en[level].removesuffix("s")
        whose = f" of {of}" if of else ""
        answer = f"{len(shown)} {noun}{whose} with data {in_window(label)}:\n{numbered(listed)}"
        if not shown:
            answer = f"No {names_en[level]}{whose} have data {in_window(label)}."
        if more:
            answer += f"\n... and {more} more"
    return answer, []


# ---- waste, recommendations, alerts ----------------------------------------------------------


def waste(r: Result, label: str, name: str, zh: bool) -> tuple[str, list[str]]:
    if not r.get("gpu_hours"):
        return (
            (f"{label}{name}没有GPU数据，无法计算浪费。", [])
            if zh
            else (f"There is no GPU data for {name} {in_window(label)}, so no waste to count.", [])
        )
    # Unallocated time belongs to no namespace: a namespace's (user's, workload's) waste has
    # none to report.
    held_only = any(k in r.get("scope", {}) for k in _HOLDERS)
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
