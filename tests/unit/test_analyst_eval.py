"""The analyst against its evaluation set on the demo cluster (issue 4's quality bar).

* Accuracy: every turn of ``tests/fixtures/analyst_eval.jsonl`` (English and Chinese, all
  intents, follow-ups, clarifications) is asked in its conversation's session; the share of
  turns with the expected intent, entities and clarification must be at least 95 %. The
  figure and every miss are printed (``pytest -s`` shows them; ``make test`` prints the
  summary line).
* Numbers: every number in every answer and insight is a value of the tool results behind it
  (``data``), and each tool result equals what the REST API returns for the same call.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.analyst_eval import HOLDOUT_FILE, Scored, run

from gpufleet.agent.context import AgentContext
from gpufleet.agent.live import LiveState
from gpufleet.api.app import create_app
from gpufleet.collectors.sim import SimGpuSource
from gpufleet.settings import Settings
from gpufleet.store.base import Store

ACCURACY_BAR = 0.95


@pytest.fixture(scope="module")
def scored(demo_store: Store) -> list[Scored]:
    return list(run(demo_store))


def test_accuracy_on_the_evaluation_set_is_at_least_95_pct(
    scored: list[Scored], report_lines: list[str]
) -> None:
    ok = sum(s.ok for s in scored)
    accuracy = ok / len(scored)
    by_lang: dict[str, list[bool]] = {}
    for s in scored:
        lang = "zh" if s.conversation.startswith("zh") else "en"
        by_lang.setdefault(lang, []).append(s.ok)
    parts = ", ".join(f"{k} {100 * sum(v) / len(v):.1f} %" for k, v in sorted(by_lang.items()))
    summary = f"analyst evaluation: {ok}/{len(scored)} turns = {100 * accuracy:.1f} % ({parts})"
    report_lines.append(f"{summary}; fails below {100 * ACCURACY_BAR:.0f} %")
    print(f"\n{summary}")
    for s in scored:
        if not s.ok:
            print(f"  miss {s.conversation}#{s.turn} {s.question!r}: {'; '.join(s.problems)}")
    assert len(scored) >= 150
    assert accuracy >= ACCURACY_BAR


def test_the_held_out_set_stays_understood(demo_store: Store, report_lines: list[str]) -> None:
    # Not tuned on (only general vocabulary it exposed was added once): a guard against
    # tuning the rules to the main set at the cost of questions phrased otherwise.
    held = list(run(demo_store, path=HOLDOUT_FILE))
    ok = sum(s.ok for s in held)
    report_lines.append(
        f"analyst held-out set: {ok}/{len(held)} turns = {100 * ok / len(held):.1f} %"
    )
    assert len(held) >= 70
    assert ok / len(held) >= 0.85


def test_the_set_covers_every_intent_both_languages_and_follow_ups(scored: list[Scored]) -> None:
    intents = {s.expected["intent"] for s in scored}
    assert intents == {
        "trend",
        "compare",
        "drilldown",
        "realtime",
        "metadata",
        "waste",
        "recommend",
        "alerts",
        "help",
    }
    assert {s.reply.language for s in scored} == {"en", "zh"}
    assert sum(s.turn > 0 for s in scored) >= 25
    assert sum(s.expected.get("clarification") is not None for s in scored) >= 4


# ---- every number comes from the data, and the data from the API -------------------------

_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2})?)?Z?)?"
    r"|(?<!\d)\d{2}:\d{2}(?!\d)"  # a time of day (since 11:00 UTC)
)
_WINDOW_WORDS = re.compile(
    r"(?:past|the|last|previous)\s+\d+(?:\.\d+)?\s+(?:hours?|days?|weeks?|months?)(?: before)?"
    r"|(?:过去|之前|最近)\d+(?:小时|天|周|个月)|\d{4}年\d{1,2}月"
    r"|(?:January|February|March|April|May|June|July|August|September|October|November"
    r"|December) \d{4}"
)
"""Time ranges as the question named them ("the past 7 days", "October 2026"): words of the
question, not data."""
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.\-])[-+]?\d[\d,]*(?:\.\d+)?(?![A-Za-z0-9_\-]|\.\d)")
_CONSTANTS = {80.0, 95.0}
"""Interval levels named in the wording ("80 % interval", "95 % CI"), and list numbering."""


def _numbers(value: Any, out: set[float]) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            out.add(float(value))
            out.add(float(value) * 100.0)  # a 0..1 fraction shown as a percentage
        return
    if isinstance(value, str):
        # Sentences the analysis wrote (summaries, notes) carry their own numbers.
        for number, _ in _shown(value):
            out.add(number)
        return
    if isinstance(value, dict):
        for v in value.values():
            _numbers(v, out)
    elif isinstance(value, list):
        out.add(float(len(value)))
        for v in value:
            _numbers(v, out)


def _shown(text: str) -> list[tuple[float, int]]:
    """Numbers in ``text`` with their decimals (ISO times, ids and names left out)."""
    text = _WINDOW_WORDS.sub(" ", _ISO.sub(" ", text))
    text = re.sub(r"\bid [0-9a-f]{8,}\b", " ", text)
    found = []
    for m in _NUMBER.finditer(text):
        token = m.group(0).replace(",", "").lstrip("+")
        decimals = len(token.split(".")[1]) if "." in token else 0
        found.append((abs(float(token)), decimals))
    return found


def _backed(number: float, decimals: int, values: set[float]) -> bool:
    tolerance = 0.5 * 10.0**-decimals + 1e-9
    return any(abs(abs(v) - number) <= tolerance for v in values)


def test_every_number_in_an_answer_is_in_its_data(scored: list[Scored]) -> None:
    problems = []
    checked = 0
    for s in scored:
        if s.reply.clarification is not None or s.reply.intent == "help" or not s.reply.data:
            continue  # nothing to back: a question asked back, the help text, or an error
        values: set[float] = set(_CONSTANTS)
        _numbers([d["result"] for d in s.reply.data], values)
        lines = [s.reply.answer, *s.reply.insights]
        # Numbered list items ("1. production") are positions, not data.
        text = "\n".join(re.sub(r"^\d+\. ", "", ln, flags=re.M) for ln in lines)
        for number, decimals in _shown(text):
            checked += 1
            if not _backed(number, decimals, values):
                problems.append(f"{s.conversation}#{s.turn}: {number} in {text[:160]!r}")
    assert checked > 300
    assert not problems, "\n".join(problems[:20])


@pytest.fixture(scope="module")
def api(demo_store: Store, tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    unused = tmp_path_factory.mktemp("api") / "unused.db"
    ctx = AgentContext(
        settings=Settings(cluster="gpu-cluster-01", node="n1", db=str(unused)),
        live=LiveState(SimGpuSource(gpus=1).status()),
        store=demo_store,
    )
    return TestClient(create_app(ctx))


def _call(api: TestClient, call: dict[str, Any]) -> Any:
    if call["method"] == "POST":
        r = api.post(call["path"], json=call["body"])
    else:
        r = api.get(call["path"], params=call["params"])
    assert r.status_code == 200, (call, r.text)
    return r.json()


def _same(tool: str, result: Any, response: Any) -> bool:
    if tool in ("compare_periods", "compare_entities"):
        (key,) = result
        return bool(result[key] == response[key])
    if tool == "analyze_workload_history":
        by_key = {g["key"]: g for g in response["by"]}
        return all(
            all(w[k] == by_key[w["key"]][k] for k in by_key[w["key"]]) for w in result["workloads"]
        )
    if tool == "rank_entities":
        # The ranking orders the API's groups by one field: each ranked row is one of them.
        by_key = {g["key"]: g for g in response["by"]}
        return all(row == by_key[row["key"]] for row in result["ranked"])
    if tool == "get_alerts":
        return [a["id"] for a in result["alerts"]] == [a["id"] for a in response["alerts"]]
    if tool == "get_latest_snapshot":
        keys = ("gpus", "allocation_rate", "mean_gpu_util_pct", "by")
        return all(result[k] == response[k] for k in keys)
    return bool(result == response)


def test_every_tool_result_equals_the_api_answer(scored: list[Scored], api: TestClient) -> None:
    seen: set[str] = set()
    compared = 0
    for s in scored:
        for d in s.reply.data:
            if d["api"] is None:
                continue
            key = repr((d["tool"], d["api"]))
            if key in seen:
                continue
            seen.add(key)
            response = _call(api, d["api"])
            assert _same(d["tool"], d["result"], response), (s.conversation, d["tool"], d["api"])
            compared += 1
    assert compared >= 40


def test_offline_answers_are_quick(scored: list[Scored], report_lines: list[str]) -> None:
    latencies = sorted(s.reply.elapsed_ms for s in scored)
    p50 = latencies[len(latencies) // 2]
    line = f"analyst offline latency on the demo: p50 {p50:.1f} ms (bench/analyst_bench.py)"
    report_lines.append(line)
    print(f"\n{line}")
    # A loose guard against a regression by an order of magnitude; bench/analyst_bench.py
    # measures the 50 ms target on a quiet machine.
    assert p50 < 500.0


def test_every_conversation_is_kept_as_a_session(demo_store: Store, scored: list[Scored]) -> None:
    turns: dict[str, int] = {}
    for s in scored:
        turns[s.reply.session_id] = turns.get(s.reply.session_id, 0) + 1
    stored = {x.id: x.turns for x in demo_store.chat_sessions(limit=10_000)}
    assert {k: stored[k] for k in turns} == turns
