"""Time ranges in English and Chinese, against a fixed "now" (Wednesday 2026-11-25 12:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gpufleet.analyst.timerange import find_time_ranges, previous_period

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
