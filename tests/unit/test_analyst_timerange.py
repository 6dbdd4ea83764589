"""Time ranges in English and Chinese, against a fixed "now" (Wednesday 2026-11-25 12:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gpufleet.analyst.timerange import (
    MAX_LOOKBACK_DAYS,
    RangeProblem,
    find_time_ranges,
    previous_period,
)

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC).timestamp()


def iso(text: str) -> list[tuple[str, str]]:
    return [(r.iso()["start"], r.iso()["end"]) for r in find_time_ranges(text, NOW)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trend over the past 7 days", ("2026-11-18T12:00:00Z", "2026-11-25T12:00:00Z")),
        ("last 24 hours", ("2026-11-24T12:00:00Z", "2026-11-25T12:00:00Z")),
        ("the past week", ("2026-11-18T12:00:00Z", "2026-11-25T12:00:00Z")),
        ("past few days", ("2026-11-22T12:00:00Z", "2026-11-25T12:00:00Z")),
        ("last week", ("2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z")),
        ("this week", ("2026-11-23T00:00:00Z", "2026-11-25T12:00:00Z")),
        ("yesterday", ("2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z")),
        ("today", ("2026-11-25T00:00:00Z", "2026-11-25T12:00:00Z")),
        ("since Monday", ("2026-11-23T00:00:00Z", "2026-11-25T12:00:00Z")),
        ("in October", ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")),
        ("last month", ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")),
        ("this month", ("2026-11-01T00:00:00Z", "2026-11-25T12:00:00Z")),
        ("from 2026-11-01 to 2026-11-07", ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z")),
        ("in december", ("2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z")),
        ("过去7天", ("2026-11-18T12:00:00Z", "2026-11-25T12:00:00Z")),
        ("最近两周", ("2026-11-11T12:00:00Z", "2026-11-25T12:00:00Z")),
        ("过去几天", ("2026-11-22T12:00:00Z", "2026-11-25T12:00:00Z")),
        ("过去24小时", ("2026-11-24T12:00:00Z", "2026-11-25T12:00:00Z")),
        ("本周", ("2026-11-23T00:00:00Z", "2026-11-25T12:00:00Z")),
        ("上周", ("2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z")),
        ("昨天", ("2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z")),
        ("自周一以来", ("2026-11-23T00:00:00Z", "2026-11-25T12:00:00Z")),
        ("十月", ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")),
        ("10月份", ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")),
        ("上个月", ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")),
    ],
)
def test_one_range(text: str, expected: tuple[str, str]) -> None:
    assert iso(text) == [expected]


def test_two_ranges_come_in_the_order_asked() -> None:
    assert iso("this week vs last week") == [
        ("2026-11-23T00:00:00Z", "2026-11-25T12:00:00Z"),
        ("2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"),
    ]
    assert iso("本周和上周对比") == iso("this week vs last week")


def test_words_that_are_not_times_are_not_read_as_times() -> None:
    assert iso("May I see the GPU usage?") == []
    assert iso("how many GPUs does ml-team hold") == []
    assert iso("in december 2030") == []  # wholly in the future


def test_the_period_before() -> None:
    (this_week,) = find_time_ranges("this week", NOW)
    before = previous_period(this_week)
    assert before.iso() == {"start": "2026-11-16T00:00:00Z", "end": "2026-11-23T00:00:00Z"}
    (week,) = find_time_ranges("past 7 days", NOW)
    before = previous_period(week)
    assert before.iso() == {"start": "2026-11-11T12:00:00Z", "end": "2026-11-18T12:00:00Z"}
    assert before.label == "the 7 days before"


@pytest.mark.parametrize(
    ("text", "second"),
    [
        # "the week before" after a week is the week before *that* one.
        ("this week vs the week before", ("2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z")),
        ("last week vs the week before", ("2026-11-09T00:00:00Z", "2026-11-16T00:00:00Z")),
        ("this month vs the month before", ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")),
        ("yesterday vs the day before", ("2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z")),
    ],
)
def test_the_period_before_follows_the_range_named_first(
    text: str, second: tuple[str, str]
) -> None:
    assert iso(text)[1] == second


def test_the_week_before_alone_is_the_week_before_last() -> None:
    assert iso("the week before") == [("2026-11-09T00:00:00Z", "2026-11-16T00:00:00Z")]


@pytest.mark.parametrize(
    ("text", "before"),
    [
        # Calendar months compare with the calendar month before, whatever their length.
        ("in October", ("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z")),
        ("last month", ("2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z")),
        ("this month", ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")),
        ("in March 2026", ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")),
        ("in January 2026", ("2025-12-01T00:00:00Z", "2026-01-01T00:00:00Z")),
        ("past 30 days", ("2026-09-26T12:00:00Z", "2026-10-26T12:00:00Z")),
    ],
)
def test_the_period_before_a_month_is_the_calendar_month(
    text: str, before: tuple[str, str]
) -> None:
    (r,) = find_time_ranges(text, NOW)
    p = previous_period(r).iso()
    assert (p["start"], p["end"]) == before


def _problems(text: str, now: float = NOW) -> tuple[list[tuple[str, str]], list[RangeProblem]]:
    said: list[RangeProblem] = []
    found = find_time_ranges(text, now, said)
    return [(r.iso()["start"], r.iso()["end"]) for r in found], said


@pytest.mark.parametrize(
    "text", ["last 99999 weeks", "past 999999999999 days", "past " + "9" * 400 + " days"]
)
def test_a_window_longer_than_the_lookback_is_cut_and_said(text: str) -> None:
    found, said = _problems(text)
    assert found == [("2016-11-27T12:00:00Z", "2026-11-25T12:00:00Z")]
    assert len(said) == 1
    assert f"read as the past {MAX_LOOKBACK_DAYS:g} days" in said[0].en
    assert "天" in said[0].zh


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("0001-01-01 to 0001-01-02", "before any history"),
        ("400000 weeks ago", "before any history"),
        ("2026-02-30", "not a valid date"),
        ("2026-11-20 to 2026-11-10", "ends before it starts"),
        ("between Nov 10 and Nov 3", "ends before it starts"),
        ("2027-01-05", "there is no data in it yet"),
        ("in December 2026", "there is no data in it yet"),
        ("since 2027-01-01", "there is no data in it yet"),
        ("last 0 days", "is an empty window"),
        ("过去0天", "is an empty window"),
    ],
)
def test_unusable_phrases_are_dropped_and_said(text: str, why: str) -> None:
    found, said = _problems(text)
    assert found == []
    assert len(said) == 1
    assert why in said[0].en


@pytest.mark.parametrize(
    ("text", "now"),
    [
        ("this month", datetime(2026, 12, 1, tzinfo=UTC).timestamp()),
        ("today", datetime(2026, 12, 1, tzinfo=UTC).timestamp()),
        ("this week", datetime(2026, 11, 30, tzinfo=UTC).timestamp()),  # a Monday
        ("本月", datetime(2026, 12, 1, tzinfo=UTC).timestamp()),
    ],
)
def test_a_window_that_starts_now_has_nothing_in_it_yet(text: str, now: float) -> None:
    found, said = _problems(text, now)
    assert found == []
    assert "there is no data in it yet" in said[0].en


@pytest.mark.parametrize("text", ["since 2026-11-20", "from 2026-11-20", "从2026-11-20开始"])
def test_since_a_date_runs_to_now(text: str) -> None:
    assert iso(text) == [("2026-11-20T00:00:00Z", "2026-11-25T12:00:00Z")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("between 2026-11-01 and 2026-11-07", ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z")),
        ("2026-11-01..2026-11-07", ("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z")),
        ("last 30 minutes", ("2026-11-25T11:30:00Z", "2026-11-25T12:00:00Z")),
        ("最近30分钟", ("2026-11-25T11:30:00Z", "2026-11-25T12:00:00Z")),
        ("last year", ("2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z")),
        ("this year", ("2026-01-01T00:00:00Z", "2026-11-25T12:00:00Z")),
        ("on Monday", ("2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z")),
        ("last Wednesday", ("2026-11-18T00:00:00Z", "2026-11-19T00:00:00Z")),
        ("last weekend", ("2026-11-21T00:00:00Z", "2026-11-23T00:00:00Z")),
        ("上上周", ("2026-11-09T00:00:00Z", "2026-11-16T00:00:00Z")),
    ],
)
def test_more_ways_of_naming_a_window(text: str, expected: tuple[str, str]) -> None:
    assert iso(text) == [expected]


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        # A day named by month and day is that day, not the month (NOW is 2026-11-25 12:00).
        ("utilization on November 20", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
        ("on November 10th", "2026-11-10T00:00:00Z", "2026-11-11T00:00:00Z"),
        ("the 20th of November", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
        ("20 Nov 2026", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
        ("Nov 20, 2025", "2025-11-20T00:00:00Z", "2025-11-21T00:00:00Z"),
        ("2026年11月20日的利用率", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
        # A date not reached yet this year is last year's (as a month name is).
        ("December 1", "2025-12-01T00:00:00Z", "2025-12-02T00:00:00Z"),
        # Ranges of dates include their last day; ranges of times end at the time.
        ("11月1日到11月7日", "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"),
        ("from November 1 to November 7", "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"),
        ("Nov 1-7", "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"),
        ("11月1日到7日", "2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z"),
        (
            "2026-11-20 12:00 to 2026-11-21 12:00",
            "2026-11-20T12:00:00Z",
            "2026-11-21T12:00:00Z",
        ),
        (
            "between 2026-11-20T06:30 and 2026-11-20 18:00",
            "2026-11-20T06:30:00Z",
            "2026-11-20T18:00:00Z",
        ),
        ("since November 20", "2026-11-20T00:00:00Z", "2026-11-25T12:00:00Z"),
        ("11月20号以来", "2026-11-20T00:00:00Z", "2026-11-25T12:00:00Z"),
        ("at 2026-11-20 14:00", "2026-11-20T14:00:00Z", "2026-11-20T15:00:00Z"),
    ],
)
def test_days_and_times_of_day_are_read_as_said(text: str, start: str, end: str) -> None:
    found, said = _problems(text)
    assert found == [(start, end)]
    assert said == []


@pytest.mark.parametrize("text", ["codec 3 usage", "may 3 GPUs be idle", "top 5 GPUs"])
def test_words_that_only_look_like_dates_are_not(text: str) -> None:
    assert _problems(text) == ([], [])


@pytest.mark.parametrize("text", ["November 31", "2026-11-20 25:00 to 2026-11-21", "2月30日"])
def test_days_and_times_that_do_not_exist_are_said(text: str) -> None:
    found, said = _problems(text)
    assert found == []
    assert "not a valid date or time" in said[0].en


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("this quarter", "2026-10-01T00:00:00Z", "2026-11-25T12:00:00Z"),
        ("last quarter", "2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z"),
        ("上季度", "2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z"),
    ],
)
def test_quarters(text: str, start: str, end: str) -> None:
    assert _problems(text) == ([(start, end)], [])


@pytest.mark.parametrize("text", ["utilization next week", "tomorrow", "明天", "下个月"])
def test_the_future_has_no_data_and_says_so(text: str) -> None:
    found, said = _problems(text)
    assert found == []
    assert "there is no data in it yet" in said[0].en
