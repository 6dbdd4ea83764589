"""The recommendation executor: dry runs, webhook (mocked and a real HTTP server), command
(real programs), registered handlers, refusal, and the execution log it writes."""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpufleet.agent.executor import (
    OUTPUT_TAIL_CHARS,
    SETUP_HINT,
    ExecutionRefusedError,
    Executor,
)
from gpufleet.analysis.recommend_types import Action, Recommendation, Target
from gpufleet.model import Execution
from gpufleet.settings import ExecutorSettings
from gpufleet.store import Store, open_store

NOW = 1_790_000_000.0
NOW_ISO = "2026-09-21T14:13:20Z"
HOOK = "https://hooks.example.test/gpufleet?sig=abc"


def rec(
    action_type: str = "drain_node", rec_id: str = "a1b2c3d4e5f60718", node: str = "n1"
) -> Recommendation:
    return Recommendation(
        id=rec_id,
        kind="scale_down",
        target=Target(cluster="c1", node=node, gpu_uuids=("GPU-1", "GPU-2"), gpus=("n1 0", "n1 1")),
        title=f"Drain {node}: 2 GPUs unallocated 95% of the week",
        evidence=(f"{node}: 2 GPUs unallocated for 160 of 168 h",),
        metrics={"unallocated_fraction": 0.95, "gpus": 2},
        action=Action(action_type, {"node": node, "gpu_uuids": ("GPU-1", "GPU-2")}),
        expected_monthly_saving_usd=2880.0,
        confidence=0.8,
        confidence_label="high",
        confidence_basis="168 h of data",
    )


class Clock:
    """Advances one second per call, so finish times come after request times."""

    def __init__(self) -> None:
        self.now = NOW - 1.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "gpufleet.db")
    try:
        yield s
    finally:
        s.close()


class Recorder:
    """An ``httpx.MockTransport`` handler that keeps every request and answers as told."""

    def __init__(self, status: int = 200, body: str = "accepted") -> None:
        self.requests: list[httpx.Request] = []
        self.status = status
        self.body = body
        self.seen_log: list[list[Execution]] = []
        self.store: Store | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.store is not None:
            self.seen_log.append(self.store.executions())
        return httpx.Response(self.status, text=self.body)


def webhook(
    token: str | None = "s3cret", url: str = HOOK, timeout_s: float = 5.0
) -> ExecutorSettings:
    return ExecutorSettings(
        kind="webhook", webhook_url=url, webhook_token=token, timeout_s=timeout_s
    )


def command(*argv: str, timeout_s: float = 20.0) -> ExecutorSettings:
    return ExecutorSettings(kind="command", command=list(argv), timeout_s=timeout_s)


def script(tmp_path: Path, body: str, name: str = "action.py") -> str:
    path = tmp_path / name
    path.write_text(body)
    return str(path)


# ---- dry runs and refusal -------------------------------------------------------------


def test_dry_run_is_the_default_and_calls_nothing(db: Store, tmp_path: Path) -> None:
    recorder = Recorder()
    ex = Executor(db, webhook(), clock=Clock(), transport=httpx.MockTransport(recorder))
    called: list[Recommendation] = []
    ex.register("release_gpus", lambda r: (called.append(r), (True, "ok"))[1], name="hub")
    done = ex.execute([rec(), rec("release_gpus", "ffff000011112222")], requested_by="alice")
    assert recorder.requests == []
    assert called == []
    assert [e.status for e in done] == ["planned", "planned"]
    assert {e.executor for e in done} == {"dry-run"}
    assert all(e.dry_run and e.finished_s == e.requested_s == NOW + i for i, e in enumerate(done))
    first, second = done
    assert first.detail.startswith("dry run, nothing was called: would POST the action JSON")
    assert "https://hooks.example.test/gpufleet (webhook, timeout 5 s)" in first.detail
    assert "sig=abc" not in first.detail  # a query string may carry a secret
    assert 'drain_node {"gpu_uuids": ["GPU-1", "GPU-2"], "node": "n1"}' in first.detail
    assert "on cluster=c1 node=n1 gpu_uuids=GPU-1,GPU-2" in first.detail
    assert "would call handler 'hub' for release_gpus" in second.detail
    assert db.executions() == done[::-1]  # logged, newest first


