"""A trend in words, English or Chinese, from the ``query_gpu_usage_trend`` tool's result only
(series, slope, comparison with the window before, change points, forecast): the picks
(first, last, highest, lowest) are whole buckets, a day is no trend, and a forecast of time
already past is not shown.
"""

from __future__ import annotations

from gpufleet.analyst.answer import (
    METRIC_EN,
    METRIC_ZH,
    Result,
    capitalized,
    coverage_note,
    in_window,
    metric_change,
    metric_value,
    num,
    over,
    scope_name,
)

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
    single = few == 1
    if single:
        # One bucket with data: its value is the window's; no first/last, no trend.
        one = points[0]
        at = _bucket_time(one["start"], gran, zh)
        part = " (part of it)" if one.get("partial") else ""
        how_en = "totalled" if metric == "gpu_hours" else "averaged"
        answer = (
            f"{label}{name}的{what}{'合计' if metric == 'gpu_hours' else '平均为'}"
            f"{metric_value(value, metric, True)}；只有{at}"
            f"{'（部分时段）' if one.get('partial') else ''}有数据，不足以判断趋势。"
            if zh
            else f"{over(label)}, {what} of {name} {how_en} {metric_value(value, metric)}; "
            f"only {at}{part} has data, too few buckets to read a trend."
        )
        if len(buckets) == 1:  # the window is one bucket: its value is all there is to say
            answer = (
                f"{label}{name}的{what}{'合计' if metric == 'gpu_hours' else '平均为'}"
                f"{metric_value(value, metric, True)}。"
                if zh
                else f"{over(label)}, {what} of {name} {how_en} {metric_value(value, metric)}."
            )
    elif few < len(buckets):
        # Partial coverage ("last month" with a few days of history): the mean is of those.
        total = len(buckets)
        answer += (
            f"（按{_BUCKET_ZH.get(gran, gran)}统计的{total}个时间段中只有{few}个有数据，"
            f"从{_bucket_time(points[0]['start'], gran, True)}开始。）"
            if zh
            else f" Only {few} of the window's {total} {_BUCKET_EN.get(gran, gran)} buckets "
            f"{'has' if few == 1 else 'have'} data, "
            f"from {_bucket_time(points[0]['start'], gran, False)}."
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
    if single:
        pass  # its one value is the answer
    elif zh:
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
