"""``gpufleet.Client`` against the real agent app served by uvicorn on 127.0.0.1: every
endpoint group with values checked against what the fixture wrote, the errors a caller
handles (with the server's detail), and the public API locked."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.client_support import (
    HAND_WINDOW,
    LIVE_GPUS,
    Agent,
    build_agent,
    free_port,
    serve,
)
from tests.unit.store_samples import T0

import gpufleet
import gpufleet.client
from gpufleet.agent.context import AgentContext
from gpufleet.agent.live import LiveState
from gpufleet.api.app import create_app
from gpufleet.client import (
    ApiError,
    AuthError,
    ChatEvent,
    Client,
    ConflictError,
    ConnectionFailed,
    GpufleetError,
    InvalidArgument,
    NotFoundError,
    RequestRejected,
    RequestTimedOut,
    Scope,
    Unavailable,
    UnexpectedResponse,
)
from gpufleet.client._core import events_of
from gpufleet.collectors.sim import SimGpuSource
from gpufleet.settings import Settings

MIB = 1024 * 1024
PUBLIC_API = [
    "AgentInfo",
    "Alert",
    "AlertList",
    "ApiError",
    "AsyncClient",
    "AuthError",
    "ChatEvent",
    "ChatReply",
    "ChatSession",
    "ChatSessions",
    "ChatTranscript",
    "ChatTurn",
    "Client",
    "ConflictError",
    "ConnectionFailed",
    "Cpu",
    "Disk",
    "DrillNode",
    "Drilldown",
    "Execution",
    "ExecutionResult",
    "FleetGpus",
    "FleetNode",
    "FleetNodeGpus",
    "FleetNodeHost",
    "Gpu",
    "GpuInfo",
    "GpuMemory",
    "GpuMemoryRow",
    "GpuPower",
    "GpuPowerRow",
    "GpuProcess",
    "GpuRow",
    "GpuTemperatureRow",
    "GpuTemperatures",
    "GpuUtilization",
    "GpuUtilizationRow",
    "GpufleetError",
    "Group",
    "Health",
    "History",
    "HistoryPoint",
    "HistorySeries",
    "Host",
    "HostMemory",
    "IngestResult",
    "Interface",
    "InvalidArgument",
    "KvCacheConfigured",
    "KvCacheMetrics",
    "KvCacheRecommendation",
    "KvCacheSettingChange",
    "KvCacheSource",
    "KvCacheStatus",
    "Lease",
    "Model",
    "Network",
    "NodeGpus",
    "NotFoundError",
    "Opportunities",
    "Partition",
    "Pool",
    "RecentStats",
    "Recommendation",
    "Recommendations",
    "Report",
    "RequestRejected",
    "RequestTimedOut",
    "Scope",
    "Task",
    "TaskPart",
    "Token",
    "TrendPoint",
    "Trends",
    "Unavailable",
    "UnexpectedResponse",
    "UsageGroup",
    "Utilization",
    "Waste",
    "WasteGroup",
    "Window",
]
"""What ``gpufleet.client`` exports: a change here is a change of the public API."""
DEMO_IDLE_HOLDERS = {
    ("cv-team", "user_d", "jupyter-user-d"),
    ("nlp-team", "user_g", "jupyter-nlp-eda"),
    ("data-processing", "user_k", "notebook-feature-debug"),
}
"""The idle notebooks the demo cluster plants (its ``GroundTruth.idle_holders``)."""


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    built = build_agent(tmp_path_factory.mktemp("client"))
    try:
        yield built
    finally:
        assert built.ctx.store is not None
        built.ctx.store.close()


@pytest.fixture(scope="module")
def url(agent: Agent) -> Iterator[str]:
    with serve(agent.app) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with Client(url) as c:
        yield c


# ---- the public API --------------------------------------------------------------------------


def test_public_api_is_locked() -> None:
    assert gpufleet.Client is Client
    assert gpufleet.AsyncClient is gpufleet.client.AsyncClient
    assert gpufleet.GpufleetError is GpufleetError
    assert gpufleet.ApiError is ApiError
    exported = set(gpufleet.client.__all__)
    assert sorted(exported) == PUBLIC_API
    for name in exported:
        assert getattr(gpufleet.client, name).__module__.startswith("gpufleet.client")
    for cls in (AuthError, NotFoundError, ConflictError, RequestRejected, Unavailable):
        assert issubclass(cls, ApiError)
    assert issubclass(ConnectionFailed, GpufleetError)
    assert issubclass(InvalidArgument, ValueError)


def test_the_client_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, gpufleet.client; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'pydantic') "
        "or m.startswith(('gpufleet.api', 'gpufleet.cli.', 'gpufleet.analysis')) "
        "or m == 'gpufleet.cli'); print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="src"
    )
    assert out.stdout.strip() == ""


def test_sync_and_async_groups_have_the_same_methods() -> None:
    from gpufleet.client import async_, sync

    pairs = [
        (sync.Client, async_.AsyncClient),
        (sync.GpuApi, async_.AsyncGpuApi),
        (sync.SystemApi, async_.AsyncSystemApi),
        (sync.AnalysisApi, async_.AsyncAnalysisApi),
        (sync.OptimizeApi, async_.AsyncOptimizeApi),
        (sync.ChatApi, async_.AsyncChatApi),
        (sync.FleetApi, async_.AsyncFleetApi),
        (sync.KvCacheApi, async_.AsyncKvCacheApi),
    ]
    for s, a in pairs:
        names = {n for n in vars(s) if not n.startswith("_")}
        assert names == {n for n in vars(a) if not n.startswith("_")} - {"aclose"} | (
            {"close"} if s is sync.Client else set()
        ), s


def test_local_checks_use_the_servers_vocabulary() -> None:
    """The client refuses unknown names without importing the server; these lists must be
    the server's."""
    from typing import get_args

    from gpufleet.analysis.drilldown import DrillMetric
    from gpufleet.analysis.recommend_types import KINDS
    from gpufleet.analysis.scope import GROUP_KEYS, WORKLOAD_KEYS
    from gpufleet.analysis.trends import GRANULARITIES, METRICS
    from gpufleet.api.routes.fleet_tasks import TASK_STATES
    from gpufleet.client import _ep_analysis, _ep_fleet, _ep_live, scope
    from gpufleet.fleet.health import STATUSES
    from gpufleet.fleet.tokens import SCOPES
    from gpufleet.store.base import GPU_METRICS, SYSTEM_METRICS
    from gpufleet.store.lease_records import LEASE_STATES

    assert _ep_live.GPU_METRICS == GPU_METRICS
    assert _ep_live.SYSTEM_METRICS == SYSTEM_METRICS
    assert scope.LEVELS == GROUP_KEYS
    assert _ep_analysis.DRILL_LEVELS == WORKLOAD_KEYS
    assert get_args(DrillMetric) == _ep_analysis.DRILL_METRICS
    assert _ep_analysis.GRANULARITIES == GRANULARITIES
    assert _ep_analysis.TREND_METRICS == METRICS
    assert _ep_analysis.RECOMMENDATION_KINDS == KINDS
    assert _ep_fleet.NODE_STATUSES == STATUSES
    assert _ep_fleet.LEASE_STATES == LEASE_STATES
    assert _ep_fleet.TASK_STATES == TASK_STATES
    assert _ep_fleet.TOKEN_SCOPES == SCOPES


