"""``/api/gpu-analysis/*``: the conversational analyst over the real app and a demo store.

Questions and follow-ups, the clarification flow, Chinese, the server-sent-event stream,
the sessions endpoints, and the 4xx/503 a user can cause (with nothing stored for them).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpufleet.agent.context import AgentContext
from gpufleet.agent.demo import write_demo
from gpufleet.agent.live import LiveState
from gpufleet.api.app import create_app
from gpufleet.collectors.sim import SimGpuSource
from gpufleet.settings import Settings
from gpufleet.store import open_store
from gpufleet.store.base import Store

FIXED_END = datetime(2025, 6, 11, 12, tzinfo=UTC).timestamp()
"""A Wednesday noon, well before any wall clock the suite runs at: the analyst answers as
of the latest sample, so the demo's last sample is "now"."""
END_ISO = "2025-06-11T12:00:00Z"
CHAT = "/api/gpu-analysis/chat"
STREAM = "/api/gpu-analysis/chat/stream"
SESSIONS = "/api/gpu-analysis/sessions"
TREND_Q = "ml-team utilization past 7 days"
VAGUE_Q = "Query GPU utilization trend for a namespace"


def demo_store(path: Path) -> Store:
    """The demo cluster (1 node x 8 GPUs, 8 days, a sample every 10 minutes) at ``path``."""
    store = open_store(path, clock=lambda: FIXED_END)
    write_demo(store, days=8, nodes=1, gpus=8, seed=0, end_s=FIXED_END, interval_s=600.0)
    return store


