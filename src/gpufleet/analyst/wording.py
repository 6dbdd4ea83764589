"""How answers name a window ("the past 7 days", "上周", "2026年10月") and start a sentence."""

from __future__ import annotations

import re

from gpufleet.analyst import answer as say
from gpufleet.analyst.timepoints import MONTHS as _MONTHS
from gpufleet.analyst.timerange import TimeRange
from gpufleet.analyst.understand import Understanding

_POINT = r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2})?"
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ZH_LABELS = {
    "this week": "本周",
    "last week": "上周",
    "yesterday": "昨天",
    "today": "今天",
    "last month": "上个月",
    "this month": "本月",
    "past 24 hours": "过去24小时",
    "past 7 days": "过去7天",
    "the week before": "前一周",
    "the week before last": "上上周",
    "since Monday": "自周一以来",
    "since Tuesday": "自周二以来",
    "since Wednesday": "自周三以来",
    "since Thursday": "自周四以来",
    "since Friday": "自周五以来",
    "since Saturday": "自周六以来",
    "since Sunday": "自周日以来",
    "since yesterday": "自昨天以来",
    "the day before yesterday": "前天",
    "the day before": "前一天",
    "last weekend": "上周末",
    "this year": "今年",
    "last year": "去年",
    "past hour": "过去1小时",
    "the month before last": "上上个月",
    **{d: f"周{'一二三四五六日'[i]}" for i, d in enumerate(_WEEKDAY_NAMES)},
}


def window_label(r: TimeRange, zh: bool) -> str:
    """The range as a sentence names it: "the past 7 days", "last week", "October 2026"."""
    if not zh:
        return f"the {r.label}" if r.label.startswith("past ") else r.label
    if r.label in _ZH_LABELS:
        return _ZH_LABELS[r.label]
    m = re.fullmatch(r"past (\d+(?:\.\d+)?) (minute|hour|day|week|month)s?", r.label)
    if m:
        unit = {"minute": "分钟", "hour": "小时", "day": "天", "week": "周", "month": "个月"}[
            m.group(2)
        ]
        return f"过去{m.group(1)}{unit}"
    m = re.fullmatch(r"the (\d+) (day|hour)s? before", r.label)
    if m:
        return f"之前{m.group(1)}{'天' if m.group(2) == 'day' else '小时'}"
    m = re.fullmatch(f"({_POINT}) to ({_POINT})", r.label)
    if m:
        return f"{m.group(1)}至{m.group(2)}"
    m = re.fullmatch(f"since ({_POINT})", r.label)
    if m:
        return f"自{m.group(1)}以来"
    m = re.fullmatch(f"the hour from ({_POINT})", r.label)
    if m:
        return f"{m.group(1)}起的一小时"
    m = re.fullmatch(r"Q([1-4]) (\d{4})", r.label)
    if m:
        return f"{m.group(2)}年第{m.group(1)}季度"
    if re.fullmatch(r"\d{4}", r.label):
        return f"{r.label}年"
    m = re.fullmatch(r"the ([\d.]+) hours before", r.label)
    if m:
        return f"之前{m.group(1)}小时"
    m = re.fullmatch(r"([A-Z][a-z]+) (\d{4})", r.label)
    if m and m.group(1).lower() in _MONTHS:
        return f"{m.group(2)}年{_MONTHS.index(m.group(1).lower()) + 1}月"
    return r.label


def sentence(text: str, u: Understanding) -> str:
    """``text`` starting with a capital in English, unless it starts with a name, which
    keeps its spelling ("ml-team holds 7 GPUs")."""
    e = u.entities
    names = [v for v in (e.workload, e.user, e.namespace, e.node, e.cluster) if v]
    if u.language != "en" or text.startswith(tuple(names)):
        return text
    return say.capitalized(text)