# ---- service, GPU and host -------------------------------------------------------------------


def test_info_health_ready_alerts_and_metrics(client: Client, agent: Agent) -> None:
    info = client.info()
    assert (info.service, info.instance_id, info.gpu_source) == (
        "gpufleet-agent",
        "c1/node-a",
        "sim",
    )
    assert {"/gpu/metrics", "/analysis/utilization", "/optimize/execute"} <= set(info.endpoints)
    health = client.health()
    assert health.healthy
    assert health.problems == ()
    detailed = client.health(detailed=True)
    assert detailed.components["gpu_source"]["gpu_count"] == LIVE_GPUS
    assert detailed.components["store"]["backend"] == "sqlite"
    assert client.ready() is True
    assert client.alive() is True
    alerts = client.alerts()
    assert (alerts.source, alerts.count, alerts.alerts) == ("store", 0, ())
    assert client.alerts(active=True).source == "memory"
    text = client.metrics_text()
    assert "DCGM_FI_DEV_GPU_UTIL" in text
    assert text.count("DCGM_FI_DEV_GPU_UTIL{") == LIVE_GPUS


def test_gpu_list_and_get_match_the_simulated_source(client: Client, agent: Agent) -> None:
    gpus = client.gpu.list()
    assert gpus.gpu_count == LIVE_GPUS == len(gpus.gpus)
    assert (gpus.cluster, gpus.node, gpus.instance_id) == ("c1", "node-a", "c1/node-a")
    assert gpus.ts_s == pytest.approx(agent.latest.ts_s, abs=1e-3)
    for got, want in zip(gpus.gpus, agent.latest.gpus, strict=True):
        assert (got.index, got.uuid, got.name) == (want.index, want.uuid, want.name)
        assert got.util_gpu_pct == want.util_gpu_pct
        assert got.temp_c == want.temp_c
        assert want.mem_total_bytes is not None
        assert got.mem_total_mib == pytest.approx(want.mem_total_bytes / MIB, abs=0.05)
        assert got.allocated == want.allocated
        assert [p.pid for p in got.processes] == [p.pid for p in want.processes]
    live = [g.util_gpu_pct for g in agent.latest.gpus if g.util_gpu_pct is not None]
    assert gpus.avg_gpu_util_pct == pytest.approx(sum(live) / len(live), abs=0.01)
    first = agent.latest.gpus[1]
    assert client.gpu.get(1).uuid == first.uuid
    assert client.gpu.get(first.uuid).index == 1
    assert gpus.gpu(first.uuid) == gpus.gpus[1]
    assert client.get_gpu_metrics().gpus == gpus.gpus  # seed 000's name
    info = client.gpu.info()
    assert (info.available, info.gpu_count, info.source) == (True, LIVE_GPUS, "sim")