def test_dry_run_of_a_command_names_the_program(db: Store, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    prog = script(tmp_path, f"open({str(marker)!r}, 'w').write('x')\n")
    ex = Executor(db, command(sys.executable, prog), clock=Clock())
    (done,) = ex.execute([rec()], requested_by="alice", dry_run=True)
    assert not marker.exists()
    assert done.status == "planned"
    assert f"would run {sys.executable} {prog} with the action JSON on stdin" in done.detail


def test_dry_run_without_an_executor_says_what_to_set(db: Store) -> None:
    (done,) = Executor(db, ExecutorSettings(), clock=Clock()).execute([rec()], requested_by="bob")
    assert done.status == "planned"
    assert "no executor is configured" in done.detail
    assert SETUP_HINT in done.detail
    assert db.executions() == [done]


def test_real_run_without_an_executor_is_refused_before_logging(db: Store) -> None:
    ex = Executor(db, ExecutorSettings(), clock=Clock())
    with pytest.raises(ExecutionRefusedError) as info:
        ex.execute([rec(), rec("release_gpus", "1")], requested_by="bob", dry_run=False)
    assert isinstance(info.value, ValueError)  # the API answers 422
    message = str(info.value)
    assert "drain_node, release_gpus" in message
    assert '[executor] kind = "webhook" with webhook_url' in message
    assert 'kind = "command" with command' in message
    assert "GPUFLEET_EXECUTOR__KIND" in message
    assert db.executions() == []


def test_registered_handlers_run_even_without_an_executor(db: Store) -> None:
    ex = Executor(db, ExecutorSettings(), clock=Clock())
    ex.register("drain_node", lambda r: (True, f"drained {r.target.node}"), name="fleet-hub")
    (done,) = ex.execute([rec()], requested_by="bob", dry_run=False)
    assert (done.status, done.executor, done.detail) == ("succeeded", "fleet-hub", "drained n1")
    # ...but one action type without a handler refuses the whole request.
    with pytest.raises(ExecutionRefusedError, match="release_gpus"):
        ex.execute([rec(), rec("release_gpus", "2")], requested_by="bob", dry_run=False)
    assert db.executions() == [done]


def test_blank_requester_is_refused(db: Store) -> None:
    with pytest.raises(ExecutionRefusedError, match="requested_by"):
        Executor(db, webhook()).execute([rec()], requested_by="  ")
    assert db.executions() == []


def test_nothing_to_execute_is_nothing_logged(db: Store) -> None:
    assert Executor(db, ExecutorSettings()).execute([], requested_by="a", dry_run=False) == []
    assert db.executions() == []


# ---- webhook --------------------------------------------------------------------------


def test_webhook_posts_the_action_with_its_token_and_logs_success(db: Store) -> None:
    recorder = Recorder(body='{"ticket": "OPS-1"}')
    recorder.store = db
    ex = Executor(db, webhook(), clock=Clock(), transport=httpx.MockTransport(recorder))
    (done,) = ex.execute([rec()], requested_by="alice", dry_run=False)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == HOOK
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert body["execution_id"] == done.id
    assert body["requested_by"] == "alice"
    assert body["requested_at"] == NOW_ISO
    assert body["dry_run"] is False
    assert body["recommendation"]["id"] == "a1b2c3d4e5f60718"
    assert body["recommendation"]["action"] == {
        "type": "drain_node",
        "params": {"node": "n1", "gpu_uuids": ["GPU-1", "GPU-2"]},
    }
    assert body["recommendation"]["target"]["gpu_uuids"] == ["GPU-1", "GPU-2"]
    # Logged as running before the request went out.
    (seen,) = recorder.seen_log
    assert [(e.id, e.status, e.finished_s) for e in seen] == [(done.id, "running", None)]
    assert done.status == "succeeded"
    assert done.executor == "webhook"
    assert done.dry_run is False
    assert done.requested_s == NOW
    assert done.finished_s == NOW + 1
    assert done.detail == (
        'webhook https://hooks.example.test/gpufleet answered HTTP 200 OK: {"ticket": "OPS-1"}'
    )
    assert "s3cret" not in done.detail
    assert done.action_params == {"node": "n1", "gpu_uuids": ["GPU-1", "GPU-2"]}
    assert done.target == {
        "cluster": "c1",
        "node": "n1",
        "gpu_uuids": ["GPU-1", "GPU-2"],
        "gpus": ["n1 0", "n1 1"],
    }
    assert (done.kind, done.title, done.expected_monthly_saving_usd) == (
        "scale_down",
        "Drain n1: 2 GPUs unallocated 95% of the week",
        2880.0,
    )
    assert db.executions() == [done]


def test_webhook_without_a_token_sends_no_authorization(db: Store) -> None:
    recorder = Recorder()
    ex = Executor(db, webhook(token=None), transport=httpx.MockTransport(recorder))
    (done,) = ex.execute([rec()], requested_by="alice", dry_run=False)
    assert done.status == "succeeded"
    assert "authorization" not in recorder.requests[0].headers


def test_webhook_non_2xx_is_a_logged_failure_with_the_body(db: Store) -> None:
    recorder = Recorder(status=503, body="maintenance " + "x" * 2000)
    ex = Executor(db, webhook(), transport=httpx.MockTransport(recorder))
    done = ex.execute([rec(), rec("release_gpus", "2")], requested_by="alice", dry_run=False)
    assert len(recorder.requests) == 2  # a failure does not stop the next action
    assert [e.status for e in done] == ["failed", "failed"]
    assert done[0].detail.startswith(
        "webhook https://hooks.example.test/gpufleet answered HTTP 503 Service Unavailable: "
        "maintenance xxx"
    )
    assert done[0].detail.endswith("…")
    assert len(done[0].detail) < 700
    assert [e.status for e in db.executions()] == ["failed", "failed"]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ConnectError("connection refused"), "cannot reach webhook https://hooks"),
        (httpx.ReadTimeout("slow"), "did not answer within 5 s ([executor] timeout_s)"),
    ],
)
def test_webhook_transport_errors_are_logged_failures(
    db: Store, error: Exception, expected: str
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    (done,) = Executor(db, webhook(), transport=httpx.MockTransport(fail)).execute(
        [rec()], requested_by="alice", dry_run=False
    )
    assert done.status == "failed"
    assert expected in done.detail
    assert db.executions() == [done]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_webhook_is_a_logged_failure(db: Store) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    (done,) = Executor(db, webhook(url=url)).execute([rec()], requested_by="a", dry_run=False)
    assert done.status == "failed"
    assert done.detail.startswith(f"cannot reach webhook {url}: ConnectError")


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.got.append((self.path, dict(self.headers.items()), self.rfile.read(length)))
        reply = b"queued as job 42"
        self.send_response(202)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


def test_webhook_against_a_real_http_server(db: Store) -> None:
    got: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"got": got})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/actions"
        ex = Executor(db, webhook(token="tok-123", url=url), clock=Clock())
        (done,) = ex.execute([rec()], requested_by="carol", dry_run=False)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    ((path, headers, raw),) = got
    assert path == "/actions"
    assert headers["Authorization"] == "Bearer tok-123"
    assert headers["Content-Type"] == "application/json"
    body = json.loads(raw)
    assert body["requested_by"] == "carol"
    assert body["requested_at"] == NOW_ISO
    assert body["execution_id"] == done.id
    assert body["recommendation"]["action"]["type"] == "drain_node"
    assert body["recommendation"]["title"] == "Drain n1: 2 GPUs unallocated 95% of the week"
    assert done.status == "succeeded"
    assert done.detail == f"webhook {url} answered HTTP 202 Accepted: queued as job 42"


