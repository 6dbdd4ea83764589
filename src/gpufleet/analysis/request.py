"""What the API and the CLI share when they ask for an analysis: windows, scopes, kind groups.

Both surfaces take times as text (ISO 8601, epoch seconds, ``now``, ``-7d``) and scope levels
as optional strings; this module turns them into :class:`~gpufleet.analysis.scope.Window` and
:class:`~gpufleet.analysis.scope.Scope` the same way for both, and holds the defaults they
document, so ``gpufleet analyze waste`` and ``GET /analysis/waste`` answer the same question.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.analysis.recommend_types import KINDS, Recommendation, RecommendationSet
from gpufleet.analysis.scope import GROUP_KEYS, Scope, Window
from gpufleet.timeparse import parse_window

DAY_S = 86_400.0
DEFAULT_SPAN_S = 7 * DAY_S
"""Analyses look at the last 7 days unless told otherwise (a weekly cycle, seed 001)."""
REPORT_SPAN_S = 30 * DAY_S
"""The report covers the last 30 days by default (savings are quoted per month)."""

KIND_GROUPS: Mapping[str, tuple[str, ...]] = {
    "scale-up": ("scale_up",),
    "scale-down": ("scale_down",),
    "consolidate": ("consolidate", "mig_or_share"),
}
"""Recommendation kinds behind each ``/optimize/*`` endpoint ."""


def analysis_window(
    start: str | None,
    end: str | None,
    *,
    default_span_s: float = DEFAULT_SPAN_S,
    now_s: float | None = None,
) -> Window:
    """The window ``[start, end)``; ``end`` defaults to now, ``start`` to ``end - span``.

    Raises:
        TimeParseError: an unreadable time, or ``start`` not before ``end``.
    """
    now = time.time() if now_s is None else now_s
    start_s, end_s = parse_window(start, end, now_s=now, default_span_s=default_span_s)
    return Window(start_s, end_s)


def scope_of(levels: Mapping[str, str | None]) -> Scope:
    """A scope from ``{level: value}`` (None or empty values are left out).

    Raises:
        HistoryQueryError: a key that is not a scope level; the message lists the levels.
    """
    unknown = sorted(k for k in levels if k not in GROUP_KEYS)
    if unknown:
        raise HistoryQueryError(
            f"unknown scope level(s) {', '.join(unknown)}; use: {', '.join(GROUP_KEYS)}"
        )
    return Scope(**{k: v.strip() for k, v in levels.items() if v is not None and v.strip()})


def kinds_of(names: Iterable[str] | None) -> tuple[str, ...] | None:
    """Recommendation kinds from user text (``scale-down`` and ``scale_down`` both work).

    Raises:
        HistoryQueryError: an unknown kind; the message lists the kinds.
    """
    if names is None:
        return None
    wanted = [n.strip().replace("-", "_") for n in names if n.strip()]
    if not wanted:
        return None
    unknown = sorted(set(wanted) - set(KINDS))
    if unknown:
        raise HistoryQueryError(
            f"unknown recommendation kind(s) {', '.join(unknown)}; use: {', '.join(KINDS)}"
        )
    return tuple(dict.fromkeys(wanted))


def pick_recommendations(found: RecommendationSet, ids: Sequence[str]) -> list[Recommendation]:
    """The recommendations of ``found`` named by ``ids``, in the order asked.

    Raises:
        HistoryQueryError: no id given.
        UnknownSubjectError: an id that is not among the current recommendations; the message
            lists those that are.
    """
    if not ids:
        raise HistoryQueryError("name at least one recommendation id to execute")
    by_id = {r.id: r for r in found.recommendations}
    missing = [i for i in ids if i not in by_id]
    if missing:
        current = ", ".join(f"{r.id} ({r.kind})" for r in found.recommendations) or "none"
        raise UnknownSubjectError(
            f"recommendation(s) {', '.join(missing)} not found in {found.window.label()}; "
            f"current recommendations: {current}"
        )
    return [by_id[i] for i in dict.fromkeys(ids)]