def test_gpu_summaries(client: Client, agent: Agent) -> None:
    latest = agent.latest.gpus
    util = client.gpu.utilization()
    assert util.allocated_gpus == sum(1 for g in latest if g.allocated)
    assert [r.gpu.uuid for r in util.gpus] == [g.uuid for g in latest]
    assert [r.util_gpu_pct for r in util.gpus] == [g.util_gpu_pct for g in latest]
    assert util.idle_threshold_pct == 5.0
    temps = client.gpu.temperature()
    assert temps.max_temp_c == max(g.temp_c for g in latest if g.temp_c is not None)
    mem = client.gpu.memory()
    used = sum(g.mem_used_bytes or 0 for g in latest)
    assert mem.total_used_mib == pytest.approx(used / MIB, abs=0.5)
    power = client.gpu.power()
    assert power.total_power_w == pytest.approx(sum(g.power_w or 0 for g in latest), abs=0.01)
    assert all(r.power_limit_w is not None for r in power.gpus)


def test_gpu_history_of_the_hand_window(client: Client) -> None:
    hist = client.gpu.history(*HAND_WINDOW, node="n1", cluster="c1", resolution="raw")
    assert hist.metric == "util_gpu_pct"
    assert hist.start_s == T0
    by_gpu = {s.subject: s for s in hist.series}
    assert set(by_gpu) == {"GPU-a", "GPU-b"}
    assert len(by_gpu["GPU-a"].points) == 240
    assert {p.mean for p in by_gpu["GPU-a"].points} == {60.0}
    assert {p.mean for p in by_gpu["GPU-b"].points} == {0.0}
    one = client.gpu.history(
        *HAND_WINDOW, gpu="GPU-a", node="n1", cluster="c1", metric="mem_used_bytes"
    )
    assert [s.subject for s in one.series] == ["GPU-a"]
    assert one.series[0].points[0].mean == 8 * 1024**3


