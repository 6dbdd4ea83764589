"""``/lmcache/*`` through the real agent app, over real vLLM / LMCache exposition text served
by a local HTTP server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from tests.unit.kvcache_support import MetricsServer, StepClock, fixture, metrics_server

from gpufleet.agent.context import AgentContext
from gpufleet.agent.live import LiveState
from gpufleet.api.app import create_app
from gpufleet.kvcache.poller import KvCacheMonitor
from gpufleet.model import DiskUsage, GpuSourceStatus, Snapshot, SystemSample
from gpufleet.settings import KvCacheSettings, Settings
from gpufleet.store import open_store
from gpufleet.store.base import Store

GIB = 2**30
T0 = 1_765_000_000.0


def _system() -> SystemSample:
    return SystemSample(
        cpu_pct=5.0,
        cpu_per_core_pct=(5.0,),
        cpu_count=1,
        load_1=0.1,
        load_5=0.1,
        load_15=0.1,
        mem_total_bytes=128 * GIB,
        mem_used_bytes=64 * GIB,
        mem_available_bytes=64 * GIB,
        mem_pct=50.0,
        swap_total_bytes=0,
        swap_used_bytes=0,
        swap_pct=0.0,
        disks=(DiskUsage("/", "/dev/sda1", "ext4", 1000 * GIB, 500 * GIB, 500 * GIB, 50.0),),
    )


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    with metrics_server() as s:
        yield s


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "agent.db")
    try:
        yield s
    finally:
        s.close()


def _ctx(
    tmp_path: Path, store: Store, monitor: KvCacheMonitor | None, urls: list[str]
) -> AgentContext:
    settings = Settings(
        cluster="c1",
        node="n1",
        db=str(tmp_path / "agent.db"),
        kvcache=KvCacheSettings(vllm_urls=urls, config_path=str(tmp_path / "lmcache.yaml")),
    )
    live = LiveState(
        GpuSourceStatus(source="none", available=False, gpu_count=0, library_installed=False)
    )
    live.publish(
        Snapshot(
            ts_s=time.time(), cluster="c1", node="n1", gpus=(), system=_system(), interval_s=2.0
        ),
        0.001,
    )
    return AgentContext(settings=settings, live=live, store=store, kvcache=monitor)


@pytest.fixture
def clock() -> StepClock:
    return StepClock(T0)


@pytest.fixture
def api(
    tmp_path: Path, store: Store, server: MetricsServer, clock: StepClock
) -> Iterator[TestClient]:
    """An agent scraping one vLLM (two engines) and one LMCache MP server, scraped twice."""
    monitor = KvCacheMonitor([server.url("/vllm")], [server.url("/mp")], store=store, clock=clock)
    for suffix in ("a", "b"):
        server.set("/vllm", fixture(f"vllm_v1_two_engines_{suffix}"))
        server.set("/mp", fixture(f"lmcache_mp_{suffix}"))
        monitor.scrape_once()
        clock.advance(10)
    try:
        yield TestClient(create_app(_ctx(tmp_path, store, monitor, [server.url("/vllm")])))
    finally:
        monitor.stop()


def test_not_configured(tmp_path: Path, store: Store) -> None:
    client = TestClient(create_app(_ctx(tmp_path, store, None, [])))
    status = client.get("/lmcache/status").json()
    assert status["configured"] is False
    assert "kvcache.vllm_urls" in status["hint"]
    for method, path in (("GET", "/lmcache/metrics"), ("POST", "/lmcache/optimize")):
        response = client.request(method, path)
        assert response.status_code == 409
        assert "no vLLM or LMCache metrics URLs are configured" in response.json()["detail"]


def test_status(api: TestClient, server: MetricsServer) -> None:
    body = api.get("/lmcache/status").json()
    assert body["configured"] is True
    assert body["stored"] is True
    assert body["lmcache_detected"] is True
    assert body["config_exists"] is False
    vllm, mp = body["sources"]
    assert vllm["url"] == server.url("/vllm")
    assert vllm["reachable"] is True
    assert vllm["name_sets"] == ["vllm-v1", "vllm-kv-connector"]
    assert vllm["models"] == ["meta-llama/Llama-3.1-8B-Instruct"]
    assert vllm["engines"] == 2
    assert vllm["last_scrape"].endswith("Z")
    assert mp["kind"] == "lmcache"
    assert mp["name_sets"] == ["lmcache-mp"]
    assert body["hint"] is None


def test_metrics_window(api: TestClient) -> None:
    body = api.get("/lmcache/metrics", params={"window": "5m"}).json()
    assert body["window"] == "5m"
    assert body["basis"] == "window"
    assert body["prefix_hit_rate_pct"] == pytest.approx(37.5)
    assert body["external_hit_rate_pct"] == pytest.approx(40.0)
    assert body["lmcache_lookup_hit_rate_pct"] == pytest.approx(50.0)
    assert body["kv_usage_max_pct"] == pytest.approx(95.0)
    assert body["preemptions_per_s"] == pytest.approx(0.4)
    assert body["ttft_p50_s"] == pytest.approx(0.5 + 0.5 * 10 / 60)
    assert body["ttft_p99_s"] == pytest.approx(0.5 + 0.5 * 59 / 60)
    assert body["lmcache_evictions"] == 25.0
    assert body["lmcache_remote_usage_bytes"] is None  # not reported: null, never 0
    bad = api.get("/lmcache/metrics", params={"window": "a while"})
    assert bad.status_code == 422
    assert "use e.g. 30s, 15m, 1h or 2d" in bad.json()["detail"]


def test_optimize(api: TestClient) -> None:
    response = api.post("/lmcache/optimize", json={"window": "15m"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verdict"] == "grow_cpu_tier"
    # The MP server evicted 25 of 100 written chunks with 10 GiB in use.
    assert body["memory_saved_bytes"] == pytest.approx(10 * GIB * 100 / 75)
    assert body["memory_saved_gb"] == pytest.approx(13.33)
    # The reusable KV: 10 GiB x 100 / 75.
    assert body["settings"]["max_local_cpu_size"] == pytest.approx(13.4)
    # The sources include LMCache's MP server: its connector, unless a mode is given.
    assert body["kv_transfer_config"] == {
        "kv_connector": "LMCacheMPConnector",
        "kv_role": "kv_both",
    }
    given = api.post("/lmcache/optimize", json={"mode": "in_process"}).json()
    assert given["kv_transfer_config"]["kv_connector"] == "LMCacheConnectorV1"
    assert "--kv-transfer-config" in body["vllm_command"]
    assert body["reasoning"]
    assert api.post("/lmcache/optimize").status_code == 200  # the body is optional
    unknown = api.post("/lmcache/optimize", json={"windw": "15m"})
    assert unknown.status_code == 422


def test_configure(api: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "lmcache.yaml"
    first = api.post("/lmcache/configure", json={"settings": {"chunk_size": 256}})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["path"] == str(path)
    assert body["written"] is True
    assert body["backup_path"] is None
    assert yaml.safe_load(path.read_text()) == {"chunk_size": 256}
    assert body["env"] == {"LMCACHE_CONFIG_FILE": str(path)}
    assert "vllm serve meta-llama/Llama-3.1-8B-Instruct" in body["vllm_command"]
    applied = api.post("/lmcache/configure", json={"apply_recommendation": True}).json()
    assert applied["verdict"] == "grow_cpu_tier"
    assert applied["backup_path"] is not None
    assert Path(applied["backup_path"]).is_file()
    written = yaml.safe_load(path.read_text())
    assert written["max_local_cpu_size"] == pytest.approx(13.4)
    assert written["chunk_size"] == 256
    dry = api.post(
        "/lmcache/configure", json={"settings": {"max_local_cpu_size": 2}, "dry_run": True}
    ).json()
    assert dry["written"] is False
    assert yaml.safe_load(path.read_text())["max_local_cpu_size"] == pytest.approx(13.4)


def test_configure_errors(api: TestClient, tmp_path: Path) -> None:
    cases = [
        ({"settings": {"chunk_size": 100}}, 422, "not a multiple of vLLM's KV block size 16"),
        ({"settings": {"max_local_cpu_size": -4}}, 422, "0 or more"),
        ({"settings": {"cpu_size": 4}}, 422, "unknown LMCache setting(s) cpu_size"),
        ({}, 422, 'give "settings"'),
        ({"settings": {"chunk_size": 256}, "path": str(tmp_path)}, 400, "is a directory"),
    ]
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases.append(
        ({"settings": {"chunk_size": 256}, "path": str(blocker / "x.yaml")}, 400, "cannot write")
    )
    for body, status, detail in cases:
        response = api.post("/lmcache/configure", json=body)
        assert response.status_code == status, (body, response.text)
        assert detail in response.json()["detail"]


def test_sources_that_never_answer(
    tmp_path: Path, store: Store, server: MetricsServer, clock: StepClock
) -> None:
    server.set("/vllm", "down\n", status=503)
    monitor = KvCacheMonitor([server.url("/vllm")], store=store, clock=clock)
    try:
        client = TestClient(create_app(_ctx(tmp_path, store, monitor, [server.url("/vllm")])))
        # No scrape yet: the request scrapes once itself.
        metrics = client.get("/lmcache/metrics").json()
        assert metrics["basis"] == "none"
        assert metrics["sources"][0]["error"] == f"HTTP 503 from {server.url('/vllm')}"
        status = client.get("/lmcache/status").json()
        assert "not answering" in status["hint"]
        response = client.post("/lmcache/optimize")
        assert response.status_code == 409
        assert "no vLLM or LMCache source answered" in response.json()["detail"]
    finally:
        monitor.stop()
