"""Small inline-SVG charts for self-contained report pages: no scripts, styles or fonts to load.

* :func:`line_chart`: one measured series (gaps where a value is None), an optional dashed
  forecast with shaded prediction bands, and an optional horizontal reference line (a target).
* :func:`bar_chart`: horizontal bars with their labels and values.

Every piece of text is XML-escaped; numbers are written with at most two decimals. The charts
use ``currentColor`` and a few fixed colours, so they read on light and dark pages alike, and
carry a ``<title>`` and ``aria-label`` for screen readers. They are meant to be inlined in
HTML, so they carry no ``xmlns`` (HTML puts ``<svg>`` in the SVG namespace itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

__all__ = ["Band", "BandSeries", "bar_chart", "line_chart"]

SERIES_COLOR = "#2563eb"
FORECAST_COLOR = "#7c3aed"
REFERENCE_COLOR = "#dc2626"
BAR_COLOR = "#ea580c"
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True, slots=True)
class Band:
    """One x of a band: its low and high y."""

    x: float
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class BandSeries:
    """A shaded band (e.g. an 80 % prediction interval) with its legend label."""

    label: str
    points: tuple[Band, ...]
    opacity: float = 0.25


def _n(v: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _t(text: str) -> str:
    return escape(text, quote=True)


def utc_day(ts_s: float) -> str:
    """``12-25``: month and day of a UTC timestamp (the default x label)."""
    return datetime.fromtimestamp(ts_s, tz=UTC).strftime("%m-%d")


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round-numbered ticks covering ``[lo, hi]``."""
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + 1e-9 * span:
        out.append(round(v, 10))
        v += step
    return out


def _open(width: int, height: int, title: str, desc: str) -> list[str]:
    label = f"{title}. {desc}" if desc else title
    return [
        f'<svg viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{_t(label)}" class="chart" {_FONT}>',
        f"<title>{_t(title)}</title>",
        *([f"<desc>{_t(desc)}</desc>"] if desc else []),
    ]


