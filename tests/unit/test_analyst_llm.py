"""The optional LLM, against a local fake OpenAI-compatible server (real HTTP on loopback).

The fake answers ``POST /v1/chat/completions`` from a script per test: a tool call, plain
text, a slow reply, an error. The analyst must use a valid proposal, and fall back to its
offline understanding and wording when the model is absent, slow or wrong (bad arguments,
numbers that are not in the data).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gpufleet.agent.demo import write_demo
from gpufleet.analyst.engine import Analyst
from gpufleet.analyst.llm import LlmClient, LlmConfig, client_from, numbers_backed
from gpufleet.settings import LlmSettings
from gpufleet.store import open_store
from gpufleet.store.base import Store

END = 1_764_072_000.0  # 2025-11-25T12:00:00Z

Script = Callable[[dict[str, Any]], tuple[int, dict[str, Any] | str, float]]
"""request body -> (HTTP status, JSON reply or raw text, seconds to wait first)."""


class FakeOpenAI:
    """A chat-completions endpoint whose replies a test scripts."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: Script = lambda body: (500, "no script", 0.0)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                body["_path"] = self.path
                body["_auth"] = self.headers.get("Authorization")
                fake.requests.append(body)
                status, reply, delay = fake.script(body)
                time.sleep(delay)
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def tool_call(**arguments: Any) -> dict[str, Any]:
    call = {
        "type": "function",
        "function": {"name": "answer_question", "arguments": json.dumps(arguments)},
    }
    return {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [call]}}]}


def text(content: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": content}}]}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = open_store(tmp_path_factory.mktemp("llm") / "demo.db", clock=lambda: END)
    write_demo(s, days=8, nodes=1, gpus=8, seed=0, end_s=END, interval_s=900.0)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    f = FakeOpenAI()
    try:
        yield f
    finally:
        f.close()


def _analyst(store: Store, fake: FakeOpenAI, timeout_s: float = 2.0) -> Analyst:
    llm = LlmClient(LlmConfig(url=fake.url, model="fake-1", api_key="k", timeout_s=timeout_s))
    return Analyst(store, clock=lambda: END, llm=llm, persist=False)


OFF_TOPIC = "give me the lowdown on how hard our accelerators have been grinding"
"""A question the offline rules do not understand (no cue words they know)."""


def _routes_to_trend(body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    if "tools" in body:
        return 200, tool_call(intent="trend", time_range_days=3, namespace="ml-team"), 0.0
    return 200, text("no rewording"), 0.0  # the rewording may not be used either way


def test_offline_does_not_understand_the_question_without_the_llm(store: Store) -> None:
    reply = Analyst(store, clock=lambda: END, persist=False).ask(OFF_TOPIC)
    assert reply.intent == "help"
    assert reply.source == "offline"


def test_a_valid_tool_call_widens_what_is_understood(store: Store, fake: FakeOpenAI) -> None:
    fake.script = _routes_to_trend
    reply = _analyst(store, fake).ask(OFF_TOPIC)
    assert reply.intent == "trend"
    assert reply.source == "llm"
    assert reply.entities["namespace"] == "ml-team"
    assert reply.entities["time_range"]["start"] == "2025-11-22T12:00:00Z"
    first = fake.requests[0]
    assert first["_path"] == "/v1/chat/completions"
    assert first["_auth"] == "Bearer k"
    assert first["model"] == "fake-1"
    assert "tool_choice" not in first  # Ollama and llama.cpp limit it
    assert [t["function"]["name"] for t in first["tools"]] == ["answer_question"]
    # The numbers still come from the analysis.
    assert reply.data
    assert reply.data[0]["tool"] == "query_gpu_usage_trend"


def test_understood_questions_never_go_to_the_model_for_routing(
    store: Store, fake: FakeOpenAI
) -> None:
    fake.script = lambda body: (200, text("x"), 0.0)
    reply = _analyst(store, fake).ask("ml-team utilization over the past 3 days")
    assert reply.intent == "trend"
    assert all("tools" not in r for r in fake.requests)


@pytest.mark.parametrize(
    "arguments",
    [
        {"intent": "trend", "namespace": "no-such-team"},
        {"intent": "summon_dragons"},
        {"intent": "trend", "time_range_days": -4},
        {"intent": "trend", "metric": "vibes"},
    ],
)
def test_bad_tool_arguments_fall_back_to_offline(
    store: Store, fake: FakeOpenAI, arguments: dict[str, Any]
) -> None:
    fake.script = lambda body: (200, tool_call(**arguments) if "tools" in body else text("x"), 0.0)
    reply = _analyst(store, fake).ask(OFF_TOPIC)
    assert reply.intent == "help"
    assert reply.source == "offline"
    assert reply.llm_note is not None
    assert "bad tool arguments" in reply.llm_note


def _raw_call(arguments: Any) -> dict[str, Any]:
    call = {"type": "function", "function": {"name": "answer_question", "arguments": arguments}}
    return {"choices": [{"message": {"role": "assistant", "tool_calls": [call]}}]}


@pytest.mark.parametrize(
    "reply",
    [
        _raw_call("[1, 2]"),  # JSON, but a list
        _raw_call('"trend"'),  # JSON, but a string
        _raw_call("{not json"),
        _raw_call(["trend"]),  # already decoded, not an object
        _raw_call('{"intent": "trend", "time_range_days": 1' + "0" * 400 + "}"),
        _raw_call('{"intent": "trend", "namespace": ["ml-team"]}'),
        _raw_call('{"intent": "trend", "time_range_days": true}'),
        {"choices": [{"message": {"tool_calls": ["answer_question"]}}]},
        {"choices": [{"message": {"tool_calls": [{"function": "answer_question"}]}}]},
    ],
)
def test_tool_calls_of_the_wrong_shape_fall_back_to_offline(
    store: Store, fake: FakeOpenAI, reply: dict[str, Any]
) -> None:
    fake.script = lambda body: (200, reply if "tools" in body else text("x"), 0.0)
    answered = _analyst(store, fake).ask(OFF_TOPIC)
    assert answered.intent == "help"
    assert answered.source == "offline"
    assert answered.llm_note is not None
    assert "bad tool arguments" in answered.llm_note


@pytest.mark.parametrize("url", ["http://[::1/v1", "http://exa mple.com/v1", "htp//nowhere"])
def test_a_malformed_endpoint_url_falls_back(store: Store, url: str) -> None:
    llm = LlmClient(LlmConfig(url=url, model="m", timeout_s=1.0))
    reply = Analyst(store, clock=lambda: END, llm=llm, persist=False).ask(OFF_TOPIC)
    assert reply.intent == "help"
    assert reply.llm_note


def test_concurrent_questions_each_get_their_own_llm_outcome(
    store: Store, fake: FakeOpenAI
) -> None:
    """One client serves concurrent requests: a failure of one is not reported on another."""

    def script(body: dict[str, Any]) -> tuple[int, Any, float]:
        if "tools" not in body:
            return 200, text("no rewording"), 0.0
        asked = body["messages"][-1]["content"]
        if asked.endswith("fail"):
            return 500, "boom", 0.2
        return 200, tool_call(intent="trend", namespace="ml-team"), 0.0

    fake.script = script
    analyst = _analyst(store, fake)
    with ThreadPoolExecutor(4) as pool:
        jobs = [
            pool.submit(analyst.ask, OFF_TOPIC + (" fail" if i % 2 else " ok")) for i in range(8)
        ]
        replies = [j.result() for j in jobs]
    for i, reply in enumerate(replies):
        if i % 2:
            assert reply.intent == "help"
            assert reply.llm_note is not None
            assert "HTTP 500" in reply.llm_note
        else:
            assert reply.intent == "trend"
            assert reply.llm_note is None or "HTTP 500" not in reply.llm_note


def test_a_slow_model_is_not_waited_for(store: Store, fake: FakeOpenAI) -> None:
    fake.script = lambda body: (200, tool_call(intent="trend"), 3.0)
    began = time.perf_counter()
    reply = _analyst(store, fake, timeout_s=0.5).ask(OFF_TOPIC)
    assert time.perf_counter() - began < 2.5
    assert reply.intent == "help"
    assert reply.llm_note is not None
    assert "Timeout" in reply.llm_note


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, "boom"), (200, "not json"), (200, {"choices": []}), (200, text("I think it is trends"))],
)
def test_errors_and_replies_without_a_tool_call_fall_back(
    store: Store, fake: FakeOpenAI, status: int, body: Any
) -> None:
    fake.script = lambda req: (status, body, 0.0)
    reply = _analyst(store, fake).ask(OFF_TOPIC)
    assert reply.intent == "help"
    assert reply.source == "offline"
    assert reply.llm_note


