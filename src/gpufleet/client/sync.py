"""The blocking client: :class:`Client` and its endpoint groups.

Every method is bound from an endpoint builder of the ``_ep_*`` modules (see
:mod:`gpufleet.client._bind`); the async twin in :mod:`gpufleet.client.async_` binds the
same builders, so both send the same requests and read the same answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx

from gpufleet.client import _ep_analysis as ana
from gpufleet.client import _ep_fleet as flt
from gpufleet.client import _ep_kvcache as kv
from gpufleet.client import _ep_live as live
from gpufleet.client._bind import sync_method
from gpufleet.client._core import (
    DEFAULT_TIMEOUT_S,
    Call,
    decode,
    events_of,
    http_options,
    send_kwargs,
    stream_kwargs,
)
from gpufleet.client.errors import error_from_response, transport_error
from gpufleet.client.types_analysis import ChatEvent

T = TypeVar("T")


class _Group:
    def __init__(self, client: Client) -> None:
        self._client = client

    def _run(self, call: Call[T]) -> T:
        return self._client._run(call)


class GpuApi(_Group):
    """``client.gpu``: the node's GPUs now (``/gpu/*``) and their history."""

    info = sync_method(live.gpu_info)
    list = sync_method(live.gpu_list)
    get = sync_method(live.gpu_get)
    utilization = sync_method(live.gpu_utilization)
    temperature = sync_method(live.gpu_temperature)
    memory = sync_method(live.gpu_memory)
    power = sync_method(live.gpu_power)
    history = sync_method(live.gpu_history)


class SystemApi(_Group):
    """``client.system``: the host's CPU, memory, disks and network (``/system/*``)."""

    cpu = sync_method(live.system_cpu)
    memory = sync_method(live.system_memory)
    disk = sync_method(live.system_disk)
    network = sync_method(live.system_network)
    all = sync_method(live.system_all)
    history = sync_method(live.system_history)


class AnalysisApi(_Group):
    """``client.analysis``: utilization, trends, drill-down, waste, opportunities, report."""

    utilization = sync_method(ana.utilization)
    trends = sync_method(ana.trends)
    drilldown = sync_method(ana.drilldown)
    waste = sync_method(ana.waste)
    opportunities = sync_method(ana.opportunities)
    report = sync_method(ana.report)
    report_text = sync_method(ana.report_text)


class OptimizeApi(_Group):
    """``client.optimize``: recommendations and executing them (``/optimize/*``)."""

    recommendations = sync_method(ana.recommendations)
    scale_up = sync_method(ana.scale_up)
    scale_down = sync_method(ana.scale_down)
    consolidate = sync_method(ana.consolidate)
    execute = sync_method(ana.execute)
    executions = sync_method(ana.executions)


class ChatApi(_Group):
    """``client.chat``: the conversational analyst (``/api/gpu-analysis/*``)."""

    ask = sync_method(ana.ask)
    sessions = sync_method(ana.sessions)
    session = sync_method(ana.session)
    delete_session = sync_method(ana.delete_session)

    def stream(
        self, query: str, *, session_id: str | None = None, cluster: str | None = None
    ) -> Iterator[ChatEvent]:
        """The reply of :meth:`ask` as it is sent (``POST /api/gpu-analysis/chat/stream``):
        ``meta``, ``answer`` pieces, one ``insight`` each, ``data``, ``done``.

        The request is sent when iteration starts; errors (a 404 session, a refused
        connection) are raised from the first ``next()``.
        """
        return self._client._stream(ana.chat_stream(query, session_id=session_id, cluster=cluster))


class FleetApi(_Group):
    """``client.fleet``: a hub's nodes, leases, groups, pools, tasks and tokens
    (``/fleet/v1/*``). Against an agent these answer 404."""

    nodes = sync_method(flt.nodes)
    discovered = sync_method(flt.discovered)
    drain = sync_method(flt.drain)
    undrain = sync_method(flt.undrain)
    join = sync_method(flt.join)
    heartbeat = sync_method(flt.heartbeat)
    ingest = sync_method(flt.ingest)
    gpus = sync_method(flt.gpus)
    hosts = sync_method(flt.hosts)
    gpu_history = sync_method(flt.gpu_history)
    system_history = sync_method(flt.system_history)
    tokens = sync_method(flt.tokens)
    create_token = sync_method(flt.create_token)
    revoke_token = sync_method(flt.revoke_token)
    allocate = sync_method(flt.allocate)
    leases = sync_method(flt.leases)
    lease = sync_method(flt.lease)
    renew = sync_method(flt.renew)
    release = sync_method(flt.release)
    groups = sync_method(flt.groups)
    group = sync_method(flt.group)
    create_group = sync_method(flt.create_group)
    update_group = sync_method(flt.update_group)
    delete_group = sync_method(flt.delete_group)
    group_members = sync_method(flt.group_members)
    add_member = sync_method(flt.add_member)
    remove_member = sync_method(flt.remove_member)
    pools = sync_method(flt.pools)
    put_pool = sync_method(flt.put_pool)
    delete_pool = sync_method(flt.delete_pool)
    submit = sync_method(flt.submit)
    tasks = sync_method(flt.tasks)
    task = sync_method(flt.task)
    cancel = sync_method(flt.cancel)
    report_part = sync_method(flt.report_part)
    models = sync_method(flt.models)


