"""The analyst's sessions in the store: append, read back, list, delete, on both backends."""

from __future__ import annotations

import pytest

from gpufleet.model import ChatTurn
from gpufleet.store import Store, StoreError, open_store
from gpufleet.store.record_queries import RecordReads


def _turn(session: str, seq: int, ts: float, query: str = "q") -> ChatTurn:
    return ChatTurn(
        session_id=session,
        seq=seq,
        ts_s=ts,
        query=query,
        reply={"answer": f"a{seq}", "numbers": [1.5, None]},
        state={"intent": "trend", "entities": {"namespace": "ml-team"}},
        cluster="c1",
    )


def test_turns_round_trip_in_order(store: Store) -> None:
    store.save_chat_turn(_turn("s1", 2, 20.0, "and last month?"))
    store.save_chat_turn(_turn("s1", 1, 10.0, "ml-team trend"))
    turns = store.chat_turns("s1")
    assert [t.seq for t in turns] == [1, 2]
    assert turns[0] == _turn("s1", 1, 10.0, "ml-team trend")
    assert turns[1].reply == {"answer": "a2", "numbers": [1.5, None]}
    assert store.chat_turns("nope") == []


def test_sessions_are_listed_newest_first_with_their_first_question(store: Store) -> None:
    store.save_chat_turn(_turn("old", 1, 10.0, "first question of old"))
    store.save_chat_turn(_turn("new", 1, 30.0, "x" * 300))
    store.save_chat_turn(_turn("old", 2, 40.0, "follow-up"))
    sessions = store.chat_sessions()
    assert [s.id for s in sessions] == ["old", "new"]
    old = sessions[0]
    assert (old.created_s, old.updated_s, old.turns, old.title) == (
        10.0,
        40.0,
        2,
        "first question of old",
    )
    assert sessions[1].title == "x" * 120
    assert [s.id for s in store.chat_sessions(limit=1)] == ["old"]


def test_sessions_are_counted_beyond_any_listing_limit(store: Store) -> None:
    assert isinstance(store, RecordReads)
    assert store.chat_session_count() == 0
    store.save_chat_turn(_turn("a", 1, 1.0))
    store.save_chat_turn(_turn("a", 2, 2.0))
    store.save_chat_turn(_turn("b", 1, 3.0))
    assert store.chat_session_count() == 2
    assert len(store.chat_sessions(limit=1)) == 1


def test_a_taken_turn_number_is_refused_and_nothing_changes(store: Store) -> None:
    store.save_chat_turn(_turn("s1", 1, 10.0, "original"))
    with pytest.raises(StoreError, match="already has a turn 1"):
        store.save_chat_turn(_turn("s1", 1, 11.0, "replacement"))
    assert [t.query for t in store.chat_turns("s1")] == ["original"]


def test_delete_removes_one_session_only(store: Store) -> None:
    store.save_chat_turn(_turn("a", 1, 1.0))
    store.save_chat_turn(_turn("a", 2, 2.0))
    store.save_chat_turn(_turn("b", 1, 3.0))
    assert store.delete_chat_session("a") == 2
    assert store.delete_chat_session("a") == 0
    assert [s.id for s in store.chat_sessions()] == ["b"]


def test_sessions_survive_a_reopen(store_target: str) -> None:
    first = open_store(store_target)
    try:
        first.save_chat_turn(_turn("s", 1, 1.0, "kept"))
    finally:
        first.close()
    again = open_store(store_target)
    try:
        assert [t.query for t in again.chat_turns("s")] == ["kept"]
    finally:
        again.close()
