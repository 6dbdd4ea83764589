"""The FinOps report as Markdown (CommonMark with GitHub tables), to paste or forward.

The headline's four lines come first, as in seed 000 section 5, then utilization, the daily
trend and forecast, idle cost per namespace, the change against the previous window, the
recommendations with their evidence, notes and definitions. Every name taken from the data
is escaped (:func:`md_escape`), so a namespace cannot inject markup, HTML or table cells.
"""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.analysis.drilldown import DrillDown, DrillNode
from gpufleet.analysis.report import (
    Report,
    fmt_hours,
    fmt_pct,
    fmt_rate,
    fmt_time,
    fmt_usd,
)
from gpufleet.analysis.trends import TrendResult

__all__ = ["md_escape", "render_markdown"]

_SPECIAL = frozenset("\\`*[]<|~&")
"""Characters escaped everywhere; ``_`` only where it could start or end emphasis."""
TOP_RECOMMENDATIONS = 10


def md_escape(text: str) -> str:
    """``text`` with Markdown's active characters backslash-escaped and newlines flattened.

    Underscores inside a word (``user_a``) stay as they are: CommonMark never reads them as
    emphasis.
    """
    flat = " ".join(text.splitlines())
    out = []
    for i, ch in enumerate(flat):
        inner = 0 < i < len(flat) - 1 and flat[i - 1].isalnum() and flat[i + 1].isalnum()
        out.append("\\" + ch if ch in _SPECIAL or (ch == "_" and not inner) else ch)
    return "".join(out)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None
) -> list[str]:
    """A GitHub table of escaped cells; ``numeric`` columns (default: all but the first) are
    right-aligned."""
    flags = numeric if numeric is not None else [i > 0 for i in range(len(header))]
    align = ["---:" if n else "---" for n in flags]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _summary(report: Report) -> list[str]:
    return [f"- {md_escape(line)}" for line in report.headline.sentences()]


def _utilization(report: Report) -> list[str]:
    u = report.utilization
    lines = [
        "## Utilization",
        "",
        *_table(
            ["GPUs", "GPU-hours", "allocation rate", "idle", "mean util", "p95 util", "memory"],
            [
                [
                    str(u.gpus),
                    fmt_hours(u.gpu_hours),
                    fmt_rate(u.allocation_rate),
                    fmt_rate(u.idle_fraction),
                    fmt_pct(u.mean_gpu_util_pct),
                    fmt_pct(u.p95_gpu_util_pct),
                    fmt_pct(u.mean_mem_used_pct),
                ]
            ],
            [True] * 7,
        ),
        "",
    ]
    if u.groups:
        lines += [
            f"Per namespace (idle below {u.workload_idle_threshold_pct:g} %, from workload rows):",
            "",
            *_table(
                ["namespace", "GPUs", "GPU-hours held", "idle", "mean util"],
                [
                    [
                        md_escape(g.key),
                        str(g.gpus),
                        fmt_hours(g.gpu_hours),
                        fmt_rate(g.idle_fraction),
                        fmt_pct(g.mean_gpu_util_pct),
                    ]
                    for g in u.groups
                ],
            ),
            "",
        ]
    return lines


def _trend(trends: TrendResult) -> list[str]:
    lines = ["## Daily utilization", ""]
    slope, comp = trends.slope, trends.comparison
    facts = []
    if slope is not None:
        facts.append(
            f"- Trend: {slope.per_day:+.2f} points per day ({slope.direction}, {slope.n} days)"
        )
    if comp.note:
        facts.append(
            f"- Against the previous window ({md_escape(comp.window_a.label())}): "
            f"{md_escape(comp.note)}"
        )
    elif comp.value_a is not None and comp.value_b is not None and comp.change is not None:
        facts.append(
            f"- Against the previous window ({md_escape(comp.window_a.label())}): "
            f"{fmt_pct(comp.value_a)} -> {fmt_pct(comp.value_b)} ({comp.change:+.1f} points)"
        )
    for cp in trends.change_points:
        facts.append(
            f"- Shift on {fmt_time(cp.ts_s, '%Y-%m-%d')}: {fmt_pct(cp.before_mean)} -> "
            f"{fmt_pct(cp.after_mean)}"
        )
    if facts:
        lines += [*facts, ""]
    rows = [
        [
            fmt_time(p.start_s, "%Y-%m-%d") + (" (part)" if p.partial else ""),
            fmt_pct(p.value),
            fmt_hours(p.gpu_hours),
        ]
        for p in trends.series.points
    ]
    lines += [*_table(["day (UTC)", "utilization", "GPU-hours"], rows), ""]
    fc = trends.forecast
    if fc is not None and fc.points:
        lines += [
            f"Forecast ({md_escape(fc.method)}):",
            "",
            *_table(
                ["day (UTC)", "forecast", "80 % interval", "95 % interval"],
                [
                    [
                        fmt_time(p.start_s, "%Y-%m-%d"),
                        fmt_pct(p.value),
                        f"{fmt_pct(p.lo80)} - {fmt_pct(p.hi80)}",
                        f"{fmt_pct(p.lo95)} - {fmt_pct(p.hi95)}",
                    ]
                    for p in fc.points
                ],
            ),
            "",
        ]
    return lines