# ---- command --------------------------------------------------------------------------

_CHECKING_SCRIPT = """\
import json, os, sys
payload = json.load(sys.stdin)
assert os.environ["GPUFLEET_ACTION_TYPE"] == "drain_node", os.environ["GPUFLEET_ACTION_TYPE"]
assert os.environ["GPUFLEET_RECOMMENDATION_ID"] == "a1b2c3d4e5f60718"
assert os.environ["GPUFLEET_DRY_RUN"] == "0"
assert os.environ["GPUFLEET_EXECUTION_ID"] == str(payload["execution_id"])
with open(sys.argv[1], "w") as out:
    json.dump(payload, out)
print("drained", payload["recommendation"]["action"]["params"]["node"])
"""


def test_command_gets_the_json_on_stdin_and_the_env(db: Store, tmp_path: Path) -> None:
    prog = script(tmp_path, _CHECKING_SCRIPT)
    received = tmp_path / "payload.json"
    ex = Executor(db, command(sys.executable, prog, str(received)), clock=Clock())
    (done,) = ex.execute([rec()], requested_by="dave", dry_run=False)
    assert done.status == "succeeded", done.detail
    assert done.executor == "command"
    assert done.detail == "exit code 0; stdout: drained n1"
    payload = json.loads(received.read_text())
    assert payload["execution_id"] == done.id
    assert payload["requested_by"] == "dave"
    assert payload["requested_at"] == NOW_ISO
    assert payload["recommendation"]["id"] == "a1b2c3d4e5f60718"
    assert db.executions() == [done]


