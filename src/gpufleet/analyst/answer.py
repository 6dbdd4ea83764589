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


def _held_now(r: Result, name: str, zh: bool) -> tuple[str, list[str]]:
    """Realtime of a namespace, user, workload or kind: the GPUs it holds now (those it held
    this hour that are still allocated; utilization from their samples now)."""
    gpus = r["held_now_gpus"]
    labels = r.get("labels", {})
    since = r["attributed_since"][11:16]
    freed = [labels.get(k, k) for k in r["freed"]]
    freed_note = (
        [
            (f"本小时（{since}起）曾占用、现已释放的GPU：" + "、".join(freed))
            if zh
            else f"Held earlier this hour (since {since} UTC) and free now: " + ", ".join(freed)
        ]
        if freed
        else []
    )
    if gpus == 0:
        return (
            f"截至{r['as_of']}，{name}没有占用GPU。"
            if zh
            else f"{name} holds no GPU as of {r['as_of']}.",
            freed_note,
        )
    answer = (
        f"{name}目前占用{gpus}块GPU，平均利用率{pct(r['held_now_mean_gpu_util_pct'], True)}"
        f"（截至{r['as_of']}；归属按小时记录，本小时自{since}起）。"
        if zh
        else f"{name} holds {gpus} GPU{'s' if gpus != 1 else ''} now, mean utilization "
        f"{pct(r['held_now_mean_gpu_util_pct'])} as of {r['as_of']} (who holds a GPU is "
        f"recorded per hour: GPUs {name} held since {since} UTC that are allocated now)."
    )
    held = sorted(
        (g for g in r["held_now"] if g.get("mean_gpu_util_pct") is not None),
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
    shared = r.get("also_held_by") or {}
    if shared:
        sep = "、" if zh else ", "
        listed = sep.join(
            f"{labels.get(k, k)}（{sep.join(v)}）" if zh else f"{labels.get(k, k)} ({sep.join(v)})"
            for k, v in shared.items()
        )
        insights.append(
            f"本小时也曾被其他人占用（小时内的交接无法区分先后）：{listed}"
            if zh
            else f"Also held by others this hour (a hand-over within the hour cannot be "
            f"ordered): {listed}."
        )
    return answer, insights + freed_note


def premise_note(premise: str | None, r: Result, zh: bool) -> str:
    """When a why-question says the metric moved one way and the data moved the other
    ("why did it drop?" after a rise), say so first; else nothing."""
    change = r.get("root", {}).get("change")
    if premise is None or not change or (change > 0) == (premise == "up"):
        return ""
    said_down, rose = premise == "down", change > 0
    if zh:
        return f"它并没有{'下降' if said_down else '上升'}，而是{'上升' if rose else '下降'}了。"
    return f"It did not {'drop' if said_down else 'rise'}: it {'rose' if rose else 'fell'}. "


# ---- compare -------------------------------------------------------------------------------


def compare_windows(
    r: Result, first_label: str, second_label: str, name: str, zh: bool
) -> tuple[str, list[str]]:
    c = r["window_comparison"]
    metric = c["metric"]
    what = METRIC_ZH[metric] if zh else METRIC_EN[metric]
    now, before = c.get("value_b"), c.get("value_a")
    change = c.get("change")
    hours_b, hours_a = c["window_b"].get("hours"), c["window_a"].get("hours")
    uneven = bool(hours_a and hours_b and hours_a != hours_b)
    # Totals of windows of different lengths are not compared (a rate would be).
    totals_apart = metric == "gpu_hours" and uneven and now is not None and before is not None
    verb, verb_zh = ("totalled", "合计") if metric == "gpu_hours" else ("averaged", "平均")
    if totals_apart and not c.get("note"):
        answer = (
            f"{name}{first_label}的{what}{verb_zh}{metric_value(now, metric, True)}"
            f"（{num(hours_b, 0)}小时），{second_label}为{metric_value(before, metric, True)}"
            f"（{num(hours_a, 0)}小时）；两个时间段长度不同，总量不作比较。"
            if zh
            else f"{capitalized(what)} of {name} {verb} {metric_value(now, metric)} "
            f"{in_window(first_label)} ({num(hours_b, 0)} h) and {metric_value(before, metric)} "
            f"{in_window(second_label)} ({num(hours_a, 0)} h); the windows differ in length, "
            "so the totals are not compared."
        )
    elif c.get("note"):
        # window_a is the reference (the earlier window: see the engine); its history is short.
        note = coverage_note(c["window_a"], c.get("history_coverage"), second_label, zh)
        answer = (
            f"{name}{first_label}的{what}{verb_zh}{metric_value(now, metric, True)}，"
            f"{second_label}为{metric_value(before, metric, True)}；{note}。"
            if zh
            else f"{capitalized(what)} of {name} {verb} {metric_value(now, metric)} "
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
            f"{name}{first_label}的{what}{verb_zh}{metric_value(now, metric, True)}，"
            f"{'与' if moved(change, metric, True) == '持平' else '比'}{second_label}的"
            f"{metric_value(before, metric, True)}{moved(change, metric, True)}。"
        )
    else:
        answer = (
            f"{capitalized(what)} of {name} {verb} {metric_value(now, metric)} "
            f"{in_window(first_label)}, {moved(change, metric, False)} "
            f"from {metric_value(before, metric)} "
            f"{in_window(second_label)}."
        )
    insights = []
    if c.get("change_pct") is not None and not totals_apart:
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
    if uneven and not totals_apart:
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


HOLDERS = ("namespace", "user", "workload", "workload_kind")
"""Scope keys of holders: a scope with one of them has no unallocated GPU-time."""


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
    if any(k in r.get("scope", {}) for k in HOLDERS):
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
