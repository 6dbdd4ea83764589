"""``gpufleet ask``, ``chat`` and ``sessions`` as a user runs them, over a demo store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from tests.unit.test_api_chat import END_ISO, TREND_Q, VAGUE_Q, _ctx, demo_store
from typer.testing import CliRunner, Result

from gpufleet.api.app import create_app
from gpufleet.cli.main import app

runner = CliRunner()
REPLY_KEYS = {"answer", "intent", "entities", "clarification", "insights", "data", "session_id"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("cliask") / "demo.db"
    demo_store(path).close()
    return str(path)


def _run(args: list[str], input: str | None = None) -> Result:
    return runner.invoke(app, args, input=input)


def _ask_json(db: str, question: str, *extra: str) -> dict[str, Any]:
    result = _run(["ask", "--db", db, "--json", *extra, question])
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def _one_line_error(result: Result, code: int | None = 2) -> str:
    """The failure is one ``gpufleet: ...`` line on stderr, nothing on stdout."""
    if code is None:
        assert result.exit_code != 0, result.output
    else:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gpufleet: ")
    return lines[0]


def _session_ids(db: str) -> list[str]:
    result = _run(["sessions", "list", "--db", db, "--json", "--limit", "1000"])
    assert result.exit_code == 0, result.output
    return [s["session_id"] for s in json.loads(result.stdout)["sessions"]]


def _turns(db: str, session_id: str) -> list[dict[str, Any]]:
    result = _run(["sessions", "show", session_id, "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    turns: list[dict[str, Any]] = json.loads(result.stdout)["turns"]
    return turns


# ---- ask -------------------------------------------------------------------------------------


def test_ask_json_prints_one_reply_object(db: str) -> None:
    out = _ask_json(db, TREND_Q)
    assert set(out) >= REPLY_KEYS
    assert out["intent"] == "trend"
    assert out["clarification"] is None
    assert out["entities"]["namespace"] == "ml-team"
    assert out["entities"]["time_range"]["end"] == END_ISO
    assert "ml-team" in out["answer"]
    assert out["insights"]
    assert [d["tool"] for d in out["data"]] == ["query_gpu_usage_trend"]
    assert out["session_id"] in _session_ids(db)


def test_ask_prints_the_answer_insights_and_session(db: str) -> None:
    out = _ask_json(db, TREND_Q)
    result = _run(["ask", "--db", db, TREND_Q])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # Same question, same data: the same answer and insights as --json gave.
    assert lines[0] == out["answer"]
    assert lines[1 : 1 + len(out["insights"])] == [f"  - {i}" for i in out["insights"]]
    assert lines[-1].startswith("(trend, session ")
    sid = lines[-1].removeprefix("(trend, session ").removesuffix(")")
    assert sid != out["session_id"]
    assert sid in _session_ids(db)


def test_ask_in_chinese(db: str) -> None:
    out = _ask_json(db, "ml-team过去7天的GPU利用率趋势")
    assert out["language"] == "zh"
    assert out["entities"]["namespace"] == "ml-team"
    assert "过去7天" in out["answer"]


def test_a_clarification_is_answered_with_session_and_a_number(db: str) -> None:
    asked = _ask_json(db, VAGUE_Q)
    clar = asked["clarification"]
    assert clar["missing"] == "namespace"
    options = clar["options"]
    assert len(options) >= 2
    assert "ml-team" in options
    human = _run(["ask", "--db", db, VAGUE_Q])
    assert human.exit_code == 0, human.output
    for n, option in enumerate(options, 1):
        assert f"{n}. {option}" in human.stdout
    picked = _ask_json(db, "2", "--session", asked["session_id"])
    assert picked["session_id"] == asked["session_id"]
    assert picked["clarification"] is None
    assert picked["entities"]["namespace"] == options[1]
    assert options[1] in picked["answer"]
    assert [t["query"] for t in _turns(db, asked["session_id"])] == [VAGUE_Q, "2"]


def test_a_follow_up_with_session_keeps_the_context(db: str) -> None:
    first = _ask_json(db, TREND_Q)
    second = _ask_json(db, "and last week?", "--session", first["session_id"])
    assert second["entities"]["namespace"] == "ml-team"
    assert second["entities"]["time_range"]["label"] == "last week"
    assert second["entities"]["time_range"] != first["entities"]["time_range"]


def test_ask_about_a_cluster(db: str) -> None:
    out = _ask_json(db, "utilization trend past 7 days", "--cluster", "gpu-cluster-01")
    assert out["entities"]["cluster"] == "gpu-cluster-01"
    line = _one_line_error(_run(["ask", "--db", db, "--cluster", "nope", TREND_Q]))
    assert "no cluster 'nope'" in line
    assert "gpu-cluster-01" in line


# ---- ask: errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_is_one_line_and_stores_nothing(db: str, question: str) -> None:
    before = _session_ids(db)
    line = _one_line_error(_run(["ask", "--db", db, question]))
    assert "empty" in line
    assert _session_ids(db) == before


def test_an_overlong_question_or_bad_session_is_one_line(db: str) -> None:
    before = _session_ids(db)
    assert "2000" in _one_line_error(_run(["ask", "--db", db, "x" * 2001]))
    assert "session id" in _one_line_error(_run(["ask", "--db", db, "--session", "a b", TREND_Q]))
    assert _session_ids(db) == before


@pytest.mark.parametrize("question", ["ml-team\x00 utilization", "\x1b[2Jml-team utilization"])
def test_a_question_with_a_control_character_is_one_line_and_stores_nothing(
    db: str, question: str
) -> None:
    before = _session_ids(db)
    line = _one_line_error(_run(["ask", "--db", db, question]))
    assert "control character U+00" in line
    assert _session_ids(db) == before


def test_db_and_url_together_fail_with_one_line(db: str) -> None:
    line = _one_line_error(_run(["ask", "--db", db, "--url", "http://127.0.0.1:9", TREND_Q]))
    assert "not both" in line
    line = _one_line_error(_run(["chat", "--db", db, "--url", "http://127.0.0.1:9"]))
    assert "not both" in line


def test_a_missing_db_path_fails_with_one_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.db")
    for args in (
        ["ask", "--db", missing, TREND_Q],
        ["chat", "--db", missing],
        ["sessions", "list", "--db", missing],
        ["sessions", "show", "abc", "--db", missing],
        ["sessions", "delete", "abc", "--db", missing],
    ):
        result = _run(args, input="exit\n")
        assert missing in _one_line_error(result), args
        assert result.stdout == "", args
    assert not (tmp_path / "nope.db").exists()


def test_an_unreachable_agent_is_one_line() -> None:
    line = _one_line_error(_run(["ask", "--url", "http://127.0.0.1:9", TREND_Q]))
    assert "cannot reach http://127.0.0.1:9" in line


# ---- ask --url (the app served in-process) -----------------------------------------------------


@pytest.fixture
def agent(db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``http://agent``: the real app over the demo store, reached through httpx."""
    from gpufleet.store import open_store

    store = open_store(db)
    client = TestClient(create_app(_ctx(store, tmp_path)))

    def request(method: str, url: str, **kw: Any) -> httpx.Response:
        assert url.startswith("http://agent/")
        kw.pop("timeout", None)
        return client.request(method, url.removeprefix("http://agent"), **kw)

    monkeypatch.setattr(httpx, "request", request)
    try:
        yield "http://agent"
    finally:
        store.close()