def test_command_non_zero_exit_keeps_code_and_output(db: Store, tmp_path: Path) -> None:
    prog = script(
        tmp_path,
        "import sys\nprint('partial work')\nsys.stderr.write('node n1 is cordoned already\\n')\n"
        "sys.exit(3)\n",
    )
    (done,) = Executor(db, command(sys.executable, prog)).execute(
        [rec()], requested_by="dave", dry_run=False
    )
    assert done.status == "failed"
    assert done.detail == ("exit code 3; stderr: node n1 is cordoned already; stdout: partial work")


def test_command_output_is_cut_to_its_tail(db: Store, tmp_path: Path) -> None:
    prog = script(tmp_path, "print('HEAD' + 'x' * 20000 + 'TAIL')\n")
    (done,) = Executor(db, command(sys.executable, prog)).execute(
        [rec()], requested_by="dave", dry_run=False
    )
    assert done.status == "succeeded"
    assert done.detail.endswith("xxxTAIL")
    assert "HEAD" not in done.detail
    assert len(done.detail) <= OUTPUT_TAIL_CHARS + 40


def test_command_that_ignores_stdin_still_runs(db: Store) -> None:
    (done,) = Executor(db, command(sys.executable, "-c", "pass")).execute(
        [rec()], requested_by="dave", dry_run=False
    )
    assert (done.status, done.detail) == ("succeeded", "exit code 0; no output")


