"""The analyst's engine on a small hand-made fleet of two clusters: clarification with the
real options (seed 001 scenarios 5 and 6), answers by number or name, "all", sessions kept
in the store, and questions about things that have no data."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.unit.store_samples import GIB, T0, gpu, proc, snap

from gpufleet.analyst.engine import Analyst, AnalystError, SessionBusyError, UnknownSessionError
from gpufleet.model import ChatTurn
from gpufleet.store import open_store
from gpufleet.store.base import Store

HOURS = 6
END = T0 + HOURS * 3600


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Store]:
    """Two clusters: ``lab`` (team-a at 80 %) and ``prod`` (team-b at 20 %, team-c idle)."""
    store = open_store(tmp_path / "fleet.db", clock=lambda: END)
    snaps = []
    for m in range(HOURS * 60):
        ts = T0 + m * 60
        snaps.append(
            snap(
                ts,
                gpu(
                    "GPU-l0",
                    80.0,
                    mem_used=GIB,
                    procs=[proc(1, "train", namespace="team-a", workload_kind="training")],
                ),
                node="lab-1",
                cluster="lab",
            )
        )
        snaps.append(
            snap(
                ts,
                gpu(
                    "GPU-p0",
                    20.0,
                    procs=[
                        proc(2, "serve", namespace="team-b", user="bob", workload_kind="inference")
                    ],
                ),
                gpu("GPU-p1", 0.0, index=1, procs=[proc(3, "nb", namespace="team-c", user="cy")]),
                node="prod-1",
                cluster="prod",
            )
        )
    store.write_snapshots(snaps)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def analyst(fleet: Store) -> Analyst:
    return Analyst(fleet, clock=lambda: END)


def test_a_vague_question_asks_which_cluster_with_the_real_ones(analyst: Analyst) -> None:
    reply = analyst.ask("I want to check GPU usage")
    assert reply.clarification is not None
    assert reply.clarification["missing"] == "cluster"
    assert reply.clarification["options"] == ["lab", "prod"]
    assert "1. lab" in reply.answer
    assert "2. prod" in reply.answer
    assert reply.data == []
    # The answer may be a number...
    second = analyst.ask("2", session_id=reply.session_id)
    assert second.clarification is None
    assert second.entities["cluster"] == "prod"
    assert second.intent == "trend"
    assert "prod" in second.answer


def test_the_answer_may_be_a_name_or_all(analyst: Analyst) -> None:
    first = analyst.ask("How busy were the GPUs over the past 6 hours?")
    assert first.clarification is not None
    by_name = analyst.ask("lab", session_id=first.session_id)
    assert by_name.entities["cluster"] == "lab"
    again = analyst.ask("How busy were the GPUs over the past 6 hours?")
    everything = analyst.ask("all", session_id=again.session_id)
    assert everything.clarification is None
    assert "cluster" not in everything.entities


def test_naming_the_cluster_or_passing_it_needs_no_clarification(analyst: Analyst) -> None:
    assert analyst.ask("utilization of prod over the past 6 hours").clarification is None
    reply = analyst.ask("utilization over the past 6 hours", cluster="lab")
    assert reply.clarification is None
    assert reply.entities["cluster"] == "lab"


def test_a_namespace_question_lists_the_namespaces_with_usage(analyst: Analyst) -> None:
    reply = analyst.ask("Query GPU utilization trend for a namespace", cluster="prod")
    assert reply.clarification is not None
    assert reply.clarification["missing"] == "namespace"
    assert sorted(reply.clarification["options"]) == ["team-b", "team-c"]
    picked = reply.clarification["options"][0]
    answered = analyst.ask("1", session_id=reply.session_id)
    assert answered.entities["namespace"] == picked


def test_an_unrelated_reply_to_a_clarification_is_a_new_question(analyst: Analyst) -> None:
    reply = analyst.ask("I want to check GPU usage")
    other = analyst.ask("which clusters are there?", session_id=reply.session_id)
    assert other.intent == "metadata"
    assert "lab" in other.answer


def test_sessions_are_kept_and_read_back(analyst: Analyst, fleet: Store) -> None:
    reply = analyst.ask("utilization of lab over the past 6 hours")
    analyst.ask("and over the past 3 hours?", session_id=reply.session_id)
    turns = analyst.session(reply.session_id)
    assert [t.query for t in turns] == [
        "utilization of lab over the past 6 hours",
        "and over the past 3 hours?",
    ]
    assert turns[1].reply["entities"]["cluster"] == "lab"
    # A new Analyst (another process) continues the same session from the store.
    again = Analyst(fleet, clock=lambda: END).ask("and the past hour?", session_id=reply.session_id)
    assert again.entities["cluster"] == "lab"
    assert again.follow_up
    with pytest.raises(UnknownSessionError, match="no session"):
        analyst.session("nope")


def test_bad_questions_are_refused_and_nothing_is_stored(analyst: Analyst, fleet: Store) -> None:
    with pytest.raises(AnalystError, match="empty"):
        analyst.ask("   ")
    with pytest.raises(AnalystError, match="2000 at most"):
        analyst.ask("x" * 2001)
    with pytest.raises(AnalystError, match="session id"):
        analyst.ask("hello", session_id="not a valid id")
    with pytest.raises(AnalystError, match="clusters: lab, prod"):
        analyst.ask("hello", cluster="staging")
    assert fleet.chat_sessions() == []


def test_a_name_without_data_in_the_window_is_answered_with_what_exists(analyst: Analyst) -> None:
    reply = analyst.ask("utilization of team-a in October", cluster="lab")
    assert reply.data == []
    assert reply.answer.startswith("There is no data to answer that: no cluster 'lab' in")
    in_window = analyst.ask("utilization of team-z over the past 6 hours", cluster="lab")
    assert in_window.intent == "trend"  # team-z is no known name: the cluster's trend


def test_chinese_questions_get_chinese_answers(analyst: Analyst) -> None:
    reply = analyst.ask("prod过去6小时的GPU利用率趋势")
    assert reply.language == "zh"
    assert reply.intent == "trend"
    assert "利用率" in reply.answer


def test_workload_kinds_scope_and_compare(analyst: Analyst) -> None:
    reply = analyst.ask("training jobs utilization over the past 6 hours", cluster="lab")
    assert reply.entities["label"] == {"key": "workload_kind", "value": "training"}
    assert reply.data[0]["result"]["series"]["scope"] == {
        "cluster": "lab",
        "workload_kind": "training",
    }
    assert "training workloads" in reply.answer
    assert "80.0 %" in reply.answer
    both = analyst.ask("compare inference and training workloads over the past 6 hours")
    assert both.intent == "compare"
    assert both.entities["compare"] == {"level": "workload_kind", "a": "inference", "b": "training"}
    kinds = analyst.ask("which workload kinds exist?", cluster="prod")
    assert kinds.intent == "metadata"
    assert "inference" in kinds.answer


def test_names_from_further_back_are_known_when_the_question_reaches_there(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "old.db", clock=lambda: END)
    old_start = END - 60 * 86_400.0
    store.write_snapshots(
        [
            snap(
                old_start + m * 60, gpu("GPU-o", 50.0, procs=[proc(1, "job", namespace="team-old")])
            )
            for m in range(60)
        ]
        + [
            snap(
                END - 3600 + m * 60,
                gpu("GPU-o", 10.0, procs=[proc(2, "job", namespace="team-new")]),
            )
            for m in range(60)
        ]
    )
    try:
        analyst = Analyst(store, clock=lambda: END)
        reply = analyst.ask("utilization of team-old 60 days ago")
        assert reply.entities.get("namespace") == "team-old"
        assert "team-old" in reply.answer
        recent = analyst.ask("utilization of team-old over the past 7 days")
        assert "namespace" not in recent.entities  # no data in the last 30 days: not a name
    finally:
        store.close()


def test_which_entity_ranks_first(analyst: Analyst) -> None:
    reply = analyst.ask(
        "which namespace has the lowest utilization over the past 6 hours?", cluster="prod"
    )
    assert reply.intent == "trend"
    assert reply.entities["rank"] == {"by": "namespace", "order": "low", "measure": "utilization"}
    ranked = reply.data[0]["result"]["ranked"]
    assert [g["key"] for g in ranked] == ["team-c", "team-b"]  # 0 % before 20 %
    assert "team-c" in reply.answer
    assert reply.data[0]["api"]["body"]["by"] == "namespace"
    zh = analyst.ask("过去6小时GPU利用率最高的命名空间是哪个？", cluster="prod")
    assert zh.data[0]["result"]["ranked"][0]["key"] == "team-b"
    assert "命名空间是team-b" in zh.answer


def test_names_without_data_are_said(analyst: Analyst) -> None:
    reply = analyst.ask("utilization of nobody-team over the past 6 hours", cluster="lab")
    assert reply.answer.startswith("Nothing named 'nobody-team' has data")
    plain = analyst.ask(
        "which node had the highest utilization over the past 6 hours?", cluster="lab"
    )
    assert not plain.answer.startswith("Nothing named")
    backwards = analyst.ask("utilization of lab from 2026-12-10 to 2026-12-01")
    assert "ends before it starts" in backwards.answer


def test_realtime_on_a_store_without_recent_samples_says_so(tmp_path: Path) -> None:
    store = open_store(tmp_path / "empty.db", clock=lambda: END)
    try:
        reply = Analyst(store, clock=lambda: END).ask("How many GPUs are in use right now?")
        assert reply.intent == "realtime"
        assert reply.answer.startswith("No GPU samples are stored for the two minutes before")
    finally:
        store.close()


def test_a_new_question_naming_an_option_is_not_taken_as_the_reply(analyst: Analyst) -> None:
    first = analyst.ask("I want to check GPU usage")
    assert first.clarification is not None
    # A whole question that happens to name an option is answered as asked...
    waste = analyst.ask(
        "how much was wasted in prod over the past 6 hours?", session_id=first.session_id
    )
    assert waste.intent == "waste"
    assert waste.entities["cluster"] == "prod"
    # ...and one naming two options is a comparison, not a pick of the first.
    again = analyst.ask("I want to check GPU usage")
    both = analyst.ask("compare lab and prod over the past 6 hours", session_id=again.session_id)
    assert both.intent == "compare"
    assert both.entities.get("cluster") is None
    # A reply with a few words around the name is still a reply.
    third = analyst.ask("I want to check GPU usage")
    picked = analyst.ask("use the prod cluster please", session_id=third.session_id)
    assert picked.intent == "trend"
    assert picked.entities["cluster"] == "prod"
    zh = analyst.ask("我想看看GPU使用情况")
    assert zh.clarification is not None
    assert analyst.ask("选 lab 吧", session_id=zh.session_id).entities["cluster"] == "lab"


def test_a_kind_carried_into_a_follow_up_is_said(analyst: Analyst) -> None:
    first = analyst.ask("utilization of inference workloads over the past 6 hours", cluster="prod")
    assert "inference workloads" in first.answer
    other = analyst.ask("what about team-c?", session_id=first.session_id)
    assert other.entities["namespace"] == "team-c"
    # team-c runs no inference: the answer says the kind it kept, not a silent 0 %.
    assert "no workload_kind 'inference'" in other.answer
    lab = analyst.ask("utilization of training workloads over the past 6 hours", cluster="lab")
    same = analyst.ask("and for team-a?", session_id=lab.session_id)
    assert "team-a's training workloads" in same.answer


def test_concurrent_questions_in_one_session_are_answered_in_turn(
    analyst: Analyst, fleet: Store
) -> None:
    first = analyst.ask("utilization of lab over the past 6 hours")
    questions = ["and prod?", "and lab?", "which namespaces?", "by hour", "and prod?", "why?"]
    with ThreadPoolExecutor(4) as pool:
        jobs = [pool.submit(analyst.ask, q, session_id=first.session_id) for q in questions]
        replies = [j.result() for j in jobs]
    assert all(r.session_id == first.session_id for r in replies)
    turns = fleet.chat_turns(first.session_id)
    assert [t.seq for t in turns] == list(range(1, len(questions) + 2))
    assert sorted(t.query for t in turns[1:]) == sorted(questions)


class _RacedStore:
    """A store on which another process saves a turn between this one's read and write."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def chat_turns(self, session_id: str) -> list[ChatTurn]:
        turns = self._store.chat_turns(session_id)
        if turns:
            last = turns[-1]
            self._store.save_chat_turn(
                ChatTurn(
                    session_id=session_id,
                    seq=last.seq + 1,
                    ts_s=last.ts_s,
                    query="asked elsewhere",
                    state=last.state,
                )
            )
        return turns


