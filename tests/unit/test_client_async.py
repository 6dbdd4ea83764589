"""``gpufleet.AsyncClient`` over ``httpx.ASGITransport``: the same app as the blocking
client's tests, the key paths of every group, streaming, and errors (with FastAPI's own
list-shaped ``detail`` from an app without gpufleet's error handlers)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from tests.unit.client_support import (
    HAND_WINDOW,
    LIVE_GPUS,
    Agent,
    build_agent,
    build_hub,
    free_port,
)

from gpufleet import AsyncClient
from gpufleet.client import (
    AuthError,
    ConnectionFailed,
    InvalidArgument,
    NotFoundError,
    RequestRejected,
    Scope,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    built = build_agent(tmp_path_factory.mktemp("client-async"))
    try:
        yield built
    finally:
        assert built.ctx.store is not None
        built.ctx.store.close()


@pytest.fixture
async def client(agent: Agent) -> AsyncIterator[AsyncClient]:
    async with AsyncClient("http://agent", transport=httpx.ASGITransport(app=agent.app)) as c:
        yield c


async def test_gpu_and_system(client: AsyncClient, agent: Agent) -> None:
    gpus = await client.gpu.list()
    assert gpus.gpu_count == LIVE_GPUS
    assert [g.uuid for g in gpus.gpus] == [g.uuid for g in agent.latest.gpus]
    assert [g.util_gpu_pct for g in gpus.gpus] == [g.util_gpu_pct for g in agent.latest.gpus]
    one = await client.gpu.get(agent.latest.gpus[2].uuid)
    assert one.index == 2
    assert (await client.get_gpu_metrics()).gpus == gpus.gpus
    util = await client.gpu.utilization()
    assert util.allocated_gpus == sum(1 for g in agent.latest.gpus if g.allocated)
    cpu = await client.system.cpu()
    assert cpu.cpu_pct == 12.5
    host = await client.system.all()
    assert host.memory.total_bytes == 64 * 1024**3
    hist = await client.gpu.history(*HAND_WINDOW, node="n1", cluster="c1", resolution="raw")
    assert {s.subject for s in hist.series} == {"GPU-a", "GPU-b"}
    assert (await client.health()).healthy
    assert await client.ready() is True


async def test_analysis_matches_the_hand_computed_values(client: AsyncClient) -> None:
    out = await client.analysis.utilization(*HAND_WINDOW, by="user")
    assert out.gpu_hours == pytest.approx(8.0)
    assert out.mean_gpu_util_pct == pytest.approx(30.0)
    assert out.allocation_rate == pytest.approx(0.75)
    assert {g.key: g.gpu_hours for g in out.groups} == {
        "alice": pytest.approx(4.0),
        "bob": pytest.approx(2.0),
    }
    bob = await client.analyze_utilization(*HAND_WINDOW, scope=Scope(user="bob"))
    assert bob.idle_allocated_gpu_hours == pytest.approx(2.0)
    waste = await client.analysis.waste(*HAND_WINDOW)
    assert waste.idle_allocated_gpu_hours == pytest.approx(2.0)
    trends = await client.analysis.trends(*HAND_WINDOW, granularity="hour")
    assert [p.value for p in trends.points] == [30.0] * 4
    report = await client.analysis.report_text(*HAND_WINDOW)
    assert report.startswith("# GPU fleet report")
    with pytest.raises(RequestRejected, match="cannot read time"):
        await client.analysis.drilldown("soon")


async def test_recommend_and_execute(client: AsyncClient) -> None:
    recs = await client.get_scaling_recommendations("-2d")
    assert recs.ids
    assert {r.kind for r in recs.recommendations} == {"reclaim_idle"}
    done = await client.execute_optimization(recs)
    assert [e.status for e in done.executions] == ["planned"] * len(recs.ids)
    log = await client.optimize.executions()
    assert {e.recommendation_id for e in log} >= set(recs.ids)
    with pytest.raises(RequestRejected, match="not found"):
        await client.optimize.execute("nope", "-2d")


async def test_chat_ask_stream_and_sessions(client: AsyncClient) -> None:
    q = "which namespace wastes the most?"
    reply = await client.chat.ask(q)
    assert reply.intent == "waste"
    events = [e async for e in client.chat.stream(q)]
    assert events[0].event == "meta"
    assert events[-1].event == "done"
    assert "".join(e.text or "" for e in events if e.event == "answer") == reply.answer
    listed = await client.chat.sessions()
    assert reply.session_id in {s.session_id for s in listed.sessions}
    assert (await client.chat.session(reply.session_id)).turns[0].query == q
    assert await client.chat.delete_session(reply.session_id) == 1
    with pytest.raises(NotFoundError, match="no session"):
        await client.chat.delete_session(reply.session_id)
    with pytest.raises(NotFoundError, match="nosuch"):
        async for _ in client.chat.stream("utilization?", session_id="nosuch"):
            pass


async def test_unknown_gpu_carries_the_servers_detail(client: AsyncClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.gpu.get(9)
    assert info.value.status_code == 404
    assert info.value.detail.startswith("GPU '9' not found on node-a")
    assert info.value.url == "http://agent/gpu/metrics/9"
    with pytest.raises(InvalidArgument):
        await client.analysis.waste(by="team")


async def test_a_closed_port_is_connection_failed() -> None:
    port = free_port()
    async with AsyncClient(f"http://127.0.0.1:{port}", timeout_s=5) as c:
        with pytest.raises(ConnectionFailed, match=f"127.0.0.1:{port}"):
            await c.gpu.list()


async def test_fastapis_list_detail_becomes_one_readable_line() -> None:
    app = FastAPI()

    @app.get("/gpu/metrics/history")
    def history(limit: int, metric: str) -> dict[str, int]:
        return {"limit": limit}

    async with AsyncClient("http://plain", transport=httpx.ASGITransport(app=app)) as c:
        with pytest.raises(RequestRejected) as info:
            await c.gpu.history()  # sends metric and resolution, no limit
    err = info.value
    assert isinstance(err.detail_raw, list)
    assert err.detail == "limit: Field required"
    assert err.detail_raw[0]["loc"] == ["query", "limit"]


async def test_hub_tokens_and_fleet(tmp_path_factory: pytest.TempPathFactory) -> None:
    setup = build_hub(tmp_path_factory.mktemp("hub-async"))
    transport = httpx.ASGITransport(app=setup.app)
    try:
        async with AsyncClient("http://hub", transport=transport) as anonymous:
            with pytest.raises(AuthError, match="needs a token") as info:
                await anonymous.fleet.nodes()
            assert info.value.status_code == 401
        async with AsyncClient("http://hub", setup.node, transport=transport) as node:
            joined = await node.fleet.join("c1", "n1", pool="train")
            assert joined.status == "degraded"
            with pytest.raises(AuthError, match="lacks the 'read' scope") as info:
                await node.fleet.nodes()
            assert info.value.status_code == 403
        async with AsyncClient("http://hub", setup.user, transport=transport) as user:
            nodes = await user.fleet.nodes()
            assert [(n.key, n.pool) for n in nodes] == [("c1/n1", "train")]
            assert [p.name for p in await user.fleet.pools()] == ["train"]
    finally:
        setup.store.close()