def _waste(report: Report) -> list[str]:
    w = report.waste
    lines = [
        "## Idle cost",
        "",
        f"- Idle allocated: {fmt_hours(w.idle_allocated_gpu_hours)} GPU-hours, "
        f"{fmt_usd(w.idle_allocated_cost_usd)} in the window, "
        f"{fmt_usd(w.monthly_idle_allocated_cost_usd)} a month",
        f"- Unallocated: {fmt_hours(w.unallocated_gpu_hours)} GPU-hours, "
        f"{fmt_usd(w.unallocated_cost_usd)} in the window, "
        f"{fmt_usd(w.monthly_unallocated_cost_usd)} a month",
        f"- Efficiency (used / allocated): {fmt_rate(w.efficiency)}",
        "",
    ]
    if w.groups:
        lines += [
            *_table(
                [
                    "namespace",
                    "allocated GPU-h",
                    "idle GPU-h",
                    "idle cost",
                    "a month",
                    "efficiency",
                ],
                [
                    [
                        md_escape(g.key),
                        fmt_hours(g.allocated_gpu_hours),
                        fmt_hours(g.idle_allocated_gpu_hours),
                        fmt_usd(g.idle_allocated_cost_usd),
                        fmt_usd(g.monthly_idle_allocated_cost_usd),
                        fmt_rate(g.efficiency),
                    ]
                    for g in w.groups
                ],
            ),
            "",
        ]
    if w.top_wasters:
        lines += ["Top idle holders:", ""]
        lines += [
            f"- {md_escape(f'{t.namespace}/{t.user}/{t.workload}')} on "
            f"{md_escape(', '.join(t.gpus))}: {fmt_hours(t.idle_gpu_hours)} of "
            f"{fmt_hours(t.held_gpu_hours)} GPU-hours idle ({fmt_rate(t.idle_fraction)}), "
            f"{fmt_usd(t.monthly_idle_cost_usd)} a month"
            for t in w.top_wasters
        ]
        lines.append("")
    return lines


def _change_row(n: DrillNode) -> list[str]:
    return [
        md_escape(n.name),
        fmt_hours(n.before),
        fmt_hours(n.after),
        f"{n.change:+,.1f}" if n.change is not None else "n/a",
        f"{n.change_pct:+.0f} %" if n.change_pct is not None else "n/a",
    ]


def _change(drill: DrillDown | None) -> list[str]:
    lines = ["## Change against the previous window", ""]
    if drill is None:
        return [*lines, "No data in the previous window.", ""]
    if drill.note:
        root = drill.root
        return [
            *lines,
            f"GPU-hours held, {md_escape(drill.before.label())} against "
            f"{md_escape(drill.after.label())} ({fmt_hours(root.before)} -> "
            f"{fmt_hours(root.after)}): {md_escape(drill.note)}.",
            "",
        ]
    lines += [
        f"GPU-hours held, {md_escape(drill.before.label())} against "
        f"{md_escape(drill.after.label())}:",
        "",
        *[f"- {md_escape(n.summary)}" for n in drill.path],
        "",
    ]
    children = drill.root.children
    if children:
        level = drill.root.child_level or "namespace"
        lines += [
            *_table(
                [level, "before", "after", "change", "change %"],
                [_change_row(c) for c in children],
            ),
            "",
        ]
    return lines


def _recommendations(report: Report) -> list[str]:
    recs = report.recommendations.recommendations
    lines = ["## Recommendations", ""]
    if not recs:
        return [*lines, "None: no rule's thresholds were met in this window.", ""]
    counted = set(report.headline.expected_improvement.counted)
    shown = recs[:TOP_RECOMMENDATIONS]
    lines += _table(
        ["#", "kind", "recommendation", "a month", "confidence", "counted"],
        [
            [
                str(i),
                md_escape(r.kind),
                md_escape(r.title),
                fmt_usd(r.expected_monthly_saving_usd),
                md_escape(r.confidence_label),
                "yes" if r.id in counted else "no",
            ]
            for i, r in enumerate(shown, 1)
        ],
        [True, False, False, True, False, False],
    )
    lines.append("")
    for i, r in enumerate(shown, 1):
        lines += [f"{i}. {md_escape(r.title)} (id `{r.id}`)", ""]
        lines += [f"   - {md_escape(e)}" for e in r.evidence]
        lines += [f"   - confidence: {md_escape(r.confidence_basis)}", ""]
    if len(recs) > len(shown):
        lines += [f"and {len(recs) - len(shown)} more.", ""]
    return lines


def render_markdown(report: Report) -> str:
    """The report as one Markdown document."""
    scope = md_escape(report.scope_label)
    lines = [
        f"# GPU fleet report: {scope}, {md_escape(report.window.label())}",
        "",
        f"Generated {fmt_time(report.generated_s)}; idle below "
        f"{report.idle_threshold_pct:g} %; target utilization {report.target_util_pct:g} %.",
        "",
        "## Summary",
        "",
        *_summary(report),
        "",
        *_utilization(report),
        *_trend(report.trends),
        *_waste(report),
        *_change(report.drilldown),
        *_recommendations(report),
    ]
    if report.notes:
        lines += ["## Notes", "", *[f"- {md_escape(n)}" for n in report.notes], ""]
    lines += ["## Definitions", ""]
    lines += [f"- **{md_escape(k)}**: {md_escape(v)}" for k, v in report.definitions.items()]
    return "\n".join(lines) + "\n"