def _ctx(store: Store | None, tmp: Path) -> AgentContext:
    return AgentContext(
        settings=Settings(cluster="c1", node="n1", db=str(tmp / "unused.db")),
        live=LiveState(SimGpuSource(gpus=1).status()),
        store=store,
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("chat")
    store = demo_store(tmp / "demo.db")
    try:
        yield TestClient(create_app(_ctx(store, tmp)))
    finally:
        store.close()


def _chat(client: TestClient, query: str, **body: Any) -> dict[str, Any]:
    r = client.post(CHAT, json={"query": query, **body})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _sessions(client: TestClient) -> list[dict[str, Any]]:
    r = client.get(SESSIONS, params={"limit": 1000})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["sessions"]
    return found


def _events(body: str) -> list[tuple[str, Any]]:
    """``(event, data)`` of a server-sent-event body, in order."""
    out = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) == {"event", "data"}, block
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def _iso_s(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


# ---- questions -------------------------------------------------------------------------------


def test_a_trend_question_has_the_reply_shape(client: TestClient) -> None:
    out = _chat(client, TREND_Q)
    assert {
        "answer",
        "intent",
        "entities",
        "clarification",
        "insights",
        "data",
        "session_id",
    } <= set(out)
    assert out["intent"] == "trend"
    assert out["clarification"] is None
    assert out["language"] == "en"
    assert "ml-team" in out["answer"]
    assert re.search(r"\d+\.\d %", out["answer"]), out["answer"]
    e = out["entities"]
    assert e["namespace"] == "ml-team"
    rng = e["time_range"]
    # Answered "as of" the latest sample, not the wall clock.
    assert rng["end"] == END_ISO
    assert _iso_s(rng["end"]) - _iso_s(rng["start"]) == pytest.approx(7 * 86400)
    assert out["insights"]
    assert all(isinstance(i, str) and i for i in out["insights"])
    assert [d["tool"] for d in out["data"]] == ["query_gpu_usage_trend"]
    result = out["data"][0]["result"]
    assert result["series"]["scope"] == {"namespace": "ml-team"}
    assert result["series"]["window"]["end"] == END_ISO
    assert re.fullmatch(r"[A-Za-z0-9_.\-]{1,64}", out["session_id"])


def test_a_follow_up_keeps_the_namespace_and_changes_the_time_range(client: TestClient) -> None:
    first = _chat(client, TREND_Q)
    sid = first["session_id"]
    second = _chat(client, "and last week?", session_id=sid)
    assert second["session_id"] == sid
    assert second["follow_up"] is True
    assert second["intent"] == first["intent"] == "trend"
    assert second["entities"]["namespace"] == "ml-team"
    assert "ml-team" in second["answer"]
    rng = second["entities"]["time_range"]
    assert rng != first["entities"]["time_range"]
    assert rng["label"] == "last week"
    # Last week of 2025-06-11 (a Wednesday): Monday 2025-06-02 .. Monday 2025-06-09.
    assert (rng["start"], rng["end"]) == ("2025-06-02T00:00:00Z", "2025-06-09T00:00:00Z")
    assert second["data"][0]["result"]["series"]["window"]["start"] == rng["start"]
    turns = client.get(f"{SESSIONS}/{sid}").json()["turns"]
    assert [t["query"] for t in turns] == [TREND_Q, "and last week?"]


def test_a_vague_question_asks_with_the_real_namespaces_then_takes_a_number(
    client: TestClient,
) -> None:
    asked = _chat(client, VAGUE_Q)
    clar = asked["clarification"]
    assert clar is not None
    assert clar["missing"] == "namespace"
    assert asked["data"] == []
    # The options are the namespaces with GPU usage in the window (from the analysis API).
    rng = asked["entities"]["time_range"]
    by = client.post(
        "/analysis/utilization", json={"from": rng["start"], "to": rng["end"], "by": "namespace"}
    ).json()["by"]
    real = {g["key"] for g in by if g["gpu_hours"] > 0}
    assert set(clar["options"]) == real
    assert len(clar["options"]) == len(real) >= 2
    for n, option in enumerate(clar["options"], 1):
        assert f"{n}. {option}" in asked["answer"]
    picked = _chat(client, "2", session_id=asked["session_id"])
    assert picked["session_id"] == asked["session_id"]
    assert picked["clarification"] is None
    assert picked["intent"] == "trend"
    assert picked["entities"]["namespace"] == clar["options"][1]
    assert clar["options"][1] in picked["answer"]
    assert picked["data"][0]["result"]["series"]["scope"] == {"namespace": clar["options"][1]}


def test_an_out_of_range_choice_does_not_drop_the_namespace(client: TestClient) -> None:
    asked = _chat(client, VAGUE_Q)
    assert len(asked["clarification"]["options"]) < 9
    out = _chat(client, "9", session_id=asked["session_id"])
    # Either asked again / refused, or answered for a namespace: never the fleet-wide trend.
    assert out["data"] == [] or "namespace" in out["entities"], out["answer"]


def test_a_chinese_question_is_answered_in_chinese(client: TestClient) -> None:
    out = _chat(client, "ml-team过去7天的GPU利用率趋势")
    assert out["language"] == "zh"
    assert out["intent"] == "trend"
    assert out["entities"]["namespace"] == "ml-team"
    assert out["entities"]["time_range"]["end"] == END_ISO
    assert "过去7天" in out["answer"]
    assert "利用率" in out["answer"]
    assert re.search(r"[\u4e00-\u9fff]", " ".join(out["insights"]))
    assert out["data"][0]["tool"] == "query_gpu_usage_trend"


def test_a_chinese_clarification_takes_a_chinese_choice(client: TestClient) -> None:
    asked = _chat(client, "查询某个命名空间的GPU利用率趋势")
    options = asked["clarification"]["options"]
    assert asked["language"] == "zh"
    assert len(options) >= 2
    picked = _chat(client, "第2个", session_id=asked["session_id"])
    assert picked["entities"]["namespace"] == options[1]
    assert picked["language"] == "zh"


def test_a_chinese_clarification_is_all_chinese(client: TestClient) -> None:
    asked = _chat(client, "查询某个命名空间的GPU利用率趋势")
    assert "past" not in asked["clarification"]["question"], asked["clarification"]["question"]


def test_a_period_comparison_spells_gpu_in_capitals(client: TestClient) -> None:
    out = _chat(client, "ml-team utilization past 7 days and last week")
    assert out["intent"] == "compare"
    assert "Gpu " not in out["answer"], out["answer"]


# ---- the stream --------------------------------------------------------------------------------


def test_the_stream_sends_the_reply_as_ordered_events(client: TestClient) -> None:
    r = client.post(STREAM, json={"query": TREND_Q})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    names = [name for name, _ in events]
    assert names[0] == "meta"
    assert names[-1] == "done"
    assert names.count("meta") == names.count("data") == names.count("done") == 1
    # meta, answer..., insight..., data, done: in that order.
    order = {"meta": 0, "answer": 1, "insight": 2, "data": 3, "done": 4}
    assert [order[n] for n in names] == sorted(order[n] for n in names)
    meta = events[0][1]
    assert meta["intent"] == "trend"
    assert meta["entities"]["namespace"] == "ml-team"
    assert meta["clarification"] is None
    assert meta["language"] == "en"
    streamed = "".join(d["text"] for n, d in events if n == "answer")
    insights = [d["text"] for n, d in events if n == "insight"]
    data = next(d for n, d in events if n == "data")
    assert events[-1][1]["elapsed_ms"] >= 0
    # The same question in a fresh session through /chat: the same reply.
    plain = _chat(client, TREND_Q)
    assert plain["session_id"] != meta["session_id"]
    assert streamed == plain["answer"]
    assert insights == plain["insights"]
    assert [d["tool"] for d in data] == [d["tool"] for d in plain["data"]]
    assert data[0]["result"]["series"] == plain["data"][0]["result"]["series"]
    # The streamed turn is stored like any other.
    turns = client.get(f"{SESSIONS}/{meta['session_id']}").json()["turns"]
    assert [t["query"] for t in turns] == [TREND_Q]
    assert turns[0]["reply"]["answer"] == streamed


def test_the_streamed_pieces_of_a_multi_sentence_answer_add_up_to_it(client: TestClient) -> None:
    r = client.post(STREAM, json={"query": VAGUE_Q})
    assert r.status_code == 200, r.text
    streamed = "".join(d["text"] for n, d in _events(r.text) if n == "answer")
    plain = _chat(client, VAGUE_Q)
    assert streamed == plain["answer"]


def test_the_stream_does_not_cut_numbers(client: TestClient) -> None:
    r = client.post(STREAM, json={"query": TREND_Q})
    pieces = [d["text"] for n, d in _events(r.text) if n == "answer"]
    for a, b in itertools.pairwise(pieces):
        assert not (re.search(r"\d\.$", a) and re.match(r"\d", b)), pieces


def test_the_stream_continues_a_session(client: TestClient) -> None:
    sid = _chat(client, TREND_Q)["session_id"]
    r = client.post(STREAM, json={"query": "and last week?", "session_id": sid})
    assert r.status_code == 200, r.text
    meta = _events(r.text)[0][1]
    assert meta["session_id"] == sid
    assert meta["entities"]["namespace"] == "ml-team"
    assert meta["entities"]["time_range"]["label"] == "last week"


def test_the_stream_refuses_bad_input_before_streaming(client: TestClient) -> None:
    r = client.post(STREAM, json={"query": ""})
    assert r.status_code == 422
    assert r.json()["detail"]
    r = client.post(STREAM, json={"query": "hi", "cluster_name": "nope"})
    assert r.status_code == 422
    assert "gpu-cluster-01" in r.json()["detail"]


# ---- sessions ----------------------------------------------------------------------------------


def test_sessions_are_listed_read_back_and_deleted(client: TestClient) -> None:
    first = _chat(client, TREND_Q)
    sid = first["session_id"]
    second = _chat(client, "and last week?", session_id=sid)
    listed = {s["session_id"]: s for s in _sessions(client)}
    assert sid in listed
    row = listed[sid]
    assert row["turns"] == 2
    assert row["title"] == TREND_Q
    assert row["cluster"] is None
    assert row["created_at"] <= row["updated_at"]
    # Newest first: the session just updated leads the list.
    assert _sessions(client)[0]["session_id"] == sid
    got = client.get(f"{SESSIONS}/{sid}")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["session_id"] == sid
    assert [t["seq"] for t in body["turns"]] == [1, 2]
    assert [t["query"] for t in body["turns"]] == [TREND_Q, "and last week?"]
    assert body["turns"][0]["reply"] == first
    assert body["turns"][1]["reply"] == second
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t["at"]) for t in body["turns"])
    deleted = client.delete(f"{SESSIONS}/{sid}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"session_id": sid, "deleted_turns": 2}
    assert sid not in {s["session_id"] for s in _sessions(client)}
    again = client.delete(f"{SESSIONS}/{sid}")
    assert again.status_code == 404
    assert sid in again.json()["detail"]
    gone = client.get(f"{SESSIONS}/{sid}")
    assert gone.status_code == 404
    assert sid in gone.json()["detail"]


def test_an_unknown_session_is_a_404_with_a_detail(client: TestClient) -> None:
    r = client.get(f"{SESSIONS}/no-such-session")
    assert r.status_code == 404
    assert "no-such-session" in r.json()["detail"]
    assert SESSIONS in r.json()["detail"]
    r = client.delete(f"{SESSIONS}/no-such-session")
    assert r.status_code == 404
    assert "no-such-session" in r.json()["detail"]


def test_a_session_keeps_the_cluster_it_was_asked_about(client: TestClient) -> None:
    out = _chat(client, "utilization trend past 7 days", cluster_name="gpu-cluster-01")
    assert out["entities"]["cluster"] == "gpu-cluster-01"
    row = next(s for s in _sessions(client) if s["session_id"] == out["session_id"])
    assert row["cluster"] == "gpu-cluster-01"
    follow = _chat(client, "and last week?", session_id=out["session_id"])
    assert follow["entities"]["cluster"] == "gpu-cluster-01"


def test_an_unknown_session_id_in_a_question_is_a_404_and_starts_nothing(
    client: TestClient,
) -> None:
    r = client.post(CHAT, json={"query": TREND_Q, "session_id": "my-own.session_1"})
    assert r.status_code == 404
    assert "no session 'my-own.session_1'" in r.json()["detail"]
    assert client.get(f"{SESSIONS}/my-own.session_1").status_code == 404


def test_the_sessions_limit_is_checked(client: TestClient) -> None:
    r = client.get(SESSIONS, params={"limit": 0})
    assert r.status_code == 422
    assert "limit" in r.json()["detail"]
    _chat(client, TREND_Q)
    _chat(client, TREND_Q)
    one = client.get(SESSIONS, params={"limit": 1}).json()
    assert len(one["sessions"]) == 1
    every = client.get(SESSIONS, params={"limit": 1000}).json()
    assert one["total"] == every["total"] == len(every["sessions"]) >= 2


# ---- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"query": ""}, "at least 1"),
        ({"query": "   "}, "empty"),
        ({"query": "x" * 2001}, "2000"),
        ({"query": "ml-team\u0000 utilization"}, "control character U+0000 (at character 7)"),
        ({"query": "\u001b[2J" + TREND_Q}, "control character U+001B"),
        ({"query": TREND_Q, "colour": "blue"}, "colour"),
        ({"query": TREND_Q, "session_id": "a b"}, "session_id"),
        ({"query": TREND_Q, "session_id": "x" * 65}, "session_id"),
        ({"query": TREND_Q, "cluster_name": "nope"}, "gpu-cluster-01"),
        ({}, "Field required"),
        ({"query": 5}, "string"),
    ],
)
def test_bad_input_is_a_422_that_says_what_to_fix_and_stores_nothing(
    client: TestClient, body: dict[str, Any], needle: str
) -> None:
    before = _sessions(client)
    r = client.post(CHAT, json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str)
    assert needle in detail
    assert "Traceback" not in detail
    assert _sessions(client) == before