class KvCacheApi(_Group):
    """``client.kvcache``: an agent's KV-cache monitoring of vLLM and LMCache
    (``/lmcache/*``): sources, hit rates, LMCache recommendations, writing its config."""

    status = sync_method(kv.kvcache_status)
    metrics = sync_method(kv.kvcache_metrics)
    optimize = sync_method(kv.kvcache_optimize)
    configure = sync_method(kv.kvcache_configure)


class Client:
    """A blocking client of a gpufleet agent or hub.

    Args:
        base_url: ``http://host:port`` of an agent (default port 8003) or a hub.
        token: a hub token, sent as ``Authorization: Bearer <token>`` (an agent needs none).
        timeout_s: seconds to wait for each request.
        transport: an ``httpx.BaseTransport`` to send through instead of the network.
        headers: extra headers for every request.

    Endpoint groups: :attr:`gpu`, :attr:`system`, :attr:`analysis`, :attr:`optimize`,
    :attr:`chat`, :attr:`fleet`, :attr:`kvcache`. Use it as a context manager, or call
    :meth:`close`.

    Raises:
        InvalidArgument: a base URL or timeout that cannot work.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        options = http_options(base_url, token, timeout_s, headers)
        self.base_url: str = options["base_url"]
        self._http = httpx.Client(transport=transport, **options)
        self.gpu = GpuApi(self)
        self.system = SystemApi(self)
        self.analysis = AnalysisApi(self)
        self.optimize = OptimizeApi(self)
        self.chat = ChatApi(self)
        self.fleet = FleetApi(self)
        self.kvcache = KvCacheApi(self)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections (the client cannot be used afterwards)."""
        self._http.close()

    def _run(self, call: Call[T]) -> T:
        request = self._http.build_request(**send_kwargs(call))
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise transport_error(exc, request.method, str(request.url)) from exc
        return decode(call, response)

    def _stream(self, call: Call[Any]) -> Iterator[ChatEvent]:
        request = self._http.build_request(**stream_kwargs(call))
        try:
            response = self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise transport_error(exc, request.method, str(request.url)) from exc
        try:
            if not response.is_success:
                response.read()
                raise error_from_response(response)
            yield from events_of(response.iter_lines())
        except httpx.TransportError as exc:
            raise transport_error(exc, request.method, str(request.url)) from exc
        finally:
            response.close()

    # ---- service endpoints and seed 000's names -----------------------------------------------

    info = sync_method(live.info)
    health = sync_method(live.health)
    ready = sync_method(live.ready)
    alive = sync_method(live.alive)
    alerts = sync_method(live.alerts)
    metrics_text = sync_method(live.metrics_text)

    get_gpu_metrics = sync_method(live.gpu_list)
    """Seed 000's name for :meth:`GpuApi.list` (``GET /gpu/metrics``)."""
    analyze_utilization = sync_method(ana.utilization)
    """Seed 000's name for :meth:`AnalysisApi.utilization` (``POST /analysis/utilization``)."""
    get_scaling_recommendations = sync_method(ana.recommendations)
    """Seed 000's name for :meth:`OptimizeApi.recommendations` (every kind: scale up and
    down, consolidate, share, right-size, reclaim)."""
    execute_optimization = sync_method(ana.execute)
    """Seed 000's name for :meth:`OptimizeApi.execute`: pass what
    :meth:`get_scaling_recommendations` returned (a dry run unless ``dry_run=False``)."""
    optimize_lmcache = sync_method(kv.kvcache_optimize)
    """Seed 000's name for :meth:`KvCacheApi.optimize` (``POST /lmcache/optimize``); the
    result also reads as the JSON: ``client.optimize_lmcache()["memory_saved_gb"]``."""