def test_system_endpoints(client: Client) -> None:
    cpu = client.system.cpu()
    assert (cpu.cpu_pct, cpu.cpu_count, cpu.load_1) == (12.5, 8, 1.0)
    disk = client.system.disk()
    assert [(p.mount, p.used_pct) for p in disk.partitions] == [("/d0", 40.0)]
    net = client.system.network()
    assert [(i.name, i.rx_bytes_per_s) for i in net.interfaces] == [("eth0", 100.0)]
    assert net.rx_bytes_per_s == 100.0
    host = client.system.all()
    assert (host.cluster, host.node, host.cpu.cpu_pct) == ("c1", "node-a", 12.5)
    assert host.memory.total_bytes == 64 * 1024**3
    assert host.memory.used_pct == 25.0
    hist = client.system.history("-1d", resolution="raw")
    assert [s.subject for s in hist.series] == ["host"]
    assert len(hist.series[0].points) > 100  # a demo sample every 10 minutes


def test_system_memory_after_gpu_memory(tmp_path: Path) -> None:
    # Both routes once cached their body under the key "memory": the second got the first's.
    agent = build_agent(tmp_path)
    try:
        with serve(agent.app) as base, Client(base) as c:
            c.gpu.memory()
            assert c.system.memory().total_bytes == 64 * 1024**3
    finally:
        assert agent.ctx.store is not None
        agent.ctx.store.close()


def test_system_memory(tmp_path: Path) -> None:
    agent = build_agent(tmp_path)
    try:
        with serve(agent.app) as base, Client(base) as c:
            mem = c.system.memory()
            assert (mem.total_bytes, mem.used_bytes, mem.used_pct) == (
                64 * 1024**3,
                16 * 1024**3,
                25.0,
            )
            assert mem.swap_total_bytes == 0
    finally:
        assert agent.ctx.store is not None
        agent.ctx.store.close()


# ---- analysis --------------------------------------------------------------------------------


def test_utilization_matches_the_hand_computed_values(client: Client) -> None:
    out = client.analysis.utilization(*HAND_WINDOW, by="workload")
    assert out.gpu_hours == pytest.approx(8.0)
    assert out.mean_gpu_util_pct == pytest.approx(30.0)
    assert out.idle_gpu_hours == pytest.approx(4.0)
    assert out.allocated_gpu_hours == pytest.approx(6.0)
    assert out.idle_allocated_gpu_hours == pytest.approx(2.0)
    assert out.allocation_rate == pytest.approx(0.75)
    assert out.window.start_s == T0
    assert out.window.hours == 4.0
    assert out.group_key == "workload"
    by = {g.key: g for g in out.groups}
    assert set(by) == {"team/alice/train", "team/bob/nb"}
    assert by["team/alice/train"].mean_gpu_util_pct == pytest.approx(60.0)
    assert by["team/bob/nb"].idle_fraction == pytest.approx(1.0)
    assert out.raw["samples"] == 480
    bob = client.analysis.utilization(*HAND_WINDOW, scope=Scope(user="bob"))
    assert bob.gpu_hours == pytest.approx(2.0)
    assert bob.mean_gpu_util_pct == pytest.approx(0.0)
    same = client.analysis.utilization(*HAND_WINDOW, scope={"namespace": "team", "user": "bob"})
    assert same.gpu_hours == bob.gpu_hours
    alias = client.analyze_utilization(*HAND_WINDOW)  # seed 000's name
    assert alias.gpu_hours == out.gpu_hours