def test_no_llm_endpoint_listening_falls_back(store: Store) -> None:
    llm = LlmClient(LlmConfig(url="http://127.0.0.1:9/v1", model="m", timeout_s=1.0))
    reply = Analyst(store, clock=lambda: END, llm=llm, persist=False).ask(OFF_TOPIC)
    assert reply.intent == "help"
    assert reply.llm_note


def test_a_rewording_with_made_up_numbers_is_discarded(store: Store, fake: FakeOpenAI) -> None:
    offline = Analyst(store, clock=lambda: END, persist=False).ask(
        "ml-team utilization past 3 days"
    )
    fake.script = lambda body: (200, text("ml-team ran at 97.3 % and saved $1,234,567."), 0.0)
    reply = _analyst(store, fake).ask("ml-team utilization past 3 days")
    assert reply.answer == offline.answer
    assert reply.source == "offline"
    assert reply.llm_note is not None
    assert "not in the data" in reply.llm_note


def test_a_rewording_that_keeps_the_numbers_is_used(store: Store, fake: FakeOpenAI) -> None:
    offline = Analyst(store, clock=lambda: END, persist=False).ask(
        "ml-team utilization past 3 days"
    )
    value = offline.data[0]["result"]["comparison"]["value_b"]
    friendly = f"Good news: ml-team kept its GPUs busy, about {value:.1f} % on average lately."
    fake.script = lambda body: (200, text(friendly), 0.0)
    reply = _analyst(store, fake).ask("ml-team utilization past 3 days")
    assert reply.answer == friendly
    assert reply.source == "llm"
    assert reply.insights == offline.insights  # the insights keep the offline wording


def test_numbers_backed_checks_precision_and_ignores_times() -> None:
    data = {"value": 45.234, "share": 0.25, "items": [1, 2, 3]}
    assert numbers_backed("45.2 % on 2026-11-23T10:00:00Z", data)
    assert numbers_backed("25.0 % of 3 items", data)
    assert not numbers_backed("45.9 %", data)
    assert not numbers_backed("7 GPUs", data)


def test_settings_make_a_client_only_when_configured() -> None:
    assert client_from(LlmSettings()) is None
    client = client_from(LlmSettings(url="http://127.0.0.1:11434/v1/", model="llama3.1"))
    assert client is not None
    assert client.config.url == "http://127.0.0.1:11434/v1"
    with pytest.raises(ValueError, match="needs a model"):
        LlmSettings(url="http://127.0.0.1:11434/v1")
    with pytest.raises(ValueError, match="http"):
        LlmSettings(url="ftp://x", model="m")