def test_a_turn_raced_by_another_process_is_refused_not_lost(fleet: Store) -> None:
    first = Analyst(fleet, clock=lambda: END).ask("utilization of lab over the past 6 hours")
    raced = Analyst(_RacedStore(fleet), clock=lambda: END)  # type: ignore[arg-type]
    with pytest.raises(SessionBusyError, match="ask it again"):
        raced.ask("and prod?", session_id=first.session_id)
    turns = fleet.chat_turns(first.session_id)
    assert [t.query for t in turns] == [turns[0].query, "asked elsewhere"]


def test_a_new_question_with_its_own_window_does_not_inherit_the_scope(analyst: Analyst) -> None:
    first = analyst.ask("utilization of team-a over the past 6 hours", cluster="lab")
    assert first.entities["namespace"] == "team-a"
    fresh = analyst.ask("idle GPU cost over the past 3 hours", session_id=first.session_id)
    assert fresh.intent == "waste"
    assert "namespace" not in fresh.entities
    assert not fresh.follow_up
    # Said as a follow-up, it keeps the scope.
    again = analyst.ask("utilization of team-a over the past 6 hours", cluster="lab")
    follow = analyst.ask("and idle cost over the past 3 hours?", session_id=again.session_id)
    assert follow.follow_up
    assert follow.entities["namespace"] == "team-a"