def test_trends_drilldown_waste_and_report_of_the_hand_window(client: Client) -> None:
    trends = client.analysis.trends(*HAND_WINDOW, granularity="hour")
    assert [p.value for p in trends.points] == [30.0, 30.0, 30.0, 30.0]
    assert (trends.granularity, trends.metric, trends.direction) == ("hour", "utilization", "flat")
    drill = client.analysis.drilldown(T0 + 7200, HAND_WINDOW[1])
    assert drill.before.start_s == T0  # the window before, by default
    assert drill.root.before == pytest.approx(4.0)
    assert drill.root.after == pytest.approx(2.0)
    assert [(n.level, n.name) for n in drill.path] == [
        ("cluster", "c1"),
        ("namespace", "team"),
        ("user", "bob"),
        ("workload", "nb"),
    ]
    assert drill.path[-1].change == pytest.approx(-2.0)
    waste = client.analysis.waste(*HAND_WINDOW)
    assert waste.gpu_hours == pytest.approx(8.0)
    assert waste.allocated_gpu_hours == pytest.approx(6.0)
    assert waste.idle_allocated_gpu_hours == pytest.approx(2.0)
    assert waste.unallocated_gpu_hours == pytest.approx(2.0)
    assert [(g.key, g.idle_allocated_gpu_hours) for g in waste.groups] == [("team", 2.0)]
    report = client.analysis.report(*HAND_WINDOW)
    assert report.mean_gpu_util_pct == pytest.approx(30.0)
    assert report.target_util_pct == 80.0
    assert report.sentences[0] == "GPU utilization: 30.0 % (target 80 %)"
    md = client.analysis.report_text(*HAND_WINDOW)
    assert md.startswith("# GPU fleet report")
    html = client.analysis.report_text(*HAND_WINDOW, format="html")
    assert html.lstrip().lower().startswith("<!doctype html")


def test_opportunities_find_the_demo_idle_notebooks(client: Client) -> None:
    found = client.analysis.opportunities("-2d")
    keys = {tuple(w.key.split("/")) for w in found.under_utilized_workloads}
    assert keys == DEMO_IDLE_HOLDERS
    assert found.potential_monthly_saving_usd is not None
    assert found.potential_monthly_saving_usd > 0


def test_analysis_errors_carry_the_servers_detail(client: Client) -> None:
    with pytest.raises(RequestRejected) as info:
        client.analysis.utilization(*HAND_WINDOW, scope={"namespace": "nope"})
    assert info.value.status_code == 422
    assert "team" in info.value.detail  # the server lists the namespaces that exist
    with pytest.raises(RequestRejected, match="cannot read time 'soon'"):
        client.analysis.waste("soon")
    # Checked here, before anything is sent:
    with pytest.raises(InvalidArgument, match="unknown group-by key 'team'"):
        client.analysis.utilization(by="team")
    with pytest.raises(InvalidArgument, match="unknown scope level"):
        client.analysis.waste(scope={"teem": "x"})
    with pytest.raises(InvalidArgument, match="granularity"):
        client.analysis.trends(granularity="year")
    with pytest.raises(InvalidArgument, match="compare_from and compare_to"):
        client.analysis.trends(compare_from="-14d")


# ---- optimize --------------------------------------------------------------------------------


def test_recommendations_and_dry_run_execution(client: Client) -> None:
    recs = client.optimize.recommendations("-2d")
    assert {r.kind for r in recs.recommendations} == {"reclaim_idle"}
    targets = {
        (r.target["namespace"], r.target["user"], r.target["workload"])
        for r in recs.recommendations
    }
    assert targets == DEMO_IDLE_HOLDERS
    assert recs.total_monthly_saving_usd == pytest.approx(
        sum(r.expected_monthly_saving_usd or 0 for r in recs.recommendations)
    )
    assert client.get_scaling_recommendations("-2d").ids == recs.ids  # seed 000's name
    only_up = client.optimize.recommendations("-2d", kinds="scale_up")
    assert (only_up.kinds, only_up.recommendations) == (("scale_up",), ())
    assert client.optimize.scale_up("-2d").kinds == ("scale_up",)
    assert client.optimize.scale_down("-2d").kinds == ("scale_down",)
    assert client.optimize.consolidate("-2d").kinds == ("consolidate", "mig_or_share")

    done = client.execute_optimization(recs, requested_by="client-test")  # seed 000's name
    assert done.dry_run is True
    assert [e.recommendation_id for e in done.executions] == list(recs.ids)
    assert {e.status for e in done.executions} == {"planned"}
    log = client.optimize.executions(recommendation_id=recs.ids[0])
    assert log[0].recommendation_id == recs.ids[0]
    assert log[0].requested_by == "client-test"
    one = client.optimize.execute([recs.recommendations[1]], "-2d")
    assert [e.recommendation_id for e in one.executions] == [recs.ids[1]]


