"""``client.kvcache`` (and seed 000's ``optimize_lmcache()``) against the real agent app
with KV-cache sources configured: a local HTTP server serves vLLM (two engines) and LMCache
MP exposition text from ``tests/fixtures/kvcache/``, scraped twice ten seconds apart. The
blocking client goes through uvicorn on 127.0.0.1, the async one through
``httpx.ASGITransport``. Expected numbers are computed here from the fixture files."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import httpx
import pytest
import yaml
from fastapi import FastAPI
from pydantic import BaseModel
from tests.unit.client_support import serve
from tests.unit.kvcache_support import MetricsServer, StepClock, fixture

from gpufleet import AsyncClient
from gpufleet.agent.context import AgentContext
from gpufleet.agent.live import LiveState
from gpufleet.api.app import create_app
from gpufleet.api.schemas.lmcache import (
    LmcacheConfigured,
    LmcacheMetrics,
    LmcacheOptimizeIn,
    LmcacheRecommendation,
    LmcacheSourceOut,
    LmcacheStatus,
    SettingChangeOut,
)
from gpufleet.client import (
    ApiError,
    Client,
    ConflictError,
    InvalidArgument,
    KvCacheConfigured,
    KvCacheMetrics,
    KvCacheRecommendation,
    KvCacheSettingChange,
    KvCacheSource,
    KvCacheStatus,
    RequestRejected,
    _ep_kvcache,
)
from gpufleet.kvcache.actions import NOT_CONFIGURED
from gpufleet.kvcache.poller import KvCacheMonitor
from gpufleet.kvcache.readings import MAX_WINDOW_S, parse_duration_s
from gpufleet.model import DiskUsage, GpuSourceStatus, Snapshot, SystemSample
from gpufleet.settings import KvCacheSettings, Settings
from gpufleet.store import open_store
from gpufleet.timeparse import TimeParseError

GIB = 2**30
T0 = 1_765_000_000.0
SCRAPE_GAP_S = 10.0
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


# ---- what the fixtures say -------------------------------------------------------------------


def _values(name: str, text: str) -> list[float]:
    """The value of every series of metric ``name`` in exposition ``text``."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})?\s+(\S+)\s*$", re.MULTILINE)
    values = [float(v) for v in pattern.findall(text)]
    assert values, f"{name} is not in the fixture"
    return values


def _sum(name: str, text: str) -> float:
    return sum(_values(name, text))


def _delta(name: str, prefix: str) -> float:
    """Scrape a → b increase of counter ``name`` in ``<prefix>_{a,b}.prom``."""
    return _sum(name, fixture(f"{prefix}_b")) - _sum(name, fixture(f"{prefix}_a"))


VLLM = "vllm_v1_two_engines"
MP = "lmcache_mp"
PREFIX_QUERIES = _delta("vllm:prefix_cache_queries_total", VLLM)
PREFIX_HITS = _delta("vllm:prefix_cache_hits_total", VLLM)
EXTERNAL_QUERIES = _delta("vllm:external_prefix_cache_queries_total", VLLM)
EXTERNAL_HITS = _delta("vllm:external_prefix_cache_hits_total", VLLM)
LOOKUP_TOKENS = _delta("lmcache_mp_lookup_requested_tokens_total", MP)
LOOKUP_HITS = _delta("lmcache_mp_lookup_hit_tokens_total", MP)
PREEMPTIONS = _delta("vllm:num_preemptions_total", VLLM)
MP_WRITES = _delta("lmcache_mp_l1_write_chunks_total", MP)
MP_EVICTIONS = _delta("lmcache_mp_l1_evicted_chunks_total", MP)
MP_USAGE_BYTES = _sum("lmcache_mp_l1_memory_usage_bytes", fixture(f"{MP}_b"))
KV_USAGE_B = _values("vllm:kv_cache_usage_perc", fixture(f"{VLLM}_b"))


# ---- the agent -------------------------------------------------------------------------------


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


@dataclass
class KvAgent:
    app: FastAPI
    ctx: AgentContext
    server: MetricsServer
    config_path: Path


