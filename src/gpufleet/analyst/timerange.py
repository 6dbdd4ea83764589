"""Time ranges in the words people use, in English and Chinese, as half-open UTC windows.

``find_time_ranges(text, now_s)`` returns every range a question names, in the order they
appear: "this week vs last week" gives two, "past 7 days" one. Weeks start on Monday 00:00
UTC, days at 00:00 UTC (DESIGN.md: UTC everywhere). A range that reaches into the future is
cut at ``now`` ("this week" is Monday until now). A month name means its latest occurrence
that has started ("in October" in November 2026 is October 2026; in September 2026 it is
October 2025).

Nothing here reads a clock: ``now_s`` is passed in (the store's latest sample for a demo
history, the wall clock for a live one).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from gpufleet.analyst.timepoints import (
    BARE_DAY,
    MONTH_NUMBER,
    MONTHS,
    POINT,
    parse_bare_day,
    parse_point,
)

HOUR_S = 3600.0
DAY_S = 86_400.0
WEEK_S = 7 * DAY_S

_UNIT_S = {"minute": 60.0, "hour": HOUR_S, "day": DAY_S, "week": WEEK_S, "month": 30 * DAY_S}
_EN_UNITS = {
    "min": "minute",
    "mins": "minute",
    "minute": "minute",
    "minutes": "minute",
    "h": "hour",
    "hr": "hour",
    "hrs": "hour",
    "hour": "hour",
    "hours": "hour",
    "d": "day",
    "day": "day",
    "days": "day",
    "w": "week",
    "wk": "week",
    "week": "week",
    "weeks": "week",
    "month": "month",
    "months": "month",
}
_ZH_UNITS = {
    "分钟": "minute",
    "小时": "hour",
    "个小时": "hour",
    "天": "day",
    "日": "day",
    "周": "week",
}
_ZH_UNITS.update({"星期": "week", "个星期": "week", "个月": "month", "月": "month"})
_EN_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
    "fourteen": 14,
    "thirty": 30,
    "few": 3,
    "couple of": 2,
}
_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_ZH_DIGITS.update({"六": 6, "七": 7, "八": 8, "九": 9})
_MONTH_ABBR = dict(MONTH_NUMBER)
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ZH_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open UTC window ``[start_s, end_s)`` and how the question named it."""

    start_s: float
    end_s: float
    label: str
    """Short English description ("past 7 days", "last week")."""
    phrase: str = ""
    """The words of the question it was read from."""
    position: int = 0
    """Where in the question the phrase starts (ranges are returned in this order)."""

    @property
    def days(self) -> float:
        return (self.end_s - self.start_s) / DAY_S

    def iso(self) -> dict[str, str]:
        """``{start, end}`` as ISO 8601 UTC (the ``--json`` shape)."""
        return {"start": _iso(self.start_s), "end": _iso(self.end_s)}

    def shifted_back(self) -> TimeRange:
        """The window of the same length just before this one ("and the week before?")."""
        span = self.end_s - self.start_s
        days = span / DAY_S
        if abs(days - 1) < 1e-9:
            label = "the day before"
        elif days >= 1 and abs(days - round(days)) < 1e-9:
            label = f"the {round(days)} day{'s' if round(days) != 1 else ''} before"
        else:
            label = f"the {span / HOUR_S:g} hours before"
        return TimeRange(self.start_s - span, self.start_s, label)


def _iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def zh_number(text: str) -> int | None:
    """A Chinese numeral up to 99 (``七``, ``十四``, ``三十``), or None."""
    if not text:
        return None
    if text.isdigit():
        return int(text)
    if text == "十":
        return 10
    if text == "几":
        return 3  # "过去几天": a few days
    if "十" in text:
        tens, _, ones = text.partition("十")
        t = _ZH_DIGITS.get(tens, 1) if tens else 1
        o = _ZH_DIGITS.get(ones, 0) if ones else 0
        return t * 10 + o
    if len(text) == 1:
        return _ZH_DIGITS.get(text)
    return None


def _day_start(ts_s: float) -> float:
    return ts_s - ts_s % DAY_S


def _week_start(ts_s: float) -> float:
    day = _day_start(ts_s)
    weekday = datetime.fromtimestamp(day, tz=UTC).weekday()
    return day - weekday * DAY_S


def _month_bounds(year: int, month: int) -> tuple[float, float]:
    start = datetime(year, month, 1, tzinfo=UTC)
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), nxt.timestamp()


