"""The asyncio client: :class:`AsyncClient`, the twin of :class:`gpufleet.client.Client`.

Its methods are bound from the same endpoint builders as the sync client's
(:mod:`gpufleet.client._bind`); only sending differs: ``await client.gpu.list()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from gpufleet.client import _ep_analysis as ana
from gpufleet.client import _ep_fleet as flt
from gpufleet.client import _ep_kvcache as kv
from gpufleet.client import _ep_live as live
from gpufleet.client._bind import async_method
from gpufleet.client._core import (
    DEFAULT_TIMEOUT_S,
    Call,
    aevents_of,
    decode,
    http_options,
    send_kwargs,
    stream_kwargs,
)
from gpufleet.client.errors import error_from_response, transport_error
from gpufleet.client.types_analysis import ChatEvent

T = TypeVar("T")


class _AsyncGroup:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _run(self, call: Call[T]) -> T:
        return await self._client._run(call)


class AsyncGpuApi(_AsyncGroup):
    """``client.gpu`` of :class:`AsyncClient` (see :class:`gpufleet.client.sync.GpuApi`)."""

    info = async_method(live.gpu_info)
    list = async_method(live.gpu_list)
    get = async_method(live.gpu_get)
    utilization = async_method(live.gpu_utilization)
    temperature = async_method(live.gpu_temperature)
    memory = async_method(live.gpu_memory)
    power = async_method(live.gpu_power)
    history = async_method(live.gpu_history)


class AsyncSystemApi(_AsyncGroup):
    """``client.system`` of :class:`AsyncClient`."""

    cpu = async_method(live.system_cpu)
    memory = async_method(live.system_memory)
    disk = async_method(live.system_disk)
    network = async_method(live.system_network)
    all = async_method(live.system_all)
    history = async_method(live.system_history)


class AsyncAnalysisApi(_AsyncGroup):
    """``client.analysis`` of :class:`AsyncClient`."""

    utilization = async_method(ana.utilization)
    trends = async_method(ana.trends)
    drilldown = async_method(ana.drilldown)
    waste = async_method(ana.waste)
    opportunities = async_method(ana.opportunities)
    report = async_method(ana.report)
    report_text = async_method(ana.report_text)


class AsyncOptimizeApi(_AsyncGroup):
    """``client.optimize`` of :class:`AsyncClient`."""

    recommendations = async_method(ana.recommendations)
    scale_up = async_method(ana.scale_up)
    scale_down = async_method(ana.scale_down)
    consolidate = async_method(ana.consolidate)
    execute = async_method(ana.execute)
    executions = async_method(ana.executions)


class AsyncChatApi(_AsyncGroup):
    """``client.chat`` of :class:`AsyncClient`."""

    ask = async_method(ana.ask)
    sessions = async_method(ana.sessions)
    session = async_method(ana.session)
    delete_session = async_method(ana.delete_session)

    def stream(
        self, query: str, *, session_id: str | None = None, cluster: str | None = None
    ) -> AsyncIterator[ChatEvent]:
        """The reply of :meth:`ask` as server-sent events, as they arrive:
        ``async for event in client.chat.stream("...")``. The request is sent when
        iteration starts."""
        return self._client._stream(ana.chat_stream(query, session_id=session_id, cluster=cluster))


class AsyncFleetApi(_AsyncGroup):
    """``client.fleet`` of :class:`AsyncClient` (a hub's ``/fleet/v1/*``)."""

    nodes = async_method(flt.nodes)
    discovered = async_method(flt.discovered)
    drain = async_method(flt.drain)
    undrain = async_method(flt.undrain)
    join = async_method(flt.join)
    heartbeat = async_method(flt.heartbeat)
    ingest = async_method(flt.ingest)
    gpus = async_method(flt.gpus)
    hosts = async_method(flt.hosts)
    gpu_history = async_method(flt.gpu_history)
    system_history = async_method(flt.system_history)
    tokens = async_method(flt.tokens)
    create_token = async_method(flt.create_token)
    revoke_token = async_method(flt.revoke_token)
    allocate = async_method(flt.allocate)
    leases = async_method(flt.leases)
    lease = async_method(flt.lease)
    renew = async_method(flt.renew)
    release = async_method(flt.release)
    groups = async_method(flt.groups)
    group = async_method(flt.group)
    create_group = async_method(flt.create_group)
    update_group = async_method(flt.update_group)
    delete_group = async_method(flt.delete_group)
    group_members = async_method(flt.group_members)
    add_member = async_method(flt.add_member)
    remove_member = async_method(flt.remove_member)
    pools = async_method(flt.pools)
    put_pool = async_method(flt.put_pool)
    delete_pool = async_method(flt.delete_pool)
    submit = async_method(flt.submit)
    tasks = async_method(flt.tasks)
    task = async_method(flt.task)
    cancel = async_method(flt.cancel)
    report_part = async_method(flt.report_part)
    models = async_method(flt.models)


class AsyncKvCacheApi(_AsyncGroup):
    """``client.kvcache`` of :class:`AsyncClient` (see :class:`gpufleet.client.sync.KvCacheApi`)."""

    status = async_method(kv.kvcache_status)
    metrics = async_method(kv.kvcache_metrics)
    optimize = async_method(kv.kvcache_optimize)
    configure = async_method(kv.kvcache_configure)


class AsyncClient:
    """An asyncio client of a gpufleet agent or hub; the arguments are
    :class:`~gpufleet.client.Client`'s, ``transport`` an ``httpx.AsyncBaseTransport``
    (``httpx.ASGITransport(app)`` to talk to an app in the same process).

    Use ``async with AsyncClient(...) as client:`` or ``await client.aclose()``.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        options = http_options(base_url, token, timeout_s, headers)
        self.base_url: str = options["base_url"]
        self._http = httpx.AsyncClient(transport=transport, **options)
        self.gpu = AsyncGpuApi(self)
        self.system = AsyncSystemApi(self)
        self.analysis = AsyncAnalysisApi(self)
        self.optimize = AsyncOptimizeApi(self)
        self.chat = AsyncChatApi(self)
        self.fleet = AsyncFleetApi(self)
        self.kvcache = AsyncKvCacheApi(self)

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections (the client cannot be used afterwards)."""
        await self._http.aclose()

    async def _run(self, call: Call[T]) -> T:
        request = self._http.build_request(**send_kwargs(call))
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise transport_error(exc, request.method, str(request.url)) from exc
        return decode(call, response)

    async def _stream(self, call: Call[Any]) -> AsyncIterator[ChatEvent]:
        request = self._http.build_request(**stream_kwargs(call))
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise transport_error(exc, request.method, str(request.url)) from exc
        try:
            if not response.is_success:
                await response.aread()
                raise error_from_response(response)
            async for event in aevents_of(response.aiter_lines()):
                yield event
        except httpx.TransportError as exc:
            raise transport_error(exc, request.method, str(request.url)) from exc
        finally:
            await response.aclose()

    # ---- service endpoints and seed 000's names -----------------------------------------------

    info = async_method(live.info)
    health = async_method(live.health)
    ready = async_method(live.ready)
    alive = async_method(live.alive)
    alerts = async_method(live.alerts)
    metrics_text = async_method(live.metrics_text)

    get_gpu_metrics = async_method(live.gpu_list)
    """Seed 000's name for ``gpu.list()``."""
    analyze_utilization = async_method(ana.utilization)
    """Seed 000's name for ``analysis.utilization()``."""
    get_scaling_recommendations = async_method(ana.recommendations)
    """Seed 000's name for ``optimize.recommendations()``."""
    execute_optimization = async_method(ana.execute)
    """Seed 000's name for ``optimize.execute()``."""
    optimize_lmcache = async_method(kv.kvcache_optimize)
    """Seed 000's name for ``kvcache.optimize()``."""