def test_execution_errors(client: Client) -> None:
    recs = client.optimize.recommendations("-2d")
    with pytest.raises(RequestRejected) as info:
        client.optimize.execute(["nope"], "-2d")
    assert "recommendation(s) nope not found" in info.value.detail
    for rid in recs.ids:
        assert rid in info.value.detail  # it lists the current ones
    with pytest.raises(RequestRejected, match="no executor is configured"):
        client.optimize.execute(recs, dry_run=False)
    with pytest.raises(InvalidArgument, match="nothing to execute"):
        client.optimize.execute([])
    with pytest.raises(InvalidArgument, match="recommendation kind"):
        client.optimize.recommendations(kinds=["scale_sideways"])


# ---- chat ------------------------------------------------------------------------------------


def test_chat_ask_follow_up_sessions_and_delete(client: Client) -> None:
    q = "what is the GPU utilization in the past 2 days?"
    reply = client.chat.ask(q)
    assert reply.intent == "trend"
    assert reply.language == "en"
    assert "past 2 days" in reply.answer
    assert reply.data
    assert reply.data[0]["api"]["path"] == "/analysis/trends"
    follow = client.chat.ask("and for cv-team?", session_id=reply.session_id)
    assert follow.session_id == reply.session_id
    assert (reply.follow_up, follow.follow_up) == (False, True)
    assert reply.source == "offline"
    assert "cv-team" in follow.answer
    listed = {s.session_id: s for s in client.chat.sessions(limit=1000).sessions}
    assert listed[reply.session_id].turns == 2
    transcript = client.chat.session(reply.session_id)
    assert [t.query for t in transcript.turns] == [q, "and for cv-team?"]
    assert client.chat.delete_session(reply.session_id) == 2
    with pytest.raises(NotFoundError, match=f"no session '{reply.session_id}'"):
        client.chat.session(reply.session_id)


def test_chat_stream_yields_the_reply_as_events(client: Client) -> None:
    q = "which namespace wastes the most?"
    events = list(client.chat.stream(q))
    kinds = [e.event for e in events]
    assert kinds[0] == "meta"
    assert kinds[-2:] == ["data", "done"]
    assert "answer" in kinds
    assert "insight" in kinds
    meta = events[0].data
    assert meta["intent"] == "waste"
    streamed = "".join(e.text or "" for e in events if e.event == "answer")
    plain = client.chat.ask(q)
    assert streamed == plain.answer
    assert [e.text for e in events if e.event == "insight"] == list(plain.insights)
    assert meta["session_id"] in {s.session_id for s in client.chat.sessions(limit=1000).sessions}


def test_chat_errors(client: Client) -> None:
    with pytest.raises(InvalidArgument):
        client.chat.ask("  ")
    with pytest.raises(RequestRejected, match="session_id"):
        client.chat.ask("utilization?", session_id="not a valid id!")
    stream = client.chat.stream("utilization?", session_id="nosuchsession")
    with pytest.raises(NotFoundError, match="nosuchsession"):
        next(iter(stream))


def test_sse_parser_reads_the_spec() -> None:
    lines = [
        ": a comment",
        "event: answer",
        'data: {"text":',
        'data: "two lines"}',
        "",
        "data: plain",
        "",
        "event: done",
        "data: {}",
    ]
    assert list(events_of(lines)) == [
        ChatEvent("answer", {"text": "two lines"}),
        ChatEvent("message", "plain"),
        ChatEvent("done", {}),
    ]


# ---- errors of every kind --------------------------------------------------------------------


def test_unknown_gpu_is_not_found_with_the_servers_detail(client: Client, url: str) -> None:
    with pytest.raises(NotFoundError) as info:
        client.gpu.get(9)
    err = info.value
    assert err.status_code == 404
    assert err.detail.startswith("GPU '9' not found on node-a; GPUs: 0 (")
    assert err.detail_raw == err.detail
    assert (err.method, err.url) == ("GET", f"{url}/gpu/metrics/9")
    assert err.detail in str(err)


