"""A drill-down in words, English or Chinese, from the ``drill_down`` tool's result only.

A drill-down counts GPU-time *held by workloads* (analysis/drilldown.py): its utilization is
that of allocated GPU-time, not of the whole fleet, so the answer names it so ("utilization
of the GPU-time workloads held"), and a fleet trend of the same window, which counts idle
unallocated GPUs too, reads lower without contradicting it.

Each line says one entity's numbers and how it moved its parent: a rise or fall of its own,
or, for an entity present in one window only, whether its arrival or departure pulled the
parent's average up or down (the contribution's sign says which; nothing is computed here).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from gpufleet.analyst.answer import (
    Result,
    capitalized,
    coverage_note,
    frac_pct,
    in_window,
    metric_change,
    metric_value,
    moved,
    num,
)

_LEVEL_ZH = {
    "cluster": "集群",
    "namespace": "命名空间",
    "user": "用户",
    "workload": "工作负载",
    "node": "节点",
    "gpu_model": "GPU型号",
    "gpu": "GPU",
}


def _held(metric: str, root: Mapping[str, Any], name: str, zh: bool) -> str:
    """What the drill-down measures, of whom: "utilization of the GPU-time workloads held in
    gpu-cluster-01", "GPU-hours held by user_a"."""
    whole = root["level"] in ("cluster", "node", "gpu_model", "gpu")
    if zh:
        who = f"{name}中工作负载占用的" if whole else f"{name}占用的"
        return who + ("GPU时间的利用率" if metric == "utilization" else "GPU时数")
    what = "utilization of the GPU-time" if metric == "utilization" else "GPU-hours"
    return f"{what} workloads held in {name}" if whole else f"{what} held by {name}"


_MAX_SHARE = 1.5
"""A share of a parent's change above this (others moved the other way, or the parent
barely changed) is not shown: a "398 % of the change" explains nothing."""


def _root_name(root: Mapping[str, Any], zh: bool) -> str:
    if root["level"] == "cluster" and root["name"] == "all":
        return "整个集群" if zh else "the fleet"
    return str(root["name"])


def _who(node: Mapping[str, Any], zh: bool) -> str:
    level, name = str(node["level"]), str(node["name"])
    if name.startswith(level):  # "user_a", not "user user_a"
        return name
    return f"{_LEVEL_ZH.get(level, level)} {node['name']}" if zh else f"{level} {node['name']}"


def _line(
    node: Mapping[str, Any],
    parent: Mapping[str, Any],
    metric: str,
    labels: tuple[str, str],
    compared: bool,
    zh: bool,
) -> str:
    """One entity: its values, its change and its part of ``parent``'s change."""
    b, a = node.get("before"), node.get("after")
    who = _who(node, zh)
    pname = _root_name(parent, zh) if parent["level"] == "cluster" else str(parent["name"])
    share = node.get("share_of_parent_change")
    pulled_up = (node.get("contribution") or 0.0) > 0
    if not compared and b is None and a is not None:
        # Nothing to compare with: what it is now, and how big a part of its parent.
        hours, weight = node.get("gpu_hours_after"), node.get("weight_after")
        size = (
            f"，{num(hours)} GPU小时"
            + (f"（占{pname}的{frac_pct(weight, True)}）" if weight else "")
            if zh
            else f" over {num(hours)} GPU-h"
            + (f" ({frac_pct(weight)} of the GPU-time of {pname})" if weight else "")
        )
        text = (
            f"{who}：{metric_value(a, metric, True)}{size}"
            if zh
            else (f"{who}: {metric_value(a, metric)}{size}")
        )
    elif not compared:
        text = (
            f"{who}：{metric_value(b, metric, True)} → {metric_value(a, metric, True)}（未比较）"
            if zh
            else f"{who}: {metric_value(b, metric)} -> {metric_value(a, metric)} (not compared)"
        )
    elif b is None or a is None:
        value = a if b is None else b
        if zh:
            when = f"{labels[0]}新出现" if b is None else f"{labels[0]}已不再出现"
            effect = ""
            # A parent new itself has no earlier average for its parts to pull.
            if metric == "utilization" and parent.get("before") is not None:
                effect = f"，{'拉高' if pulled_up else '拉低'}了{pname}的平均值"
            text = f"{who}{when}（{metric_value(value, metric, True)}）{effect}"
        else:
            when = f"new {in_window(labels[0])}" if b is None else f"gone {in_window(labels[0])}"
            effect = ""
            if metric == "utilization" and parent.get("before") is not None:
                effect = f", which pulled the average of {pname} {'up' if pulled_up else 'down'}"
            text = f"{who}: {when} ({metric_value(value, metric)}){effect}"
    else:
        change = node.get("change")
        if zh:
            text = (
                f"{who}：{metric_value(b, metric, True)} → {metric_value(a, metric, True)}"
                f"（{metric_change(change, metric, True)}）"
            )
        else:
            text = (
                f"{who}: {metric_value(b, metric)} -> {metric_value(a, metric)} "
                f"({metric_change(change, metric)})"
            )
        mix, rate = node.get("mix_effect"), node.get("rate_effect")
        wb, wa = node.get("weight_before"), node.get("weight_after")
        if mix is not None and rate is not None and abs(mix) > abs(rate) and wb and wa:
            # Its own rate moved less than its weight did: say so, or the line contradicts
            # the share it is given ("+0.1 points, 75 % of a fall").
            text += (
                f"；它占{pname}GPU时间的比例从{frac_pct(wb, True)}变为{frac_pct(wa, True)}，"
                f"{'拉高' if mix > 0 else '拉低'}了平均值"
                if zh
                else f"; its share of the GPU-time of {pname} went from {frac_pct(wb)} to "
                f"{frac_pct(wa)}, which pulled the average {'up' if mix > 0 else 'down'}"
            )
    if compared and share is not None and parent.get("change") and share <= _MAX_SHARE:
        if share >= 0:
            text += (
                f"，占{pname}变化的{frac_pct(share, True)}"
                if zh
                else f", {frac_pct(share)} of the change of {pname}"
            )
        else:
            text += f"，与{pname}的变化方向相反" if zh else f", against the change of {pname}"
    if node["level"] == "user":
        jb, ja = node.get("jobs_started_before"), node.get("jobs_started_after")
        text += f"；启动的作业 {jb} → {ja}" if zh else f"; jobs started {jb} -> {ja}"
    return text + ("" if zh else ".")


