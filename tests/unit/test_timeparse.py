"""Time expressions users type, including the hostile ones."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpufleet.timeparse import TimeParseError, iso, parse_time, parse_window

NOW = 1_795_430_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-30m", NOW - 1800),
        ("-24h", NOW - 86_400),
        ("- 2 d", NOW - 2 * 86_400),
        ("-1w", NOW - 604_800),
        ("-90s", NOW - 90),
        ("1795428000", 1_795_428_000.0),
        ("2026-11-23T10:00:00Z", 1_795_428_000.0),
        ("2026-11-23T11:00:00+01:00", 1_795_428_000.0),
        ("2026-11-23T10:00:00", 1_795_428_000.0),
    ],
)
def test_accepted_forms(text: str, expected: float) -> None:
    assert parse_time(text, now_s=NOW) == expected


@pytest.mark.parametrize(
    "text", ["", "yesterday", "nan", "inf", "-inf", "1e20", "-99999999999999h", "-1", "+5h"]
)
def test_rejected_with_a_message(text: str) -> None:
    with pytest.raises(TimeParseError) as err:
        parse_time(text, now_s=NOW)
    assert "use" in str(err.value)


def test_window_defaults_and_order() -> None:
    assert parse_window(None, None, now_s=NOW, default_span_s=3600) == (NOW - 3600, NOW)
    with pytest.raises(TimeParseError, match="must be before"):
        parse_window("-1h", "-2h", now_s=NOW, default_span_s=60)


def test_iso_is_utc_z() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_never_raises_anything_but_time_parse_error(text: str) -> None:
    try:
        value = parse_time(text, now_s=NOW)
    except TimeParseError:
        return
    assert 0 <= value <= 253_402_300_799.0
    iso(value)