def test_bad_parameter_is_rejected_with_the_servers_detail(client: Client) -> None:
    with pytest.raises(RequestRejected) as info:
        client.alerts(limit=0)
    assert info.value.detail == "limit: Input should be greater than or equal to 1"


def test_a_closed_port_is_connection_failed() -> None:
    port = free_port()
    with (
        Client(f"http://127.0.0.1:{port}", timeout_s=5) as c,
        pytest.raises(ConnectionFailed) as info,
    ):
        c.health()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert info.value.url == f"http://127.0.0.1:{port}/health"


def test_an_agent_without_samples_or_history_is_unavailable(tmp_path: Path) -> None:
    ctx = AgentContext(
        settings=Settings(cluster="c1", node="bare", db=str(tmp_path / "x.db"), interval_s=60),
        live=LiveState(SimGpuSource(gpus=1).status()),
        store=None,
    )
    with serve(create_app(ctx)) as base, Client(base) as c:
        with pytest.raises(Unavailable, match="no sample yet"):
            c.gpu.list()
        with pytest.raises(Unavailable, match="not ready"):
            c.ready()
        with pytest.raises(Unavailable, match="history is off"):
            c.analysis.utilization()
        assert c.health().status == "degraded"


class _Handler(http.server.BaseHTTPRequestHandler):
    """A server that is not gpufleet: HTML for ``/``, a slow answer for ``/slow``."""

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        body = b"<html>not gpufleet</html>"
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (the timeout test)

    def log_message(self, format: str, *args: object) -> None:  # quiet in test output
        return


@pytest.fixture
def other_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_server_that_is_not_gpufleet(other_server: str) -> None:
    with Client(other_server) as c, pytest.raises(UnexpectedResponse, match="not JSON"):
        c.health()
    with Client(other_server + "/slow", timeout_s=0.2) as c, pytest.raises(RequestTimedOut):
        c.health()


def test_arguments_refused_before_sending() -> None:
    with pytest.raises(InvalidArgument, match="base_url"):
        Client("localhost:8003")
    with pytest.raises(InvalidArgument, match="timeout_s"):
        Client("http://localhost:8003", timeout_s=0)
    with pytest.raises(InvalidArgument, match="token"):
        Client("http://localhost:8003", token=" ")
    with Client("http://127.0.0.1:9") as c:  # nothing is sent for any of these
        with pytest.raises(InvalidArgument, match="metric"):
            c.gpu.history(metric="util")
        with pytest.raises(InvalidArgument, match="label"):
            c.fleet.nodes(label="rack")
        with pytest.raises(InvalidArgument, match="token scope"):
            c.fleet.create_token("x", ["root"])
        with pytest.raises(InvalidArgument, match="argv"):
            c.fleet.submit("python train.py")
        with pytest.raises(InvalidArgument, match="empty"):
            c.chat.session("")
    assert repr(Client("http://h:1/", token="gf_secret")) == "Client('http://h:1')"


def test_the_token_is_sent_as_a_bearer_header(agent: Agent, url: str) -> None:
    # An agent ignores tokens; what matters is the header the hub reads (see the hub tests).
    with Client(url, token="gf_abc_def", headers={"X-Trace": "1"}) as c:
        request = c._http.build_request("GET", "/")
        assert request.headers["Authorization"] == "Bearer gf_abc_def"
        assert request.headers["X-Trace"] == "1"
        assert request.headers["User-Agent"].startswith("gpufleet-client/")
        assert c.health().healthy


def test_conflict_error_is_an_api_error() -> None:
    err = ConflictError(409, "no GPU free", "POST", "http://h/fleet/v1/leases")
    assert isinstance(err, ApiError)
    assert str(err) == "POST http://h/fleet/v1/leases -> 409: no GPU free"
    assert AuthError(401, "x", "GET", "u").status_code == 401