def test_a_namespace_question_on_an_empty_store_says_there_are_none(tmp_path: Path) -> None:
    store = open_store(tmp_path / "empty.db", clock=lambda: END)
    try:
        reply = Analyst(store, clock=lambda: END).ask("GPU utilization trend for a namespace")
        assert reply.clarification is None
        assert reply.answer.startswith("No namespace has GPU usage data in")
        zh = Analyst(store, clock=lambda: END).ask("某个命名空间的GPU利用率趋势")
        assert zh.clarification is None
        assert "没有任何命名空间" in zh.answer
    finally:
        store.close()


def test_realtime_of_a_namespace_counts_the_gpus_it_holds(analyst: Analyst) -> None:
    fleet_wide = analyst.ask("how many GPUs are in use right now?", cluster="prod")
    assert fleet_wide.data[0]["result"]["gpus"] == 2
    held = analyst.ask("how many GPUs does team-b hold right now?", cluster="prod")
    assert held.intent == "realtime"
    assert held.data[0]["result"]["gpus"] == 1
    assert held.data[0]["result"]["scope"] == {"cluster": "prod", "namespace": "team-b"}
    assert held.answer.startswith("team-b holds 1 GPU now, mean utilization 20.0 %")


def test_lower_than_last_week_compares_this_week_with_last_week(analyst: Analyst) -> None:
    reply = analyst.ask("is team-a's utilization lower than yesterday?", cluster="lab")
    assert reply.intent == "compare"
    assert reply.entities["time_range"]["label"] == "today"
    assert "today" in reply.answer
    today, yesterday = reply.entities["compare"]["windows"]
    assert yesterday["end"] == today["start"]  # the day before today, not before yesterday