def drilldown(r: Result, first_label: str, second_label: str, zh: bool) -> tuple[str, list[str]]:
    """``first_label`` names the later window (``after``), ``second_label`` the earlier."""
    root = r["root"]
    metric = r["metric"]
    name = _root_name(root, zh)
    before, after = root.get("before"), root.get("after")
    change, rel = root.get("change"), root.get("change_pct")
    compared = not r.get("note")
    held = _held(metric, root, name, zh)
    if zh:
        answer = f"{first_label}{held}为{metric_value(after, metric, True)}"
        if before is None:
            answer += f"；{second_label}没有数据，以下是{first_label}的主要构成。"
        elif not compared:
            note = coverage_note(r["before"], r.get("history_coverage"), second_label, True)
            answer += f"，{second_label}为{metric_value(before, metric, True)}；{note}。"
        else:
            rel_text = f"（{num(rel)}%）" if rel is not None else ""
            answer += (
                f"，{second_label}为{metric_value(before, metric, True)}，"
                f"{moved(change, metric, True)}"
                f"{rel_text}。"
            )
    else:
        answer = f"{capitalized(held)} {in_window(first_label)} was {metric_value(after, metric)}"
        if before is None:
            answer += (
                f"; there is no data {in_window(second_label)} to compare with, so these are its "
                "biggest parts."
            )
        elif not compared:
            note = coverage_note(r["before"], r.get("history_coverage"), second_label, False)
            answer += f", against {metric_value(before, metric)} {in_window(second_label)}; {note}."
        else:
            rel_text = f" ({num(rel)} %)" if rel is not None else ""
            answer += (
                f", {moved(change, metric, False)}"
                f"{rel_text} from {metric_value(before, metric)} {in_window(second_label)}."
            )
    path = list(r.get("path", []))
    top = path[1] if len(path) > 1 else None
    if compared and before is not None and change and top is not None:
        share = top.get("share_of_total_change")
        if share is not None and 0 < share <= _MAX_SHARE:
            answer += (
                f"变化主要来自{_who(top, True)}（占{frac_pct(share, True)}）。"
                if zh
                else f" Most of it comes from {_who(top, False)} ({frac_pct(share)} of the change)."
            )
    labels = (first_label, second_label)
    lines = [_line(n, p, metric, labels, compared, zh) for p, n in itertools.pairwise(path)]
    lines += [_line(c, root, metric, labels, compared, zh) for c in root.get("children", [])[1:4]]
    if metric == "utilization":
        lines.append(
            "只计工作负载占用的GPU时间；未分配的GPU不计入（整个集群的利用率请问趋势）"
            if zh
            else "Only GPU-time held by workloads counts here; unallocated GPUs are left out "
            "(ask for the trend for the utilization of all GPUs)."
        )
    return answer, lines