def line_chart(
    points: Sequence[tuple[float, float | None]],
    *,
    title: str,
    forecast: Sequence[tuple[float, float]] = (),
    bands: Sequence[BandSeries] = (),
    reference: float | None = None,
    reference_label: str = "target",
    series_label: str = "measured",
    forecast_label: str = "forecast",
    y_min: float = 0.0,
    y_max: float | None = None,
    y_format: Callable[[float], str] = lambda v: f"{v:g}",
    x_format: Callable[[float], str] = utc_day,
    desc: str = "",
    width: int = 720,
    height: int = 280,
) -> str:
    """An SVG line chart of ``points`` (x, y or None for a gap) with forecast and bands.

    ``y_max`` defaults to the largest value shown plus a tenth. An empty chart (no values)
    still renders its frame and says so.
    """
    left, right, top, bottom = 48, 16, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for x, _ in points] + [x for x, _ in forecast]
    xs += [b.x for s in bands for b in s.points]
    ys = [y for _, y in points if y is not None] + [y for _, y in forecast]
    ys += [b.hi for s in bands for b in s.points]
    if reference is not None:
        ys.append(reference)
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_hi <= x_lo:
        x_lo, x_hi = x_lo - 0.5, x_hi + 0.5
    top_y = y_max if y_max is not None else (max(ys) * 1.1 if ys and max(ys) > y_min else 1.0)
    if top_y <= y_min:
        top_y = y_min + 1.0

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        y = min(max(y, y_min), top_y)
        return top + plot_h - (y - y_min) / (top_y - y_min) * plot_h

    out = _open(width, height, title, desc)
    out.append(f'<text x="{left}" y="16" font-weight="bold" fill="currentColor">{_t(title)}</text>')
    # Axes and grid.
    for tick in _ticks(y_min, top_y):
        ty = _n(py(tick))
        out.append(
            f'<line x1="{left}" y1="{ty}" x2="{left + plot_w}" y2="{ty}" stroke="currentColor" '
            f'stroke-opacity="0.15"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{ty}" text-anchor="end" dominant-baseline="middle" '
            f'fill="currentColor">{_t(y_format(tick))}</text>'
        )
    labelled = sorted(set(xs))
    if labelled:
        step = max(1, math.ceil(len(labelled) / 8))
        for x in labelled[::step]:
            at = px(x)
            # Labels at the ends of the axis grow inwards so they are not cut off.
            anchor = "start" if at < left + 24 else "end" if at > left + plot_w - 24 else "middle"
            out.append(
                f'<text x="{_n(at)}" y="{top + plot_h + 18}" text-anchor="{anchor}" '
                f'fill="currentColor">{_t(x_format(x))}</text>'
            )
    out.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="currentColor" stroke-opacity="0.5"/>'
    )
    # Bands, widest first so narrower ones stay visible on top.
    for band in bands:
        pts = sorted(band.points, key=lambda b: b.x)
        if not pts:
            continue
        upper = " ".join(f"{_n(px(b.x))},{_n(py(b.hi))}" for b in pts)
        lower = " ".join(f"{_n(px(b.x))},{_n(py(b.lo))}" for b in reversed(pts))
        out.append(
            f'<polygon points="{upper} {lower}" fill="{FORECAST_COLOR}" '
            f'fill-opacity="{_n(band.opacity)}" stroke="none"><title>{_t(band.label)}</title>'
            "</polygon>"
        )
    if reference is not None:
        ry = _n(py(reference))
        out.append(
            f'<line x1="{left}" y1="{ry}" x2="{left + plot_w}" y2="{ry}" '
            f'stroke="{REFERENCE_COLOR}" stroke-dasharray="6 4"/>'
        )
        out.append(
            f'<text x="{left + plot_w}" y="{_n(py(reference) - 5)}" text-anchor="end" '
            f'fill="{REFERENCE_COLOR}">{_t(reference_label)}</text>'
        )
    # The measured series, broken where a value is missing.
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in sorted(points, key=lambda p: p[0]):
        if y is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x, y))
    for run in runs:
        if len(run) > 1:
            coords = " ".join(f"{_n(px(x))},{_n(py(y))}" for x, y in run)
            out.append(
                f'<polyline points="{coords}" fill="none" stroke="{SERIES_COLOR}" '
                'stroke-width="2"/>'
            )
        for x, y in run:
            out.append(
                f'<circle cx="{_n(px(x))}" cy="{_n(py(y))}" r="3" fill="{SERIES_COLOR}">'
                f"<title>{_t(x_format(x))}: {_t(y_format(y))}</title></circle>"
            )
    if forecast:
        fc = sorted(forecast)
        measured = [p for run in runs for p in run]
        chain = ([max(measured)] if measured else []) + list(fc)
        coords = " ".join(f"{_n(px(x))},{_n(py(y))}" for x, y in chain)
        out.append(
            f'<polyline points="{coords}" fill="none" stroke="{FORECAST_COLOR}" '
            'stroke-width="2" stroke-dasharray="5 4"/>'
        )
    if not ys:
        out.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            'fill="currentColor">no data</text>'
        )
    # Legend.
    legend = [(series_label, SERIES_COLOR, "")]
    if forecast:
        legend.append((forecast_label, FORECAST_COLOR, ' stroke-dasharray="5 4"'))
    if reference is not None:
        legend.append((reference_label, REFERENCE_COLOR, ' stroke-dasharray="6 4"'))
    x = left + plot_w
    for label, color, dash in reversed(legend):
        x -= 14 + 7 * len(label) + 12
        out.append(
            f'<line x1="{_n(x)}" y1="12" x2="{_n(x + 12)}" y2="12" stroke="{color}" '
            f'stroke-width="2"{dash}/>'
        )
        out.append(f'<text x="{_n(x + 16)}" y="16" fill="currentColor">{_t(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    value_format: Callable[[float], str] = lambda v: f"{v:,.0f}",
    desc: str = "",
    width: int = 720,
    bar_height: int = 22,
    max_bars: int = 12,
) -> str:
    """An SVG horizontal bar chart of ``(label, value)``, in the given order.

    Negative values are drawn as empty bars with their value; at most ``max_bars`` are shown
    and the chart says how many were left out.
    """
    shown = list(bars[:max_bars])
    left_out = len(bars) - len(shown)
    label_w = min(260, 16 + 7 * max((len(lb) for lb, _ in shown), default=4))
    value_w = 90
    top, gap = 28, 6
    rows = max(len(shown), 1)
    height = top + rows * (bar_height + gap) + (24 if left_out else 8)
    plot_w = width - label_w - value_w
    biggest = max((v for _, v in shown), default=0.0)
    out = _open(width, height, title, desc)
    out.append(f'<text x="4" y="16" font-weight="bold" fill="currentColor">{_t(title)}</text>')
    if not shown:
        out.append(f'<text x="{label_w}" y="{top + 14}" fill="currentColor">no data</text>')
    for i, (label, value) in enumerate(shown):
        y = top + i * (bar_height + gap)
        w = plot_w * value / biggest if biggest > 0 and value > 0 else 0.0
        short = label if len(label) <= 36 else label[:35] + "…"
        mid = _n(y + bar_height / 2)
        out.append(
            f'<text x="{label_w - 8}" y="{mid}" text-anchor="end" dominant-baseline="middle" '
            f'fill="currentColor">{_t(short)}<title>{_t(label)}</title></text>'
        )
        out.append(
            f'<rect x="{label_w}" y="{y}" width="{_n(w)}" height="{bar_height}" '
            f'fill="{BAR_COLOR}"><title>{_t(label)}: {_t(value_format(value))}</title></rect>'
        )
        out.append(
            f'<text x="{_n(label_w + w + 6)}" y="{mid}" dominant-baseline="middle" '
            f'fill="currentColor">{_t(value_format(value))}</text>'
        )
    if left_out:
        y = top + rows * (bar_height + gap) + 12
        out.append(
            f'<text x="{label_w}" y="{y}" fill="currentColor" fill-opacity="0.7">'
            f"and {left_out} more not shown</text>"
        )
    out.append("</svg>")
    return "\n".join(out)