def test_missing_program_is_a_logged_failure(db: Store, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-gpu-action")
    (done,) = Executor(db, command(missing)).execute([rec()], requested_by="e", dry_run=False)
    assert done.status == "failed"
    assert done.detail.startswith(f"program not found: {missing}")
    assert "[executor] command" in done.detail
    assert db.executions() == [done]


def test_command_past_its_timeout_is_killed_and_failed(db: Store, tmp_path: Path) -> None:
    prog = script(
        tmp_path,
        "import sys, time\nprint('starting', flush=True)\ntime.sleep(60)\n",
    )
    ex = Executor(db, command(sys.executable, prog, timeout_s=1.0))
    started = time.monotonic()
    (done,) = ex.execute([rec()], requested_by="e", dry_run=False)
    assert time.monotonic() - started < 15
    assert done.status == "failed"
    assert done.detail.startswith(
        f"timed out after 1 s ([executor] timeout_s): killed {sys.executable}"
    )
    assert "stdout: starting" in done.detail


def test_timeout_also_kills_what_the_command_started(db: Store, tmp_path: Path) -> None:
    # The grandchild holds the output pipes open: killing only the program would leave
    # the executor waiting for it.
    prog = script(
        tmp_path,
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "time.sleep(60)\n",
    )
    started = time.monotonic()
    (done,) = Executor(db, command(sys.executable, prog, timeout_s=1.0)).execute(
        [rec()], requested_by="e", dry_run=False
    )
    assert time.monotonic() - started < 5
    assert done.status == "failed"
    assert "timed out after 1 s" in done.detail


# ---- registered handlers ----------------------------------------------------------------


def test_registered_handler_wins_over_the_webhook(db: Store) -> None:
    recorder = Recorder()
    ex = Executor(db, webhook(), transport=httpx.MockTransport(recorder))
    calls: list[str] = []

    def drain(r: Recommendation) -> tuple[bool, str]:
        calls.append(r.id)
        return True, f"cordoned {r.target.node}, 0 leases left"

    ex.register("drain_node", drain, name="fleet-drain")
    assert ex.executor_for("drain_node") == "fleet-drain"
    assert ex.executor_for("release_gpus") == "webhook"
    done = ex.execute([rec(), rec("release_gpus", "2")], requested_by="f", dry_run=False)
    assert calls == ["a1b2c3d4e5f60718"]
    assert len(recorder.requests) == 1  # only release_gpus went to the webhook
    assert json.loads(recorder.requests[0].content)["recommendation"]["id"] == "2"
    assert [(e.executor, e.status) for e in done] == [
        ("fleet-drain", "succeeded"),
        ("webhook", "succeeded"),
    ]
    assert done[0].detail == "cordoned n1, 0 leases left"


def test_handler_failure_and_exception_are_logged_failures(db: Store) -> None:
    ex = Executor(db, ExecutorSettings())

    def boom(r: Recommendation) -> tuple[bool, str]:
        raise RuntimeError("hub lost its lease table")

    ex.register("drain_node", lambda r: (False, "node n1 has running jobs"), name="drain")
    ex.register("release_gpus", boom, name="reclaim")
    done = ex.execute([rec(), rec("release_gpus", "2")], requested_by="g", dry_run=False)
    assert [(e.status, e.detail) for e in done] == [
        ("failed", "node n1 has running jobs"),
        ("failed", "handler 'reclaim' raised RuntimeError: hub lost its lease table"),
    ]
    assert [e.status for e in db.executions()] == ["failed", "failed"]


@pytest.mark.parametrize("name", ["", " ", "dry-run", "webhook", "command", "none"])
def test_handler_names_that_would_confuse_the_log_are_refused(db: Store, name: str) -> None:
    with pytest.raises(ValueError, match="handler name"):
        Executor(db, ExecutorSettings()).register("drain_node", lambda r: (True, ""), name=name)


# ---- on every backend -------------------------------------------------------------------


def test_executions_are_logged_on_every_backend(store: Store) -> None:
    recorder = Recorder(status=500, body="oops")
    ex = Executor(store, webhook(), clock=Clock(), transport=httpx.MockTransport(recorder))
    planned = ex.execute([rec()], requested_by="h")
    recorder.status = 200
    ok = ex.execute([rec()], requested_by="h", dry_run=False)
    recorder.status = 500
    failed = ex.execute([rec()], requested_by="h", dry_run=False)
    log = store.executions(recommendation_id="a1b2c3d4e5f60718")
    assert log == [*failed, *ok, *planned]
    assert [e.status for e in log] == ["failed", "succeeded", "planned"]
    assert log[0].detail.endswith("answered HTTP 500 Internal Server Error: oops")
