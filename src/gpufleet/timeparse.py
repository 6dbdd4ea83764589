"""Parse the time expressions users type: ISO 8601 or relative (``-24h``, ``-7d``, ``now``)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

_RELATIVE = re.compile(r"^\s*-\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w|y)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0, "y": 31_536_000.0}

EARLIEST_S = 0.0
LATEST_S = 253_402_300_799.0
"""9999-12-31T23:59:59Z: the last instant ``datetime`` can show."""

ACCEPTED = (
    "ISO 8601 (2026-11-23T10:00:00Z), epoch seconds, 'now', "
    "or relative like -30m, -24h, -7d, -2w, -1y"
)


class TimeParseError(ValueError):
    """A time expression could not be understood; the message says what is accepted."""


def parse_time(text: str, *, now_s: float) -> float:
    """Epoch seconds for ``text``.

    Naive ISO timestamps are taken as UTC (DESIGN.md: UTC everywhere).

    Raises:
        TimeParseError: ``text`` is none of the accepted forms, or names a time before 1970
            or after 9999.
    """
    ts_s = _parse(text, now_s=now_s)
    if not math.isfinite(ts_s) or not EARLIEST_S <= ts_s <= LATEST_S:
        raise TimeParseError(f"time {text!r} is out of range; use a time between 1970 and 9999")
    return ts_s


def _parse(text: str, *, now_s: float) -> float:
    value = text.strip()
    if not value:
        raise TimeParseError(f"empty time; use {ACCEPTED}")
    if value.lower() == "now":
        return now_s
    match = _RELATIVE.match(value)
    if match:
        return now_s - float(match.group(1)) * _UNIT_S[match.group(2).lower()]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise TimeParseError(f"cannot read time {text!r}; use {ACCEPTED}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_window(
    start: str | None, end: str | None, *, now_s: float, default_span_s: float
) -> tuple[float, float]:
    """``(start_s, end_s)`` from optional expressions; start defaults to end - default_span_s.

    Raises:
        TimeParseError: an expression is unreadable, or start is not before end.
    """
    end_s = parse_time(end, now_s=now_s) if end else now_s
    start_s = parse_time(start, now_s=now_s) if start else end_s - default_span_s
    if start_s >= end_s:
        raise TimeParseError(f"'from' ({iso(start_s)}) must be before 'to' ({iso(end_s)})")
    return start_s, end_s


def iso(ts_s: float) -> str:
    """ISO 8601 UTC with a trailing Z, as on the wire."""
    text = datetime.fromtimestamp(ts_s, tz=UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
