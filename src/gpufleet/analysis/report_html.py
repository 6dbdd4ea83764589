"""The FinOps report as one self-contained HTML page: inline CSS and inline SVG charts.

Nothing is loaded when the page is viewed (no script, stylesheet, font or image from
anywhere), so it can be mailed, archived or opened offline. Charts come from
:mod:`gpufleet.analysis.svg_charts`: daily utilization with the target and the forecast's
prediction bands, and idle-allocated cost per namespace. Every value taken from the data is
HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from gpufleet.analysis.drilldown import DrillDown
from gpufleet.analysis.report import (
    Report,
    fmt_hours,
    fmt_pct,
    fmt_rate,
    fmt_time,
    fmt_usd,
)
from gpufleet.analysis.svg_charts import Band, BandSeries, bar_chart, line_chart
from gpufleet.analysis.trends import STEP_S

__all__ = ["render_html"]

TOP_RECOMMENDATIONS = 10

_CSS = """
:root { color-scheme: light dark; --muted: #6b7280; --line: #d1d5db; --card: #f3f4f6; }
@media (prefers-color-scheme: dark) { :root { --line: #374151; --card: #1f2937; } }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  line-height: 1.45; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6rem; margin-bottom: 4px; }
h2 { font-size: 1.2rem; margin-top: 32px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
.meta, .muted { color: var(--muted); }
.headline { list-style: none; padding: 0; display: grid; gap: 8px; }
.headline li { background: var(--card); border-radius: 6px; padding: 10px 14px; }
.headline b { display: inline-block; min-width: 11em; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 0.92rem; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
  vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
svg.chart { max-width: 100%; height: auto; margin: 8px 0; }
details { margin: 2px 0; }
dt { font-weight: 600; margin-top: 8px; }
dd { margin-left: 16px; }
code { font-size: 0.9em; }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool]) -> str:
    """A table from already-escaped cells; ``numeric`` columns are right-aligned."""

    def cls(i: int) -> str:
        return ' class="num"' if numeric[i] else ""

    head = "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(header))
    body = "\n".join(
        "<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _summary(report: Report) -> str:
    labels = ("GPU utilization", "Potential savings", "Recommendation", "Expected improvement")
    items = []
    for label, sentence in zip(labels, report.headline.sentences(), strict=True):
        text = sentence.split(": ", 1)[1] if sentence.startswith(label + ": ") else sentence
        items.append(f"<li><b>{_e(label)}</b> {_e(text)}</li>")
    return '<ul class="headline">\n' + "\n".join(items) + "\n</ul>"


def _utilization(report: Report) -> str:
    u, t = report.utilization, report.trends
    step = STEP_S.get(t.series.granularity, 86_400.0)
    points = [(p.mid_s, p.value) for p in t.series.points]
    forecast: list[tuple[float, float]] = []
    bands: list[BandSeries] = []
    if t.forecast is not None:
        fpoints = [p for p in t.forecast.points if p.start_s is not None]
        forecast = [((p.start_s or 0.0) + step / 2, p.value) for p in fpoints]
        bands = [
            BandSeries(
                "95 % prediction interval",
                tuple(Band((p.start_s or 0.0) + step / 2, p.lo95, p.hi95) for p in fpoints),
                0.12,
            ),
            BandSeries(
                "80 % prediction interval",
                tuple(Band((p.start_s or 0.0) + step / 2, p.lo80, p.hi80) for p in fpoints),
                0.25,
            ),
        ]
    chart = line_chart(
        points,
        title="Daily GPU utilization (%)",
        forecast=forecast,
        bands=bands,
        reference=report.target_util_pct,
        reference_label=f"target {report.target_util_pct:g} %",
        y_max=100.0,
        desc=(
            f"Mean {fmt_pct(u.mean_gpu_util_pct)} over {report.window.label()}; the shaded band "
            "is the forecast's prediction interval."
        ),
    )
    totals = _table(
        ["GPUs", "GPU-hours", "allocation rate", "idle", "mean util", "p95 util", "memory"],
        [
            [
                _e(u.gpus),
                _e(fmt_hours(u.gpu_hours)),
                _e(fmt_rate(u.allocation_rate)),
                _e(fmt_rate(u.idle_fraction)),
                _e(fmt_pct(u.mean_gpu_util_pct)),
                _e(fmt_pct(u.p95_gpu_util_pct)),
                _e(fmt_pct(u.mean_mem_used_pct)),
            ]
        ],
        [True] * 7,
    )
    facts = []
    if t.slope is not None:
        facts.append(
            f"Trend {t.slope.per_day:+.2f} points per day ({t.slope.direction}, {t.slope.n} days)."
        )
    c = t.comparison
    if c.note:
        facts.append(f"Previous window ({c.window_a.label()}): {c.note}.")
    elif c.value_a is not None and c.value_b is not None and c.change is not None:
        facts.append(
            f"Previous window ({c.window_a.label()}): {fmt_pct(c.value_a)} -> "
            f"{fmt_pct(c.value_b)} ({c.change:+.1f} points)."
        )
    facts += [
        f"Shift on {fmt_time(cp.ts_s, '%Y-%m-%d')}: {fmt_pct(cp.before_mean)} -> "
        f"{fmt_pct(cp.after_mean)}."
        for cp in t.change_points
    ]
    parts = ['<section id="utilization">', "<h2>Utilization</h2>", totals, chart]
    if facts:
        parts.append("<p>" + " ".join(_e(f) for f in facts) + "</p>")
    if u.groups:
        parts.append(
            f'<p class="muted">Per namespace (idle below {u.workload_idle_threshold_pct:g} %, '
            "from workload rows):</p>"
        )
        parts.append(
            _table(
                ["namespace", "GPUs", "GPU-hours held", "idle", "mean util"],
                [
                    [
                        _e(g.key),
                        _e(g.gpus),
                        _e(fmt_hours(g.gpu_hours)),
                        _e(fmt_rate(g.idle_fraction)),
                        _e(fmt_pct(g.mean_gpu_util_pct)),
                    ]
                    for g in u.groups
                ],
                [False, True, True, True, True],
            )
        )
    parts.append("</section>")
    return "\n".join(parts)


def _waste(report: Report) -> str:
    w = report.waste
    chart = bar_chart(
        [(g.key, g.monthly_idle_allocated_cost_usd) for g in w.groups],
        title="Idle allocated cost per namespace (USD a month)",
        value_format=fmt_usd,
        desc=(
            f"{fmt_usd(w.monthly_idle_allocated_cost_usd)} a month in all; unallocated GPU-time "
            f"adds {fmt_usd(w.monthly_unallocated_cost_usd)}."
        ),
    )
    parts = [
        '<section id="waste">',
        "<h2>Idle cost</h2>",
        "<p>"
        + _e(
            f"Idle allocated: {fmt_hours(w.idle_allocated_gpu_hours)} GPU-hours, "
            f"{fmt_usd(w.idle_allocated_cost_usd)} in the window, "
            f"{fmt_usd(w.monthly_idle_allocated_cost_usd)} a month. Unallocated: "
            f"{fmt_hours(w.unallocated_gpu_hours)} GPU-hours, "
            f"{fmt_usd(w.monthly_unallocated_cost_usd)} a month. Efficiency (used / "
            f"allocated): {fmt_rate(w.efficiency)}."
        )
        + "</p>",
        chart,
    ]
    if w.groups:
        parts.append(
            _table(
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
                        _e(g.key),
                        _e(fmt_hours(g.allocated_gpu_hours)),
                        _e(fmt_hours(g.idle_allocated_gpu_hours)),
                        _e(fmt_usd(g.idle_allocated_cost_usd)),
                        _e(fmt_usd(g.monthly_idle_allocated_cost_usd)),
                        _e(fmt_rate(g.efficiency)),
                    ]
                    for g in w.groups
                ],
                [False, True, True, True, True, True],
            )
        )
    if w.top_wasters:
        parts.append("<h3>Top idle holders</h3>")
        parts.append(
            _table(
                ["workload", "GPUs", "idle GPU-h", "idle share", "a month"],
                [
                    [
                        _e(f"{t.namespace}/{t.user}/{t.workload}"),
                        _e(", ".join(t.gpus)),
                        _e(fmt_hours(t.idle_gpu_hours)),
                        _e(fmt_rate(t.idle_fraction)),
                        _e(fmt_usd(t.monthly_idle_cost_usd)),
                    ]
                    for t in w.top_wasters
                ],
                [False, False, True, True, True],
            )
        )
    parts.append("</section>")
    return "\n".join(parts)


def _recommendations(report: Report) -> str:
    recs = report.recommendations.recommendations
    parts = ['<section id="recommendations">', "<h2>Recommendations</h2>"]
    if not recs:
        parts += ["<p>None: no rule's thresholds were met in this window.</p>", "</section>"]
        return "\n".join(parts)
    counted = set(report.headline.expected_improvement.counted)
    shown = recs[:TOP_RECOMMENDATIONS]
    rows = []
    for i, r in enumerate(shown, 1):
        evidence = "".join(f"<li>{_e(e)}</li>" for e in r.evidence)
        detail = (
            f"<details><summary>{_e(r.title)}</summary><ul>{evidence}"
            f"<li>confidence: {_e(r.confidence_basis)}</li>"
            f"<li>id <code>{_e(r.id)}</code>, action <code>{_e(r.action.type)}</code></li>"
            "</ul></details>"
        )
        rows.append(
            [
                _e(i),
                _e(r.kind),
                detail,
                _e(fmt_usd(r.expected_monthly_saving_usd)),
                _e(r.confidence_label),
                "yes" if r.id in counted else "no",
            ]
        )
    parts.append(
        _table(
            ["#", "kind", "recommendation (open for evidence)", "a month", "confidence", "counted"],
            rows,
            [True, False, False, True, False, False],
        )
    )
    if len(recs) > len(shown):
        parts.append(f'<p class="muted">and {len(recs) - len(shown)} more.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _change(drill: DrillDown | None) -> str:
    parts = ['<section id="change">', "<h2>Change against the previous window</h2>"]
    if drill is None:
        parts += ["<p>No data in the previous window.</p>", "</section>"]
        return "\n".join(parts)
    if drill.note:
        root = drill.root
        text = (
            f"GPU-hours held, {drill.before.label()} against {drill.after.label()} "
            f"({fmt_hours(root.before)} -> {fmt_hours(root.after)}): {drill.note}."
        )
        parts += [f"<p>{_e(text)}</p>", "</section>"]
        return "\n".join(parts)
    parts.append(
        f"<p>{_e(f'GPU-hours held, {drill.before.label()} against {drill.after.label()}:')}</p>"
    )
    parts.append("<ul>" + "".join(f"<li>{_e(n.summary)}</li>" for n in drill.path) + "</ul>")
    if drill.root.children:
        parts.append(
            _table(
                [drill.root.child_level or "namespace", "before", "after", "change", "change %"],
                [
                    [
                        _e(c.name),
                        _e(fmt_hours(c.before)),
                        _e(fmt_hours(c.after)),
                        _e(f"{c.change:+,.1f}" if c.change is not None else "n/a"),
                        _e(f"{c.change_pct:+.0f} %" if c.change_pct is not None else "n/a"),
                    ]
                    for c in drill.root.children
                ],
                [False, True, True, True, True],
            )
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_html(report: Report) -> str:
    """The report as one self-contained HTML document."""
    title = f"GPU fleet report: {report.scope_label}, {report.window.label()}"
    meta = (
        f"Generated {fmt_time(report.generated_s)}; idle below {report.idle_threshold_pct:g} %; "
        f"target utilization {report.target_util_pct:g} %."
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{_e(meta)}</p>',
        "</header>",
        '<section id="summary">',
        "<h2>Summary</h2>",
        _summary(report),
        "</section>",
        _utilization(report),
        _waste(report),
        _recommendations(report),
        _change(report.drilldown),
    ]
    if report.notes:
        parts += [
            '<section id="notes">',
            "<h2>Notes</h2>",
            "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>",
            "</section>",
        ]
    parts += [
        '<section id="definitions">',
        "<h2>Definitions</h2>",
        "<dl>"
        + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in report.definitions.items())
        + "</dl>",
        "</section>",
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"