def test_ask_url_asks_the_agent(db: str, agent: str) -> None:
    result = _run(["ask", "--url", agent, "--json", TREND_Q])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) >= REPLY_KEYS
    assert out["entities"]["namespace"] == "ml-team"
    assert out["answer"] == _ask_json(db, TREND_Q)["answer"]
    follow = _run(["ask", "--url", agent, "--session", out["session_id"], "and last week?"])
    assert follow.exit_code == 0, follow.output
    assert "last week" in follow.stdout.lower()
    assert f"session {out['session_id']}" in follow.stdout
    assert [t["query"] for t in _turns(db, out["session_id"])] == [TREND_Q, "and last week?"]


def test_ask_url_reports_the_agents_422_in_one_line(agent: str) -> None:
    line = _one_line_error(_run(["ask", "--url", agent, "--cluster", "nope", TREND_Q]))
    assert "422" in line
    assert "gpu-cluster-01" in line


def test_sessions_over_url_list_show_and_delete(agent: str) -> None:
    asked = json.loads(_run(["ask", "--url", agent, "--json", TREND_Q]).stdout)
    sid = asked["session_id"]
    listed = json.loads(_run(["sessions", "list", "--url", agent, "--json"]).stdout)
    assert sid in [s["session_id"] for s in listed["sessions"]]
    _run(["ask", "--url", agent, TREND_Q])  # two sessions at least: one is left out below
    cut = _run(["sessions", "list", "--url", agent, "--limit", "1"])
    assert cut.exit_code == 0, cut.output
    assert cut.stderr.startswith("showing 1 of ")
    shown = json.loads(_run(["sessions", "show", sid, "--url", agent, "--json"]).stdout)
    assert [t["query"] for t in shown["turns"]] == [TREND_Q]
    gone = _run(["sessions", "delete", sid, "--url", agent])
    assert gone.exit_code == 0, gone.output
    assert "deleted session" in gone.stdout
    again = _run(["sessions", "show", sid, "--url", agent])
    assert again.exit_code != 0
    assert "404" in again.output


# ---- chat --------------------------------------------------------------------------------------