def _build(tmp: Path, server: MetricsServer, *, sources: bool = True) -> KvAgent:
    """An agent app; with ``sources``, scraping one vLLM (two engines) and one LMCache MP
    server, already scraped twice (fixtures a then b, ten seconds apart)."""
    store = open_store(tmp / "agent.db")
    monitor = None
    vllm_urls: list[str] = []
    if sources:
        clock = StepClock(T0)
        vllm_urls = [server.url("/vllm")]
        monitor = KvCacheMonitor(vllm_urls, [server.url("/mp")], store=store, clock=clock)
        for suffix in ("a", "b"):
            server.set("/vllm", fixture(f"{VLLM}_{suffix}"))
            server.set("/mp", fixture(f"{MP}_{suffix}"))
            monitor.scrape_once()
            clock.advance(SCRAPE_GAP_S)
    config_path = tmp / "lmcache.yaml"
    settings = Settings(
        cluster="c1",
        node="n1",
        db=str(tmp / "agent.db"),
        kvcache=KvCacheSettings(vllm_urls=vllm_urls, config_path=str(config_path)),
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
    ctx = AgentContext(settings=settings, live=live, store=store, kvcache=monitor)
    return KvAgent(create_app(ctx), ctx, server, config_path)


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    s = MetricsServer()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def agent(tmp_path: Path, server: MetricsServer) -> Iterator[KvAgent]:
    built = _build(tmp_path, server)
    try:
        yield built
    finally:
        built.ctx.shutdown()


@pytest.fixture
def client(agent: KvAgent) -> Iterator[Client]:
    with serve(agent.app) as base, Client(base) as c:
        yield c


@pytest.fixture
def bare_client(tmp_path: Path, server: MetricsServer) -> Iterator[Client]:
    """A client of an agent without any KV-cache source."""
    built = _build(tmp_path, server, sources=False)
    try:
        with serve(built.app) as base, Client(base) as c:
            yield c
    finally:
        built.ctx.shutdown()


# ---- the client mirrors the server's schemas and checks ------------------------------------


RENAMED = {
    "start": "start_s",
    "end": "end_s",
    "last_scrape": "last_scrape_s",
    "last_ok": "last_ok_s",
}


@pytest.mark.parametrize(
    ("result", "schema"),
    [
        (KvCacheStatus, LmcacheStatus),
        (KvCacheSource, LmcacheSourceOut),
        (KvCacheMetrics, LmcacheMetrics),
        (KvCacheRecommendation, LmcacheRecommendation),
        (KvCacheConfigured, LmcacheConfigured),
    ],
)
def test_every_field_of_the_servers_schema(result: type, schema: type[BaseModel]) -> None:
    ours = {f.name for f in dataclasses.fields(result)} - {"raw"}
    assert ours == {RENAMED.get(n, n) for n in schema.model_fields}


def test_setting_change_fields() -> None:
    assert {f.name for f in dataclasses.fields(KvCacheSettingChange)} == set(
        SettingChangeOut.model_fields
    )


def test_local_checks_read_windows_and_modes_as_the_server_does() -> None:
    assert _ep_kvcache.MAX_WINDOW_S == MAX_WINDOW_S
    mode = LmcacheOptimizeIn.model_fields["mode"].annotation
    assert get_args(get_args(mode)[0]) == _ep_kvcache.MODES  # Literal[...] | None
    windows = ("15m", "30s", "1h", "2d", "900", "5M", " 5m ", "1.5h", "30d", "31d", "0m", "0")
    for text in (*windows, "1w", "-1h", "15min", "", "a while"):
        try:
            parse_duration_s(text)
            accepted = True
        except TimeParseError:
            accepted = False
        try:
            assert _ep_kvcache.window_arg(text) == text
            ours = True
        except InvalidArgument:
            ours = False
        assert ours == accepted, text


def test_arguments_refused_before_sending() -> None:
    with Client("http://127.0.0.1:9") as c:  # nothing is sent: no server needed
        with pytest.raises(InvalidArgument, match=r"use e\.g\. 30s, 15m"):
            c.kvcache.metrics("a while")
        with pytest.raises(InvalidArgument, match="at most 30d"):
            c.kvcache.optimize("31d")
        with pytest.raises(InvalidArgument, match="unknown mode 'inproc'"):
            c.kvcache.optimize(mode="inproc")
        with pytest.raises(InvalidArgument, match="block_size"):
            c.kvcache.optimize(block_size=0)
        with pytest.raises(InvalidArgument, match="apply_recommendation"):
            c.kvcache.configure()


# ---- sync, against uvicorn -------------------------------------------------------------------


def test_status_lists_the_sources(client: Client, agent: KvAgent) -> None:
    status = client.kvcache.status()
    assert status.configured is True
    assert status.instance_id == "c1/n1"
    assert status.stored is True
    assert status.lmcache_detected is True
    assert status.config_path == str(agent.config_path)
    assert status.config_exists is False
    assert status.hint is None
    vllm, mp = status.sources
    assert (vllm.url, vllm.kind) == (agent.server.url("/vllm"), "vllm")
    assert (mp.url, mp.kind) == (agent.server.url("/mp"), "lmcache")
    assert vllm.reachable is True
    assert mp.reachable is True
    assert vllm.models == (MODEL,)
    assert vllm.engines == 2
    assert vllm.scrapes == 2
    assert vllm.last_scrape_s == pytest.approx(T0 + SCRAPE_GAP_S)
    assert "vllm-v1" in vllm.name_sets
    assert mp.name_sets == ("lmcache-mp",)
    assert status["sources"][0]["url"] == vllm.url
    assert "configured" in status
    assert status.get("no such key") is None


def test_metrics_hit_rates_are_the_fixtures(client: Client) -> None:
    m = client.kvcache.metrics("5m")
    assert m.window == "5m"
    assert m.basis == "window"
    assert m.end_s > m.start_s
    assert m.prefix_queries_tokens == pytest.approx(PREFIX_QUERIES)
    assert m.prefix_hits_tokens == pytest.approx(PREFIX_HITS)
    assert m.prefix_hit_rate_pct == pytest.approx(100 * PREFIX_HITS / PREFIX_QUERIES)
    assert m.external_hit_rate_pct == pytest.approx(100 * EXTERNAL_HITS / EXTERNAL_QUERIES)
    assert m.lmcache_lookup_tokens == pytest.approx(LOOKUP_TOKENS)
    assert m.lmcache_lookup_hit_rate_pct == pytest.approx(100 * LOOKUP_HITS / LOOKUP_TOKENS)
    assert m.kv_usage_max_pct == pytest.approx(100 * max(KV_USAGE_B))
    assert m.kv_usage_pct == pytest.approx(100 * sum(KV_USAGE_B) / len(KV_USAGE_B))
    assert m.preemptions_per_s == pytest.approx(PREEMPTIONS / SCRAPE_GAP_S)
    assert m.lmcache_evictions == pytest.approx(MP_EVICTIONS)
    assert m.lmcache_remote_usage_bytes is None  # not reported: None, never 0
    assert m.lmcache_hit_rate_pct is None  # no in-vLLM LMCache source here
    assert m.block_size == 16
    assert m.resets == 0
    assert [s.url for s in m.sources] == [s.url for s in client.kvcache.status().sources]
    assert m["prefix_hit_rate_pct"] == m.prefix_hit_rate_pct


def test_optimize_and_the_seed_alias(client: Client) -> None:
    rec = client.kvcache.optimize()
    assert rec.window == "15m"
    assert rec.verdict == "grow_cpu_tier"
    # The MP server evicted some of the chunks it wrote: the working set is the usage
    # scaled by writes / (writes - evictions).
    expected = MP_USAGE_BYTES * MP_WRITES / (MP_WRITES - MP_EVICTIONS)
    assert rec.memory_saved_bytes == pytest.approx(expected)
    assert rec.memory_saved_gb == pytest.approx(expected / GIB, abs=0.01)
    assert rec["memory_saved_gb"] == rec.memory_saved_gb
    assert rec.reasoning
    assert rec.summary
    assert {c.key for c in rec.changes} <= set(rec.settings)
    assert rec.settings["max_local_cpu_size"] > 5  # grown past LMCache's default 5 GiB
    # An LMCache MP server is among the sources: its connector is the one proposed.
    assert rec.kv_transfer_config == {"kv_connector": "LMCacheMPConnector", "kv_role": "kv_both"}
    assert "--kv-transfer-config" in rec.vllm_command

    cache_optimization = client.optimize_lmcache()
    assert cache_optimization["memory_saved_gb"] == pytest.approx(expected / GIB, abs=0.01)
    assert isinstance(cache_optimization, KvCacheRecommendation)

    in_vllm = client.kvcache.optimize("15m", mode="in_process", block_size=16)
    assert in_vllm.kv_transfer_config["kv_connector"] == "LMCacheConnectorV1"


def test_configure_writes_and_keeps_the_previous_file(client: Client, agent: KvAgent) -> None:
    path = agent.config_path
    first = client.kvcache.configure({"chunk_size": 256})
    assert first.written is True
    assert first.path == str(path)
    assert first.backup_path is None
    assert yaml.safe_load(path.read_text()) == {"chunk_size": 256}
    assert yaml.safe_load(first.yaml) == first.settings
    assert first.env == {"LMCACHE_CONFIG_FILE": str(path)}
    assert f"vllm serve {MODEL}" in first.vllm_command
    assert first.verdict is None

    # What configure applies is what optimize recommends over the file in place now.
    recommended = client.kvcache.optimize()
    second = client.kvcache.configure(apply_recommendation=True)
    assert second.verdict == recommended.verdict
    assert second.backup_path is not None
    backup = Path(second.backup_path)
    assert backup.is_file()
    assert backup.parent == path.parent
    assert yaml.safe_load(backup.read_text()) == {"chunk_size": 256}
    written = yaml.safe_load(path.read_text())
    assert written["chunk_size"] == 256
    assert written["max_local_cpu_size"] == pytest.approx(
        recommended.settings["max_local_cpu_size"]
    )
    assert written == second.settings
    assert second["backup_path"] == second.backup_path

    dry = client.kvcache.configure({"max_local_cpu_size": 2}, dry_run=True)
    assert dry.written is False
    assert dry.settings["max_local_cpu_size"] == 2
    assert yaml.safe_load(path.read_text()) == written


def test_configure_errors_carry_the_servers_detail(client: Client, agent: KvAgent) -> None:
    with pytest.raises(RequestRejected) as bad:
        client.kvcache.configure({"chunk_size": 100})
    assert bad.value.status_code == 422
    assert "not a multiple of vLLM's KV block size 16" in bad.value.detail
    with pytest.raises(RequestRejected, match="unknown LMCache setting"):
        client.kvcache.configure({"cpu_size": 4})
    with pytest.raises(ApiError) as unwritable:
        client.kvcache.configure({"chunk_size": 256}, path=agent.config_path.parent)
    assert type(unwritable.value) is ApiError  # 400 has no subclass of its own
    assert unwritable.value.status_code == 400
    assert "is a directory" in unwritable.value.detail
    assert not agent.config_path.exists()


def test_no_sources_is_a_conflict_with_the_servers_detail(bare_client: Client) -> None:
    status = bare_client.kvcache.status()
    assert status.configured is False
    assert status.sources == ()
    assert status.hint == NOT_CONFIGURED
    for call in (
        bare_client.kvcache.metrics,
        bare_client.kvcache.optimize,
        bare_client.optimize_lmcache,
        lambda: bare_client.kvcache.configure(apply_recommendation=True),
    ):
        with pytest.raises(ConflictError) as exc:
            call()
        assert exc.value.status_code == 409
        assert exc.value.detail == NOT_CONFIGURED


def test_sources_that_never_answered_are_a_conflict(tmp_path: Path, server: MetricsServer) -> None:
    server.set("/vllm", "down\n", status=503)
    built = _build(tmp_path, server, sources=False)
    monitor = KvCacheMonitor([server.url("/vllm")], store=built.ctx.store, clock=StepClock(T0))
    built.ctx.kvcache = monitor
    try:
        with serve(built.app) as base, Client(base) as c:
            metrics = c.kvcache.metrics()  # the request scrapes once itself
            assert metrics.basis == "none"
            assert metrics.sources[0].reachable is False
            assert metrics.sources[0].error == f"HTTP 503 from {server.url('/vllm')}"
            assert "not answering" in (c.kvcache.status().hint or "")
            with pytest.raises(ConflictError, match="no vLLM or LMCache source answered"):
                c.kvcache.optimize()
    finally:
        built.ctx.shutdown()


# ---- async, through ASGITransport ------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def aclient(agent: KvAgent) -> AsyncIterator[AsyncClient]:
    transport = httpx.ASGITransport(app=agent.app)
    async with AsyncClient("http://agent", transport=transport) as c:
        yield c


@pytest.mark.anyio
async def test_async_status_metrics_optimize_configure(
    aclient: AsyncClient, agent: KvAgent
) -> None:
    status = await aclient.kvcache.status()
    assert [s.kind for s in status.sources] == ["vllm", "lmcache"]
    m = await aclient.kvcache.metrics(window="5m")
    assert m.prefix_hit_rate_pct == pytest.approx(100 * PREFIX_HITS / PREFIX_QUERIES)
    assert m.lmcache_lookup_hit_rate_pct == pytest.approx(100 * LOOKUP_HITS / LOOKUP_TOKENS)
    rec = await aclient.optimize_lmcache()
    assert rec["memory_saved_gb"] == rec.memory_saved_gb
    assert rec.memory_saved_bytes == pytest.approx(
        MP_USAGE_BYTES * MP_WRITES / (MP_WRITES - MP_EVICTIONS)
    )
    first = await aclient.kvcache.configure({"chunk_size": 256})
    second = await aclient.kvcache.configure({"chunk_size": 512}, path=agent.config_path)
    assert first.backup_path is None
    assert second.backup_path is not None
    assert Path(second.backup_path).is_file()
    assert yaml.safe_load(agent.config_path.read_text()) == {"chunk_size": 512}
    with pytest.raises(RequestRejected, match="not a multiple"):
        await aclient.kvcache.configure({"chunk_size": 100})


@pytest.mark.anyio
async def test_async_no_sources_is_a_conflict(tmp_path: Path, server: MetricsServer) -> None:
    built = _build(tmp_path, server, sources=False)
    try:
        transport = httpx.ASGITransport(app=built.app)
        async with AsyncClient("http://agent", transport=transport) as c:
            with pytest.raises(ConflictError) as exc:
                await c.kvcache.metrics()
            assert exc.value.detail == NOT_CONFIGURED
            assert (await c.kvcache.status()).hint == NOT_CONFIGURED
    finally:
        built.ctx.shutdown()