def _latest_month(month: int, now_s: float) -> tuple[float, float, int]:
    now = datetime.fromtimestamp(now_s, tz=UTC)
    year = now.year if month <= now.month else now.year - 1
    start, end = _month_bounds(year, month)
    return start, end, year


_NUM_EN = (
    r"(\d+(?:\.\d+)?|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|fourteen"
    r"|thirty|few|couple of)"
)
_UNIT_EN = r"(minutes?|mins?|hours?|hrs?|h|days?|d|weeks?|wks?|w|months?)"
_ZH_NUM = r"([0-9]+|[零一二两三四五六七八九十几]+)"
_ZH_UNIT = r"(分钟|个小时|小时|天|日|个星期|星期|周|个月)"
_MONTH_WORDS = (
    r"(january|february|march|april|may|june|july|august|september|sept|october|november"
    r"|december|jan|feb|mar|apr|jun|jul|aug|sep|oct|nov|dec)"
)
# Without "in"/"during": only the full names (and not "may", a common word).
_MONTH_FULL = r"(january|february|march|april|june|july|august|september|october|november|december)"
_WEEKDAY_WORDS = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_DATE = r"(\d{4}-\d{2}-\d{2})"
_I = re.IGNORECASE


def _p(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


# Each pattern: (regex, kind); ``_build`` turns a match of a kind into (start, end, label).
# Longer, more specific patterns come first; a later match overlapping an earlier one is
# dropped.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        _p(
            r"(?:\bfrom\s+|(?:从|自)\s*)?("
            + POINT
            + r")\s*(?:to|until|till|through|-|–|~|\.\.|到|至)"
            r"\s*(" + POINT + "|" + BARE_DAY + ")",
            _I,
        ),
        "points",
    ),
    (_p(r"\bbetween\s+(" + POINT + r")\s+and\s+(" + POINT + ")", _I), "points"),
    (_p(r"\b(?:since|from|after)\s+(" + POINT + ")", _I), "since_date"),
    (_p(r"(?:自|从)?\s*(" + POINT + r")\s*(?:以来|开始|起)", _I), "since_date"),
    (_p(r"(?:\b(?:on|at)\s+|在\s*)?(" + POINT + ")", _I), "date"),
    (
        _p(
            r"\b(?:past|last|previous|recent|prior|in the (?:past|last))\s+"
            + _NUM_EN
            + r"\s*"
            + _UNIT_EN
            + r"\b",
            _I,
        ),
        "last_n",
    ),
    (_p(r"\b" + _NUM_EN + r"\s*" + _UNIT_EN + r"\s+ago\b", _I), "n_ago"),
    (_p(r"\b(?:the\s+)?(?:past|last|previous)\s+(hour|day|week|wk|month|24h)\b", _I), "last_unit"),
    (_p(r"\b(this|current)\s+(week|month)\b", _I), "this_unit"),
    (_p(r"\b(?:the\s+)?(week|month|day)\s+before(?:\s+(?:that|it))?\b", _I), "unit_before"),
    (_p(r"\b(today|yesterday)\b", _I), "day_word"),
    (_p(r"\bsince\s+" + _WEEKDAY_WORDS + r"\b", _I), "since_weekday"),
    (_p(r"\bsince\s+(yesterday)\b", _I), "since_yesterday"),
    (_p(r"\b(?:on|last)\s+" + _WEEKDAY_WORDS + r"\b", _I), "on_weekday"),
    (_p(r"\b(?:last|this past|the last)\s+weekend\b", _I), "last_weekend"),
    (_p(r"\b(last|this)\s+year\b", _I), "year_word"),
    (_p(r"\b(this|current|last|previous)\s+quarter\b", _I), "quarter"),
    (_p(r"(本季度|这个季度|这季度|上季度|上个季度)"), "quarter"),
    (_p(r"\b(?:next|coming)\s+(?:week|month|day|year)\b|\btomorrow\b", _I), "future"),
    (_p(r"(明天|下周|下个星期|下个月|明年)"), "future"),
    (_p(r"\b(?:in|during)\s+(\d{4})\b(?!-)", _I), "year"),
    (_p(r"\b(?:in|during|for|of)\s+" + _MONTH_WORDS + r"(?:\s+(\d{4}))?\b", _I), "month_name"),
    (_p(r"\b" + _MONTH_FULL + r"(?:\s+(\d{4}))?\b", _I), "month_name"),
    (_p(r"(?:过去|最近|近|前)\s*" + _ZH_NUM + r"\s*" + _ZH_UNIT), "zh_last_n"),
    (_p(r"(?:过去|最近|近)(?:一)?(?:个)?(小时|天|周|星期|个星期|个月|月)"), "zh_last_unit"),
    (_p(r"(本周|这周|这个星期|这星期|本星期|本月|这个月)"), "zh_this"),
    (_p(r"(上上周|上上个星期|上上星期)"), "zh_week_before_last"),
    (_p(r"(上周|上个星期|上星期|上个月|上月)"), "zh_last"),
    (_p(r"(今天|昨天|前天)"), "zh_day"),
    (_p(r"(?:自|从)?(?:周|星期)([一二三四五六日天])(?:以来|开始|起)"), "zh_since_weekday"),
    (_p(r"(?:在)?(\d{1,2}|[一二三四五六七八九十]{1,3})月(?:份)?"), "zh_month"),
]


