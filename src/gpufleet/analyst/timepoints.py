"""Points in time as people write them: ``2026-11-20``, ``2026-11-20 12:00``, ``November 20``,
``Nov 20th, 2026``, ``20 November``, ``11月20日``, ``2026年11月20日 14:00``.

`POINT` is a regular expression (no capturing groups) for one such point, so that
``timerange`` can build ranges from them ("2026-11-20 12:00 to 2026-11-21 12:00", "from
November 1 to November 7", "11月1日到11月7日", "Nov 1-7", "since November 20").
`parse_point` reads the text a `POINT` matched. A date without a year is its latest
occurrence that has started by ``now`` (as a month name is); a point without a time of day
is the whole day, so a range ending on a date includes that date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
"""English month names, January first."""
MONTH_NUMBER = {m: i + 1 for i, m in enumerate(MONTHS)}
MONTH_NUMBER.update({m[:3]: i + 1 for i, m in enumerate(MONTHS)})
MONTH_NUMBER["sept"] = 9
"""Month number of a full or abbreviated English name."""

# "May" is a common word: as a month before a day it needs an ordinal or a year ("May 3rd",
# "May 3, 2026"); the other names take a bare day ("November 20").
_MONTH = (
    r"(?:january|february|march|april|june|july|august|september|sept|october|november"
    r"|december|jan|feb|mar|apr|jun|jul|aug|sep|oct|nov|dec)\.?"
)
_ORD = r"(?:st|nd|rd|th)"
_YEAR_TAIL = r"(?:,?\s+\d{4}(?![\d:]))"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2})?"
_TIME_TAIL = r"(?:(?:\s+at|\s*,)?\s*" + _CLOCK + r"(?:\s*(?:utc|z))?)"
_ISO = r"(?<!\d)\d{4}-\d{2}-\d{2}(?:(?:[ T]|\s+at\s+)" + _CLOCK + r"(?:\s*(?:utc|z))?)?"
_EN_MONTH_DAY = (
    r"\b(?:" + _MONTH + r"\s+\d{1,2}" + _ORD + r"?(?!\d)" + _YEAR_TAIL + r"?"
    r"|\bmay\s+\d{1,2}(?:" + _ORD + _YEAR_TAIL + r"?|" + _YEAR_TAIL + r")"
    r"|\b\d{1,2}(?:"
    + _ORD
    + r"\s+of|"
    + _ORD
    + r"?)\s+(?:"
    + _MONTH
    + r"|may)"
    + _YEAR_TAIL
    + r"?)"
    + _TIME_TAIL
    + r"?"
)
_ZH_DATE = r"(?<!\d)(?:\d{4}\s*年\s*)?\d{1,2}\s*月\s*\d{1,2}\s*[日号](?:\s*" + _CLOCK + r")?"
POINT = r"(?:" + _ISO + r"|" + _EN_MONTH_DAY + r"|" + _ZH_DATE + r")"
"""One point in time (no capturing groups); match with re.IGNORECASE."""

BARE_DAY = r"\d{1,2}(?:" + _ORD + r"|\s*[日号])?(?![\d:])"
"""The end of "Nov 1-7" / "11月1日到7日": a day of the month the range started in."""


@dataclass(frozen=True, slots=True)
class Point:
    """A parsed point: ``start_s`` and, for a date without a time, the day's end."""

    start_s: float
    end_s: float
    """The end of the day for a date, the same instant for a time of day."""
    has_time: bool
    label: str
    """``2026-11-20`` or ``2026-11-20 12:00``."""
    year: int
    month: int


_NUMBERS = re.compile(r"\d+")


def _clock(text: str) -> tuple[int, int, int] | None:
    m = re.search(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _make(year: int, month: int, day: int, clock: tuple[int, int, int] | None) -> Point:
    """Raises ValueError for a date or time that does not exist (2026-02-30, 25:00)."""
    if clock is None:
        start = datetime(year, month, day, tzinfo=UTC)
        ts = start.timestamp()
        return Point(ts, ts + 86_400.0, False, start.strftime("%Y-%m-%d"), year, month)
    at = datetime(year, month, day, *clock, tzinfo=UTC)
    return Point(at.timestamp(), at.timestamp(), True, at.strftime("%Y-%m-%d %H:%M"), year, month)


def _latest_year(month: int, day: int, now_s: float) -> int:
    now = datetime.fromtimestamp(now_s, tz=UTC)
    return now.year if (month, day) <= (now.month, now.day) else now.year - 1


def parse_point(text: str, now_s: float) -> Point:
    """The point a `POINT` match names; ValueError when the date or time does not exist."""
    t = text.strip().lower()
    iso = re.match(r"(\d{4})-(\d{2})-(\d{2})", t)
    if iso is not None:
        year, month, day = (int(x) for x in iso.groups())
        return _make(year, month, day, _clock(t[iso.end() :]))
    zh = re.match(r"(?:(\d{4})\s*年\s*)?(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]", t)
    if zh is not None:
        month, day = int(zh.group(2)), int(zh.group(3))
        year = int(zh.group(1)) if zh.group(1) else _latest_year(month, day, now_s)
        return _make(year, month, day, _clock(t[zh.end() :]))
    word = re.search(r"[a-z]+", re.sub(r"\b(?:of|at|utc|z)\b|\d(?:st|nd|rd|th)", " ", t))
    if word is None or word.group(0) not in MONTH_NUMBER:
        raise ValueError(f"no month in {text!r}")
    month = MONTH_NUMBER[word.group(0)]
    clock_at = re.search(_CLOCK, t)
    head = t[: clock_at.start()] if clock_at else t
    numbers = [int(x) for x in _NUMBERS.findall(head)]
    day = numbers[0]
    year = numbers[1] if len(numbers) > 1 else _latest_year(month, day, now_s)
    return _make(year, month, day, _clock(t[clock_at.start() :]) if clock_at else None)


def parse_bare_day(text: str, first: Point) -> Point:
    """The end of "Nov 1-7": day ``text`` of ``first``'s month (a later month when the day is
    before ``first``'s: "Nov 28 - 3" is 28 November to 3 December)."""
    day = int(_NUMBERS.findall(text)[0])
    year, month = first.year, first.month
    if datetime(year, month, 1, tzinfo=UTC).timestamp() + (day - 1) * 86_400.0 < first.start_s:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return _make(year, month, day, None)
