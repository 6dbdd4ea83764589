"""``gpufleet kvcache`` through Typer's CliRunner, live against a local server and over an
agent's stored scrapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.unit.kvcache_support import MetricsServer, fixture, metrics_server
from typer.testing import CliRunner

from gpufleet.cli.main import app
from gpufleet.kvcache.poller import KvCacheMonitor
from gpufleet.store import open_store

runner = CliRunner()


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    with metrics_server() as s:
        s.set_sequence(
            "/metrics", [fixture("vllm_v1_two_engines_a"), fixture("vllm_v1_two_engines_b")]
        )
        s.set_sequence("/mp", [fixture("lmcache_mp_a"), fixture("lmcache_mp_b")])
        yield s


@pytest.fixture(autouse=True)
def _no_env_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "GPUFLEET_CONFIG",
        "GPUFLEET_KVCACHE__VLLM_URLS",
        "GPUFLEET_KVCACHE__LMCACHE_URLS",
    ):
        monkeypatch.delenv(name, raising=False)


def test_metrics_live_two_scrapes(server: MetricsServer) -> None:
    result = runner.invoke(
        app, ["kvcache", "metrics", "--vllm-url", server.base, "--over", "0.2s", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["basis"] == "window"
    assert body["prefix_hit_rate_pct"] == pytest.approx(37.5)
    assert body["ttft_requests"] == 100.0
    assert body["sources"][0]["url"] == server.url("/metrics")


def test_metrics_table_and_one_scrape(server: MetricsServer) -> None:
    result = runner.invoke(app, ["kvcache", "metrics", "--vllm-url", server.base, "--over", "0"])
    assert result.exit_code == 0, result.output
    assert "since_start" in result.stdout
    assert "vLLM prefix-cache hit rate" in result.stdout
    # One scrape (of body a): counters since the server started, 1000 of 3000 tokens hit.
    assert "33.3 %" in result.stdout
    assert "1,000 of 3,000 tokens" in result.stdout


def test_status_live(server: MetricsServer) -> None:
    result = runner.invoke(
        app, ["kvcache", "status", "--vllm-url", server.base, "--lmcache-url", server.url("/mp")]
    )
    assert result.exit_code == 0, result.output
    assert "vllm-v1" in result.stdout
    assert "lmcache-mp" in result.stdout
    assert "yes" in result.stdout


def test_optimize_live_json(server: MetricsServer, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "kvcache",
            "optimize",
            "--vllm-url",
            server.base,
            "--lmcache-url",
            server.url("/mp"),
            "--over",
            "0.2s",
            "--config-path",
            str(tmp_path / "none.yaml"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    # The verdict depends on this machine's free memory and disk; the tier is full either way.
    assert body["verdict"] in {
        "grow_cpu_tier",
        "add_disk_tier",
        "grow_cpu_and_add_disk_tier",
        "tier_full_no_room",
    }
    assert body["memory_saved_gb"] >= 10.0
    assert body["memory_saved_bytes"] == pytest.approx(body["memory_saved_gb"] * 2**30, rel=1e-3)


def test_metrics_from_the_store(server: MetricsServer, tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    with open_store(db) as store:
        monitor = KvCacheMonitor([server.base], store=store)
        try:
            monitor.scrape_once()
            monitor.scrape_once()
        finally:
            monitor.stop()
    result = runner.invoke(app, ["kvcache", "metrics", "--db", str(db), "--window", "1h", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["basis"] == "window"
    assert body["prefix_hit_rate_pct"] == pytest.approx(37.5)
    empty = tmp_path / "empty.db"
    open_store(empty).close()
    none = runner.invoke(app, ["kvcache", "metrics", "--db", str(empty)])
    assert none.exit_code == 2
    assert "no KV-cache scrapes in" in none.stderr


def test_configure_writes_yaml(tmp_path: Path) -> None:
    path = tmp_path / "lmcache.yaml"
    args = ["kvcache", "configure", "--path", str(path), "--set", "chunk_size=256"]
    result = runner.invoke(
        app, [*args, "--set", "local_cpu=true", "--set", "max_local_cpu_size=20"]
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(path.read_text()) == {
        "chunk_size": 256,
        "local_cpu": True,
        "max_local_cpu_size": 20,
    }
    assert "vllm serve" in result.stdout
    same = runner.invoke(app, [*args, "--json"])
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["backup_path"] is None  # nothing changed: no rewrite
    again = runner.invoke(app, [*args, "--set", "max_local_cpu_size=30", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["backup_path"].endswith(".bak")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["kvcache", "configure", "--path", "/tmp/x.yaml", "--set", "chunk_size=250"],
            "not a multiple of vLLM's KV block size 16",
        ),
        (
            ["kvcache", "configure", "--path", "/tmp/x.yaml", "--set", "oops"],
            "--set must be key=value",
        ),
        (["kvcache", "configure", "--path", "/tmp/x.yaml"], "give --set key=value"),
        (["kvcache", "metrics"], "give --vllm-url / --lmcache-url, --db or --url"),
        (["kvcache", "metrics", "--vllm-url", "host:8000"], "not an http:// or https:// URL"),
        (
            ["kvcache", "metrics", "--vllm-url", "http://h", "--over", "soon"],
            "cannot read duration",
        ),
        (
            ["kvcache", "metrics", "--vllm-url", "http://h", "--db", "x.db"],
            "give one of --url, --db or --vllm-url/--lmcache-url",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def agent_url(server: MetricsServer, tmp_path: Path) -> Iterator[str]:
    """A real agent API (uvicorn) whose monitor has scraped the server twice."""
    import socket
    import threading
    import time

    import uvicorn

    from gpufleet.agent.context import AgentContext
    from gpufleet.agent.live import LiveState
    from gpufleet.api.app import create_app
    from gpufleet.model import GpuSourceStatus
    from gpufleet.settings import KvCacheSettings, Settings

    store = open_store(tmp_path / "agent.db")
    monitor = KvCacheMonitor([server.base], store=store)
    monitor.scrape_once()
    monitor.scrape_once()
    settings = Settings(
        cluster="c1",
        node="n1",
        db=str(tmp_path / "agent.db"),
        kvcache=KvCacheSettings(vllm_urls=[server.base], config_path=str(tmp_path / "lm.yaml")),
    )
    live = LiveState(GpuSourceStatus("none", False, 0, False))
    ctx = AgentContext(settings=settings, live=live, store=store, kvcache=monitor)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    uv = uvicorn.Server(uvicorn.Config(create_app(ctx), port=port, log_level="error"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "the agent did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(10)
        monitor.stop()
        store.close()


def test_reading_a_running_agent(agent_url: str, tmp_path: Path) -> None:
    status = runner.invoke(app, ["kvcache", "status", "--url", agent_url])
    assert status.exit_code == 0, status.output
    assert "vllm-v1" in status.stdout
    metrics = runner.invoke(app, ["kvcache", "metrics", "--url", agent_url, "--json"])
    assert metrics.exit_code == 0, metrics.output
    assert json.loads(metrics.stdout)["prefix_hit_rate_pct"] == pytest.approx(37.5)
    optimize = runner.invoke(app, ["kvcache", "optimize", "--url", agent_url])
    assert optimize.exit_code == 0, optimize.output
    assert "memory saved:" in optimize.stdout
    configure = runner.invoke(
        app, ["kvcache", "configure", "--url", agent_url, "--set", "chunk_size=512", "--json"]
    )
    assert configure.exit_code == 0, configure.output
    assert yaml.safe_load((tmp_path / "lm.yaml").read_text()) == {"chunk_size": 512}
    bad = runner.invoke(
        app, ["kvcache", "configure", "--url", agent_url, "--set", "chunk_size=500"]
    )
    assert bad.exit_code == 2
    assert "answered 422" in bad.stderr


def test_agent_refuses_a_bad_kvcache_url() -> None:
    result = runner.invoke(app, ["agent", "--source", "sim", "--no-store", "--vllm-url", "bad"])
    assert result.exit_code == 2, result.output
    assert "invalid kvcache setting" in result.stderr
    assert "must be an http:// or https:// URL" in result.stderr


def test_metrics_with_no_source_answering_fails_with_the_reason() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nobody listens there
    result = runner.invoke(
        app, ["kvcache", "metrics", "--vllm-url", f"http://127.0.0.1:{port}", "--over", "0"]
    )
    assert result.exit_code == 2
    assert "no vLLM or LMCache source answered" in result.output
    assert "unreachable" in result.output
