"""A Python client of gpufleet's HTTP API, for an agent or a hub, blocking or asyncio.

    from gpufleet import Client

    with Client("http://gpu-box:8003") as client:
        for gpu in client.gpu.list().gpus:
            print(gpu.index, gpu.util_gpu_pct, gpu.mem_used_mib)
        print(client.analysis.utilization("-7d", by="namespace").mean_gpu_util_pct)

Endpoint groups: ``client.gpu``, ``client.system``, ``client.analysis``,
``client.optimize``, ``client.chat``, ``client.fleet`` (a hub), ``client.kvcache`` (an
agent's vLLM / LMCache KV caches), plus ``client.info()``, ``client.health()``,
``client.ready()``, ``client.alive()``, ``client.alerts()`` and ``client.metrics_text()``.
:class:`AsyncClient` has the same methods as coroutines. A non-2xx answer raises an
:class:`ApiError` subclass carrying the server's ``detail``; an unreachable server
:class:`ConnectionFailed`. The client talks HTTP only: it imports nothing of the server.
"""

from __future__ import annotations

from gpufleet.client import types as _types
from gpufleet.client.async_ import AsyncClient
from gpufleet.client.errors import (
    ApiError,
    AuthError,
    ConflictError,
    ConnectionFailed,
    GpufleetError,
    InvalidArgument,
    NotFoundError,
    RequestRejected,
    RequestTimedOut,
    Unavailable,
    UnexpectedResponse,
)
from gpufleet.client.scope import Scope
from gpufleet.client.sync import Client
from gpufleet.client.types import *  # noqa: F403 - the typed results, in types.__all__

__all__ = [
    "ApiError",
    "AsyncClient",
    "AuthError",
    "Client",
    "ConflictError",
    "ConnectionFailed",
    "GpufleetError",
    "InvalidArgument",
    "NotFoundError",
    "RequestRejected",
    "RequestTimedOut",
    "Scope",
    "Unavailable",
    "UnexpectedResponse",
]
__all__ += _types.__all__
