"""The bounded log-once memory shared by the sampler, the writer and the alert engine."""

from __future__ import annotations

import logging

import pytest

from gpufleet.agent.logonce import LogOnce

log = logging.getLogger("gpufleet.test.logonce")


def test_a_key_is_logged_once_while_remembered() -> None:
    once = LogOnce(log, max_keys=3)
    assert once.first("a")
    assert not once.first("a")
    assert once.first("b")
    assert not once.first("a")


def test_a_full_memory_forgets_the_least_recently_seen_key() -> None:
    once = LogOnce(log, max_keys=3)
    for key in ("a", "b", "c"):
        once.first(key)
    assert not once.first("a")  # refreshed: "b" is now the oldest
    assert once.first("d")
    assert len(once) == 3
    assert not once.first("a")
    assert not once.first("c")
    assert once.first("b")  # forgotten, so logged once more


def test_a_recurring_message_is_not_logged_every_time_once_the_memory_is_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    once = LogOnce(log, max_keys=10)
    with caplog.at_level(logging.WARNING, logger=log.name):
        for i in range(100):
            once.warning(f"k{i}", "distinct %d", i)
            once.warning("same", "recurring")
    assert sum(r.getMessage() == "recurring" for r in caplog.records) == 1
    assert sum(r.getMessage().startswith("distinct") for r in caplog.records) == 100


def test_exception_and_error_keep_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(log)
    with caplog.at_level(logging.ERROR, logger=log.name):
        for _ in range(2):
            try:
                raise ValueError("boom")
            except ValueError as exc:
                once.exception("boom failed")
                once.error("boom again", exc)
    assert [r.getMessage() for r in caplog.records] == ["boom failed", "boom again"]
    assert all(r.exc_info for r in caplog.records)


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        LogOnce(log, max_keys=0)