def test_a_level_word_then_an_unknown_name_is_said(analyst: Analyst) -> None:
    for question, name in [
        ("utilization of user zed over the past 6 hours", "zed"),
        ("utilization in cluster foo over the past 6 hours", "foo"),
        ("utilization of A100 GPUs over the past 6 hours", "A100"),
    ]:
        reply = analyst.ask(question, cluster="lab")
        assert reply.answer.startswith(f"Nothing named '{name}' has data"), question
    # The answer after the note is a sentence of its own.
    assert "\nOver the past 6 hours" in reply.answer


def test_a_chinese_ordinal_answers_a_clarification(analyst: Analyst) -> None:
    first = analyst.ask("查询某个命名空间的GPU利用率趋势", cluster="prod")
    assert first.clarification is not None
    picked = analyst.ask("第二个", session_id=first.session_id)
    assert picked.entities["namespace"] == first.clarification["options"][1]


def test_realtime_and_window_words_read_as_sentences(analyst: Analyst) -> None:
    assert analyst.ask("realtime utilization", cluster="lab").intent == "realtime"
    assert analyst.ask("实时利用率", cluster="lab").intent == "realtime"
    reply = analyst.ask("utilization since Monday", cluster="lab")
    assert not reply.answer.startswith("Over since")


def test_typos_and_spaced_names_are_read_as_the_one_known_name(analyst: Analyst) -> None:
    typo = analyst.ask("utilization of namespace tem-a over the past 6 hours", cluster="lab")
    assert typo.answer.startswith("Read 'tem-a' as team-a.")
    assert typo.entities["namespace"] == "team-a"
    spaced = analyst.ask("how busy was team b over the past 6 hours?", cluster="prod")
    assert spaced.answer.startswith("Read 'team b' as team-b.")
    assert spaced.entities["namespace"] == "team-b"
    # team-z differs from team-a only in its id part: another team, not a typo.
    vague = analyst.ask("utilization of team-z over the past 6 hours", cluster="lab")
    assert vague.answer.startswith("Nothing named 'team-z' has data")
    zh = analyst.ask("过去6小时teem-a的GPU利用率", cluster="lab")
    assert zh.answer.startswith("把'teem-a'理解为team-a。")
    # A name that is nowhere near any still answers for the fleet, saying so.
    fleet = analyst.ask("how busy was nobody-team over the past 6 hours", cluster="lab")
    assert fleet.intent == "trend"
    assert fleet.answer.startswith("Nothing named 'nobody-team' has data")