def test_an_unknown_cluster_lists_the_clusters(client: TestClient) -> None:
    r = client.post(CHAT, json={"query": TREND_Q, "cluster_name": "nope"})
    assert r.status_code == 422
    assert r.json()["detail"] == "no cluster 'nope' in the store; clusters: gpu-cluster-01"


def test_a_rejected_follow_up_adds_no_turn(client: TestClient) -> None:
    sid = _chat(client, TREND_Q)["session_id"]
    for body in (
        {"query": "x" * 2001, "session_id": sid},
        {"query": "   ", "session_id": sid},
        {"query": "and last week?", "session_id": sid, "cluster_name": "nope"},
    ):
        assert client.post(CHAT, json=body).status_code == 422
        assert client.post(STREAM, json=body).status_code == 422
    turns = client.get(f"{SESSIONS}/{sid}").json()["turns"]
    assert [t["query"] for t in turns] == [TREND_Q]
    # The session still follows up as if nothing happened.
    assert _chat(client, "and last week?", session_id=sid)["entities"]["namespace"] == "ml-team"


def test_a_query_of_exactly_2000_characters_is_taken(client: TestClient) -> None:
    query = (TREND_Q + " ") * 100
    query = query[:2000]
    r = client.post(CHAT, json={"query": query})
    assert r.status_code == 200, r.text