def _span_label(n: float, unit: str) -> str:
    """``past 7 days``; a single week reads as days, as people say it."""
    if unit == "week" and n == 1:
        return "past 7 days"
    return f"past {n:g} {unit}{'s' if n != 1 else ''}"


def _number_en(word: str) -> float:
    w = word.lower()
    return float(_EN_NUMBERS[w]) if w in _EN_NUMBERS else float(w)


def _build(kind: str, m: re.Match[str], now_s: float) -> tuple[float, float, str] | None:
    g = m.groups()
    if kind == "points":
        first = parse_point(g[0], now_s)
        try:
            last = parse_point(g[1], now_s)
        except ValueError:
            if not re.fullmatch(BARE_DAY, g[1].strip(), _I):
                raise
            last = parse_bare_day(g[1], first)
        if (
            last.start_s < first.start_s
            and not re.search(r"\d{4}", g[1])
            and last.month < first.month
        ):
            # "December 28 to January 3": across the year's end, the January after; a range
            # that ends before it starts within a year ("Nov 10 to Nov 3") is said as such.
            last = parse_point(g[1], first.start_s + 365 * DAY_S)
        return first.start_s, last.end_s, f"{first.label} to {last.label}"
    if kind == "since_date":
        point = parse_point(g[0], now_s)
        return point.start_s, now_s, f"since {point.label}"
    if kind == "date":
        point = parse_point(g[0], now_s)
        if point.has_time:  # "at 2026-11-20 14:00": the hour from then
            return point.start_s, point.start_s + HOUR_S, f"the hour from {point.label}"
        return point.start_s, point.end_s, point.label
    if kind == "last_n":
        n, unit = _number_en(g[0]), _EN_UNITS[g[1].lower()]
        return now_s - n * _UNIT_S[unit], now_s, _span_label(n, unit)
    if kind == "n_ago":
        n, unit = _number_en(g[0]), _EN_UNITS[g[1].lower()]
        start = now_s - n * _UNIT_S[unit]
        return start, start + _UNIT_S[unit], f"{n:g} {unit}{'s' if n != 1 else ''} ago"
    if kind == "last_unit":
        word = g[0].lower()
        if word in ("24h", "day"):
            return now_s - DAY_S, now_s, "past 24 hours"
        if word == "hour":
            return now_s - HOUR_S, now_s, "past hour"
        if word in ("week", "wk"):
            said = m.group(0).lower().replace(" wk", " week")
            if said.startswith(("last week", "the last week")) and not re.search(
                r"past|previous", m.group(0), re.I
            ):
                start = _week_start(now_s) - WEEK_S
                return start, start + WEEK_S, "last week"
            return now_s - WEEK_S, now_s, "past 7 days"
        if word == "month":
            if m.group(0).lower().startswith(("last month", "the last month")):
                this = datetime.fromtimestamp(now_s, tz=UTC)
                y, mo = (this.year, this.month - 1) if this.month > 1 else (this.year - 1, 12)
                a, b = _month_bounds(y, mo)
                return a, b, "last month"
            return now_s - 30 * DAY_S, now_s, "past 30 days"
    if kind == "this_unit":
        if g[1].lower() == "week":
            return _week_start(now_s), now_s, "this week"
        this = datetime.fromtimestamp(now_s, tz=UTC)
        return _month_bounds(this.year, this.month)[0], now_s, "this month"
    if kind == "unit_before":
        # Alone, "the week before" is the week before last; after another range it is
        # re-read as the period before that range (see ``find_time_ranges``).
        unit = g[0].lower()
        if unit == "week":
            start = _week_start(now_s) - 2 * WEEK_S
            return start, start + WEEK_S, "the week before last"
        if unit == "day":
            start = _day_start(now_s) - 2 * DAY_S
            return start, start + DAY_S, "the day before yesterday"
        this = datetime.fromtimestamp(now_s, tz=UTC)
        y, mo = this.year, this.month - 2
        if mo < 1:
            y, mo = y - 1, mo + 12
        a, b = _month_bounds(y, mo)
        return a, b, "the month before last"
    if kind == "day_word":
        today = _day_start(now_s)
        if g[0].lower() == "today":
            return today, now_s, "today"
        return today - DAY_S, today, "yesterday"
    if kind == "since_weekday":
        return _since_weekday(_WEEKDAYS.index(g[0].lower()), now_s, g[0].capitalize())
    if kind == "on_weekday":
        start, _, _ = _since_weekday(_WEEKDAYS.index(g[0].lower()), now_s, "")
        if start == _day_start(now_s) and m.group(0).lower().startswith("last"):
            start -= WEEK_S  # "last Wednesday" on a Wednesday: a week ago
        return start, start + DAY_S, g[0].capitalize()
    if kind == "last_weekend":
        saturday, _, _ = _since_weekday(5, now_s, "")
        if saturday + 2 * DAY_S > now_s:  # this weekend is not over: the one before
            saturday -= WEEK_S
        return saturday, saturday + 2 * DAY_S, "last weekend"
    if kind == "year_word":
        year = datetime.fromtimestamp(now_s, tz=UTC).year
        if g[0].lower() == "last":
            year -= 1
        a = datetime(year, 1, 1, tzinfo=UTC).timestamp()
        b = datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()
        return a, b, "last year" if g[0].lower() == "last" else "this year"
    if kind == "quarter":
        this = datetime.fromtimestamp(now_s, tz=UTC)
        first_month = 3 * ((this.month - 1) // 3) + 1
        year = this.year
        if g[0].lower() in ("last", "previous", "上季度", "上个季度"):
            first_month -= 3
            if first_month < 1:
                first_month, year = first_month + 12, year - 1
        a = datetime(year, first_month, 1, tzinfo=UTC).timestamp()
        nxt_month, nxt_year = (first_month + 3, year) if first_month <= 9 else (1, year + 1)
        b = datetime(nxt_year, nxt_month, 1, tzinfo=UTC).timestamp()
        q = (first_month - 1) // 3 + 1
        return a, b, f"Q{q} {year}"
    if kind == "future":
        # Nothing has been recorded there yet: the caller says so (and uses another window).
        return _day_start(now_s) + DAY_S, _day_start(now_s) + 2 * DAY_S, m.group(0)
    if kind == "year":
        year = int(g[0])
        a = datetime(year, 1, 1, tzinfo=UTC).timestamp()
        return a, datetime(year + 1, 1, 1, tzinfo=UTC).timestamp(), str(year)
    if kind == "zh_week_before_last":
        start = _week_start(now_s) - 2 * WEEK_S
        return start, start + WEEK_S, "the week before last"
    if kind == "since_yesterday":
        return _day_start(now_s) - DAY_S, now_s, "since yesterday"
    if kind == "month_name":
        month = _MONTH_ABBR[g[0].lower()]
        if g[1]:
            a, b = _month_bounds(int(g[1]), month)
            year = int(g[1])
        else:
            a, b, year = _latest_month(month, now_s)
        return a, min(b, now_s), f"{MONTHS[month - 1].capitalize()} {year}"
    if kind == "zh_last_n":
        count = zh_number(g[0])
        if count is None:
            return None
        unit = _ZH_UNITS[g[1]]
        return now_s - count * _UNIT_S[unit], now_s, _span_label(count, unit)
    if kind == "zh_last_unit":
        unit = _ZH_UNITS[g[0]]
        return now_s - _UNIT_S[unit], now_s, f"past {unit}" if unit != "week" else "past 7 days"
    if kind == "zh_this":
        if "月" in g[0]:
            this = datetime.fromtimestamp(now_s, tz=UTC)
            return _month_bounds(this.year, this.month)[0], now_s, "this month"
        return _week_start(now_s), now_s, "this week"
    if kind == "zh_last":
        if "月" in g[0]:
            this = datetime.fromtimestamp(now_s, tz=UTC)
            y, mo = (this.year, this.month - 1) if this.month > 1 else (this.year - 1, 12)
            a, b = _month_bounds(y, mo)
            return a, b, "last month"
        start = _week_start(now_s) - WEEK_S
        return start, start + WEEK_S, "last week"
    if kind == "zh_day":
        today = _day_start(now_s)
        back = {"今天": 0, "昨天": 1, "前天": 2}[g[0]]
        if back == 0:
            return today, now_s, "today"
        start = today - back * DAY_S
        return start, start + DAY_S, "yesterday" if back == 1 else "the day before yesterday"
    if kind == "zh_since_weekday":
        day = _ZH_WEEKDAYS[g[0]]
        return _since_weekday(day, now_s, _WEEKDAYS[day].capitalize())
    if kind == "zh_month":
        zh_month = zh_number(g[0])
        if zh_month is None or not 1 <= zh_month <= 12:
            return None
        a, b, year = _latest_month(zh_month, now_s)
        return a, min(b, now_s), f"{MONTHS[zh_month - 1].capitalize()} {year}"
    return None


def _since_weekday(weekday: int, now_s: float, name: str) -> tuple[float, float, str]:
    today = _day_start(now_s)
    back = (datetime.fromtimestamp(today, tz=UTC).weekday() - weekday) % 7
    return today - back * DAY_S, now_s, f"since {name}"


MAX_LOOKBACK_DAYS = 3650.0
"""How far back a question may reach (ten years): older history is never kept, and a
"last 99999 weeks" must not become a window before the epoch."""


@dataclass(frozen=True, slots=True)
class RangeProblem:
    """A time phrase of the question that could not be used as said, and what was done."""

    phrase: str
    en: str
    zh: str

    def text(self, zh: bool) -> str:
        return self.zh if zh else self.en


def _when(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def find_time_ranges(
    text: str, now_s: float, problems: list[RangeProblem] | None = None
) -> list[TimeRange]:
    """Every time range ``text`` names, in order of appearance (overlapping phrases: the
    longest, earliest wins).

    A phrase that cannot be a window is not returned, and when ``problems`` is given it gets
    a `RangeProblem` saying why: a date that does not exist, a range that ends before it
    starts, a window that has not started by ``now_s`` ("today" at midnight, a future date).
    A window reaching back more than `MAX_LOOKBACK_DAYS` is cut there (said the same way);
    one wholly older than that is dropped."""
    taken: list[tuple[int, int]] = []
    found: list[TimeRange] = []
    relative: set[int] = set()  # positions of "the week before"-style phrases
    said: list[RangeProblem] = []
    oldest = now_s - MAX_LOOKBACK_DAYS * DAY_S
    for regex, kind in _PATTERNS:
        for m in regex.finditer(text):
            a, b = m.span()
            if any(a < tb and ta < b for ta, tb in taken):
                continue
            phrase = m.group(0).strip()
            try:
                built = _build(kind, m, now_s)
            except (ValueError, KeyError, OverflowError):
                if kind in ("date", "points", "since_date"):
                    taken.append((a, b))
                    said.append(
                        RangeProblem(
                            phrase,
                            f"“{phrase}” is not a valid date or time",
                            f"“{phrase}”不是有效的日期或时间",
                        )
                    )
                    continue
                built = (-math.inf, now_s, "")  # a count too large for a float: too long
            if built is None:
                continue
            start, end, label = built
            if kind == "points" and end <= start:
                taken.append((a, b))
                said.append(
                    RangeProblem(
                        phrase,
                        f"the range {phrase} ends before it starts",
                        f"时间范围 {phrase} 的结束早于开始",
                    )
                )
                continue
            if not math.isfinite(end) or end <= oldest:
                taken.append((a, b))
                said.append(
                    RangeProblem(
                        phrase,
                        f"“{phrase}” lies more than {MAX_LOOKBACK_DAYS:g} days back, before any "
                        "history gpufleet keeps",
                        f"“{phrase}”早于{MAX_LOOKBACK_DAYS:g}天前，没有保留那么久的历史",
                    )
                )
                continue
            if not math.isfinite(start) or start < oldest:
                start = oldest
                label = f"past {MAX_LOOKBACK_DAYS:g} days"
                said.append(
                    RangeProblem(
                        phrase,
                        f"“{phrase}” reaches back more than {MAX_LOOKBACK_DAYS:g} days; it is "
                        f"read as the past {MAX_LOOKBACK_DAYS:g} days",
                        f"“{phrase}”超过{MAX_LOOKBACK_DAYS:g}天，按过去{MAX_LOOKBACK_DAYS:g}天计算",
                    )
                )
            no_count = kind in ("last_n", "n_ago", "zh_last_n") and end <= start  # "last 0 days"
            end = min(end, now_s) if start < now_s else end
            if start >= now_s and not no_count:
                taken.append((a, b))
                said.append(
                    RangeProblem(
                        phrase,
                        f"“{phrase}” starts at {_when(start)}, not before now ({_when(now_s)}): "
                        "there is no data in it yet",
                        f"“{phrase}”从 {_when(start)} 开始，还没有到（现在是 {_when(now_s)}），"
                        "其中还没有数据",
                    )
                )
                continue
            if end <= start:
                taken.append((a, b))
                said.append(
                    RangeProblem(
                        phrase, f"“{phrase}” is an empty window", f"“{phrase}”是空的时间范围"
                    )
                )
                continue
            taken.append((a, b))
            found.append(TimeRange(start, end, label, m.group(0), a))
            if kind == "unit_before":
                relative.add(a)
    found.sort(key=lambda r: r.position)
    # "this week vs the week before": the period before the range named just before it.
    for i in range(1, len(found)):
        if found[i].position in relative:
            before = previous_period(found[i - 1])
            found[i] = TimeRange(
                before.start_s, before.end_s, before.label, found[i].phrase, found[i].position
            )
    if problems is not None:
        problems.extend(said)
    return found


def default_range(now_s: float, days: float = 7.0) -> TimeRange:
    """The window a question without a time means: the past ``days`` days."""
    return TimeRange(now_s - days * DAY_S, now_s, f"past {days:g} days")


def previous_period(r: TimeRange) -> TimeRange:
    """The period a comparison with "the one before" means: last week for this week, the
    previous month for a month, else the window of the same length just before."""
    if r.label == "this week":
        start = _week_start(r.end_s) - WEEK_S
        return TimeRange(start, start + WEEK_S, "last week")
    if r.label == "last week":
        return TimeRange(r.start_s - WEEK_S, r.start_s, "the week before")
    if _week_start(r.start_s) == r.start_s and r.end_s - r.start_s <= WEEK_S:
        return TimeRange(r.start_s - WEEK_S, r.start_s, "the week before")
    month = _calendar_month(r)
    if month is not None:
        year, mon = month
        year, mon = (year, mon - 1) if mon > 1 else (year - 1, 12)
        a, b = _month_bounds(year, mon)
        return TimeRange(a, b, f"{MONTHS[mon - 1].capitalize()} {year}")
    return r.shifted_back()


def _calendar_month(r: TimeRange) -> tuple[int, int] | None:
    """(year, month) when ``r`` is a calendar month, whole or to date ("this month",
    "last month", "October 2026"), else None."""
    start = datetime.fromtimestamp(r.start_s, tz=UTC)
    if (start.day, start.hour, start.minute, start.second) != (1, 0, 0, 0):
        return None
    named = r.label in ("this month", "last month", "the month before last") or any(
        r.label == f"{m.capitalize()} {start.year}" for m in MONTHS
    )
    if not named:
        return None
    end_bound = _month_bounds(start.year, start.month)[1]
    return (start.year, start.month) if r.end_s <= end_bound else None


def current_period(r: TimeRange, now_s: float) -> TimeRange | None:
    """The period so far that ``r`` is the one before ("lower than last week" compares this
    week with last week): this week, this month or today; None for other ranges, or when
    the current period has not started."""
    this = datetime.fromtimestamp(now_s, tz=UTC)
    start = {
        "last week": _week_start(now_s),
        "last month": _month_bounds(this.year, this.month)[0],
        "yesterday": _day_start(now_s),
    }.get(r.label)
    if start is None or start >= now_s:
        return None
    label = {"last week": "this week", "last month": "this month", "yesterday": "today"}[r.label]
    return TimeRange(start, now_s, label, r.phrase, r.position)


def week_range(now_s: float, weeks_back: int) -> TimeRange:
    """The Monday-based week ``weeks_back`` weeks before this one (0 is this week, to now)."""
    start = _week_start(now_s) - weeks_back * WEEK_S
    label = {0: "this week", 1: "last week"}.get(weeks_back, f"{weeks_back} weeks ago")
    return TimeRange(start, min(start + WEEK_S, now_s), label)