def test_chat_answers_each_question_in_one_session(db: str) -> None:
    result = _run(["chat", "--db", db], input=f"{TREND_Q}\nand last week?\nexit\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Over the past 7 days, GPU utilization of ml-team" in out
    assert "Last week, GPU utilization of ml-team" in out
    tags = [line for line in out.splitlines() if "(trend, session " in line]
    assert len(tags) == 2
    sid = tags[0].rsplit("session ", 1)[1].removesuffix(")")
    assert tags[1].endswith(f"session {sid})")
    assert f"session {sid} is kept: --session {sid} continues it" in out
    assert [t["query"] for t in _turns(db, sid)] == [TREND_Q, "and last week?"]


def test_chat_ends_at_end_of_input_and_skips_blank_lines(db: str) -> None:
    result = _run(["chat", "--db", db], input=f"\n   \n{TREND_Q}\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("(trend, session ") == 1
    assert "is kept: --session" in result.stdout


def test_chat_continues_a_given_session(db: str) -> None:
    sid = _ask_json(db, TREND_Q)["session_id"]
    result = _run(["chat", "--db", db, "--session", sid], input="and last week?\nquit\n")
    assert result.exit_code == 0, result.output
    assert "Last week, GPU utilization of ml-team" in result.stdout
    assert len(_turns(db, sid)) == 2


def test_chat_with_no_question_keeps_no_session(db: str) -> None:
    before = _session_ids(db)
    result = _run(["chat", "--db", db], input="exit\n")
    assert result.exit_code == 0, result.output
    assert "is kept" not in result.stdout
    assert _session_ids(db) == before


def test_chat_survives_a_rejected_question(db: str) -> None:
    result = _run(["chat", "--db", db], input=f"{TREND_Q}\n{'x' * 2001}\nand last week?\nexit\n")
    assert result.exit_code == 0, result.output
    assert "2000" in result.output
    assert "Last week, GPU utilization of ml-team" in result.stdout
    assert "is kept: --session" in result.stdout


# ---- sessions ----------------------------------------------------------------------------------


def test_sessions_list_show_and_delete(db: str) -> None:
    first = _ask_json(db, TREND_Q)
    sid = first["session_id"]
    second = _ask_json(db, "and last week?", "--session", sid)
    listed = _run(["sessions", "list", "--db", db, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)["sessions"]
    assert rows[0]["session_id"] == sid  # newest first
    assert rows[0]["turns"] == 2
    assert rows[0]["title"] == TREND_Q
    human = _run(["sessions", "list", "--db", db])
    assert human.exit_code == 0, human.output
    line = next(x for x in human.stdout.splitlines() if x.startswith(sid))
    assert "2 turn(s)" in line
    assert TREND_Q in line
    one = _run(["sessions", "list", "--db", db, "--json", "--limit", "1"])
    assert len(json.loads(one.stdout)["sessions"]) == 1

    turns = _turns(db, sid)
    assert [t["seq"] for t in turns] == [1, 2]
    assert [t["reply"] for t in turns] == [first, second]
    shown = _run(["sessions", "show", sid, "--db", db])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == [
        f"> {TREND_Q}",
        first["answer"],
        "> and last week?",
        second["answer"],
    ]

    deleted = _run(["sessions", "delete", sid, "--db", db])
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout.strip() == f"deleted session {sid} (2 turn(s))"
    assert sid not in _session_ids(db)
    again = _one_line_error(_run(["sessions", "delete", sid, "--db", db]), code=None)
    assert sid in again
    gone = _one_line_error(_run(["sessions", "show", sid, "--db", db]), code=None)
    assert sid in gone


def test_unknown_sessions_fail_with_one_line(db: str) -> None:
    for command in ("delete", "show"):
        result = _run(["sessions", command, "no-such", "--db", db])
        assert "no-such" in _one_line_error(result, code=None), command


def test_sessions_list_of_an_empty_store(tmp_path: Path) -> None:
    from gpufleet.store import open_store

    path = tmp_path / "empty.db"
    open_store(path).close()
    result = _run(["sessions", "list", "--db", str(path)])
    assert result.exit_code == 0, result.output
    assert "no sessions yet" in result.stdout
    result = _run(["sessions", "list", "--db", str(path), "--json"])
    assert json.loads(result.stdout) == {"sessions": []}


def test_sessions_list_says_when_the_limit_leaves_some_out(tmp_path: Path) -> None:
    from gpufleet.model import ChatTurn
    from gpufleet.store import open_store

    path = tmp_path / "three.db"
    store = open_store(path)
    try:
        for i in range(3):
            store.save_chat_turn(
                ChatTurn(session_id=f"s{i}", seq=1, ts_s=10.0 + i, query=f"q{i}", reply={})
            )
    finally:
        store.close()
    cut = _run(["sessions", "list", "--db", str(path), "--limit", "2"])
    assert cut.exit_code == 0, cut.output
    assert [x.split()[0] for x in cut.stdout.splitlines()] == ["s2", "s1"]
    assert cut.stderr.strip() == (
        "showing 2 of 3 sessions (the most recently updated); --limit N for more"
    )
    for limit in ("3", "50"):
        whole = _run(["sessions", "list", "--db", str(path), "--limit", limit])
        assert whole.exit_code == 0, whole.output
        assert len(whole.stdout.splitlines()) == 3
        assert whole.stderr == ""