JSON_TYPE = {"content-type": "application/json"}
SEND = 'a JSON object such as {"query": "..."}'


@pytest.mark.parametrize(
    ("send", "detail"),
    [
        (
            {"content": b"not json", "headers": JSON_TYPE},
            f"the body is not valid JSON (at character 0: expecting value): send {SEND}",
        ),
        (
            {"content": b'{"query": "a",', "headers": JSON_TYPE},
            "the body is not valid JSON (at character 14: expecting property name enclosed "
            f"in double quotes): send {SEND}",
        ),
        (
            {"data": {"query": TREND_Q}},
            'the body must be a JSON object (Content-Type: application/json) such as {"query": '
            '"..."}',
        ),
        ({"json": [TREND_Q]}, f"the body must be {SEND}, not an array"),
        ({}, f"the request has no body: send {SEND} (Content-Type: application/json)"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_422_that_says_so(
    client: TestClient, send: dict[str, Any], detail: str
) -> None:
    before = _sessions(client)
    for path in (CHAT, STREAM):
        r = client.post(path, **send)
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == detail
    assert _sessions(client) == before
    # Elsewhere the same words, without the chat's example.
    r = client.post("/analysis/utilization", content=b"{", headers=JSON_TYPE)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("the body is not valid JSON (at character 1")
    assert r.json()["detail"].endswith(": send a JSON object")


def test_tabs_and_line_breaks_in_a_query_are_taken(client: TestClient) -> None:
    r = client.post(CHAT, json={"query": "ml-team\tutilization\r\npast 7 days"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body", [{"query": ""}, {"query": "x" * 2001}, {}])
def test_the_422_for_a_bad_query_names_the_field(client: TestClient, body: dict[str, Any]) -> None:
    r = client.post(CHAT, json=body)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("query:"), r.json()["detail"]


# ---- no store ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", CHAT, {"query": TREND_Q}),
        ("POST", STREAM, {"query": TREND_Q}),
        ("GET", SESSIONS, None),
        ("GET", f"{SESSIONS}/abc", None),
        ("DELETE", f"{SESSIONS}/abc", None),
    ],
)
def test_without_a_store_the_analyst_is_a_503_with_a_detail(
    tmp_path: Path, method: str, path: str, body: dict[str, Any] | None
) -> None:
    storeless = TestClient(create_app(_ctx(None, tmp_path)))
    r = storeless.request(method, path, json=body)
    assert r.status_code == 503, r.text
    assert "history is off" in r.json()["detail"]


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("utilization last 99999 weeks", "it is read as the past 3650 days"),
        ("idle cost over the past 999999999999 days", "it is read as the past 3650 days"),
        ("utilization past " + "9" * 400 + " days", "it is read as the past 3650 days"),
        ("utilization 0001-01-01 to 0001-01-02", "before any history gpufleet keeps"),
        ("utilization on 2026-02-30", "is not a valid date"),
        ("utilization on 2099-01-01", "there is no data in it yet"),
    ],
)
def test_time_phrases_that_cannot_be_used_are_answered_with_what_was_done(
    client: TestClient, query: str, said: str
) -> None:
    reply = _chat(client, query)
    assert said in reply["answer"]
    assert reply["data"]  # still answered, over the window the answer names


def test_a_session_raced_by_another_writer_is_a_409(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpufleet.analyst.engine import Analyst, SessionBusyError

    first = _chat(client, "utilization over the past 7 days")

    def busy(self: Analyst, *args: object, **kwargs: object) -> None:
        raise SessionBusyError("session answered another question at the same time")

    monkeypatch.setattr(Analyst, "_ask", busy)
    r = client.post(CHAT, json={"query": "and last month?", "session_id": first["session_id"]})
    assert r.status_code == 409
    assert "at the same time" in r.json()["detail"]


def test_waste_of_a_window_without_data_says_so(client: TestClient) -> None:
    reply = _chat(client, "how much did idle GPUs waste in January 2020?")
    assert reply["intent"] == "waste"
    assert reply["answer"].startswith("There is no GPU data for the fleet in January 2020")
    assert "$" not in reply["answer"]
