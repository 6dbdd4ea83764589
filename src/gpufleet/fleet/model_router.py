"""Model routing: the hub as one OpenAI-compatible endpoint for the models its nodes serve.

Agents list the models of their servers (``--model-server``, see
:mod:`gpufleet.agent.model_probe`) in each heartbeat. A request to the hub's ``/v1/...``
names a ``model``; the router picks among the nodes that serve it and can be routed to
(not ``unreachable``, not ``drained``), in the order of its strategy, and forwards the
request body unchanged to the first; on a connection error, a timeout or a 5xx answer it
tries the next (up to ``max_tries``). Streamed answers (``"stream": true``) are relayed as
they come; a retry is possible only before the first byte reaches the client.

Strategies: ``least_loaded`` (default: fewest requests this hub has in flight to the
node, then round robin), ``round_robin``, ``weighted`` (smooth weighted round robin on the
node's ``weight`` label), ``random``. The hub's token is never sent on to model servers.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import httpx

from gpufleet.fleet.errors import HubRequestError
from gpufleet.fleet.inventory import InventoryError, inventory_from_wire
from gpufleet.store.hub_records import HubNode

ROUTE_STRATEGIES = ("least_loaded", "round_robin", "weighted", "random")
ROUTABLE = frozenset({"healthy", "degraded"})


@dataclass(frozen=True, slots=True)
class Backend:
    cluster: str
    node: str
    url: str
    api: str
    weight: float = 1.0

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.node}"


@dataclass(frozen=True, slots=True)
class Upstream:
    """An answer from a model server, to relay (``chunks`` is consumed once)."""

    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]
    backend: Backend
    tries: int


class ModelRouter:
    """Picks model servers and forwards requests to them.

    Args:
        nodes: the hub's nodes with their health status now.
        strategy: one of :data:`ROUTE_STRATEGIES`.
        max_tries: most servers tried for one request.
        client_factory: makes the async HTTP client of one request (tests pass one bound to
            fake servers); a client per request keeps it on the event loop that serves it.
    """

    def __init__(
        self,
        nodes: Callable[[], Sequence[tuple[HubNode, str]]],
        *,
        strategy: str = "least_loaded",
        max_tries: int = 3,
        timeout_s: float = 300.0,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
        seed: int | None = None,
    ) -> None:
        if strategy not in ROUTE_STRATEGIES:
            raise ValueError(
                f"unknown routing strategy {strategy!r}; use one of: {', '.join(ROUTE_STRATEGIES)}"
            )
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        self._nodes = nodes
        self.strategy = strategy
        self.max_tries = max_tries
        self._client_factory = client_factory or (
            lambda: httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=5.0))
        )
        self._rng = random.Random(seed)
        self._turn = itertools.count()
        self._current: dict[str, float] = {}
        self.in_flight: dict[str, int] = {}

    # ---- what is served ----------------------------------------------------------------------

    def served(self) -> dict[str, list[Backend]]:
        """Model name -> the nodes that serve it and can be routed to now."""
        out: dict[str, list[Backend]] = {}
        for node, status in self._nodes():
            if status not in ROUTABLE or node.drained:
                continue
            try:
                inv = inventory_from_wire(node.inventory or None)
            except InventoryError:
                continue
            weight = _weight(node.labels.get("weight"))
            for m in inv.models:
                backends = out.setdefault(m.name, [])
                b = Backend(node.cluster, node.node, m.url, m.api, weight)
                if b not in backends:
                    backends.append(b)
        return out

    def models_wire(self) -> dict[str, object]:
        """``GET /v1/models`` in OpenAI's shape, with the nodes serving each model."""
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "owned_by": "gpufleet",
                    "nodes": [b.key for b in backends],
                }
                for name, backends in sorted(self.served().items())
            ],
        }

    def order(self, backends: list[Backend]) -> list[Backend]:
        """``backends`` in the order the strategy tries them."""
        if len(backends) <= 1:
            return list(backends)
        start = next(self._turn) % len(backends)
        rotated = backends[start:] + backends[:start]
        if self.strategy == "round_robin":
            return rotated
        if self.strategy == "random":
            shuffled = list(backends)
            self._rng.shuffle(shuffled)
            return shuffled
        if self.strategy == "weighted":
            total = sum(b.weight for b in backends)
            for b in backends:
                self._current[b.key + b.url] = self._current.get(b.key + b.url, 0.0) + b.weight
            first = max(backends, key=lambda b: self._current[b.key + b.url])
            self._current[first.key + first.url] -= total
            return [first, *(b for b in rotated if b is not first)]
        return sorted(rotated, key=lambda b: self.in_flight.get(b.key, 0))

    # ---- forwarding --------------------------------------------------------------------------

    async def forward(self, path: str, body: bytes, model: str) -> Upstream:
        """Send ``body`` to a server of ``model`` at ``path``; the first answer that is not a
        failure (connection error, timeout, 5xx) is returned, still unread.

        Raises:
            HubRequestError: no node serves the model (404), or every try failed (502).
        """
        served = self.served()
        backends = served.get(model)
        if not backends:
            known = ", ".join(sorted(served)) or "none"
            raise HubRequestError(
                f"no reachable node serves model {model!r}; served now: {known}", status=404
            )
        failures = []
        client = self._client_factory()
        for tries, b in enumerate(self.order(backends)[: self.max_tries], start=1):
            request = client.build_request(
                "POST",
                b.url + path,
                content=body,
                headers={"content-type": "application/json"},
            )
            self.in_flight[b.key] = self.in_flight.get(b.key, 0) + 1
            try:
                response = await client.send(request, stream=True)
            except httpx.HTTPError as exc:
                self._done(b)
                failures.append(f"{b.key}: {type(exc).__name__}: {exc}")
                continue
            if response.status_code >= 500:
                await response.aclose()
                self._done(b)
                failures.append(f"{b.key}: answered {response.status_code}")
                continue
            return Upstream(
                status=response.status_code,
                headers={
                    k: v
                    for k, v in response.headers.items()
                    if k.lower() in ("content-type", "cache-control")
                },
                chunks=self._relay(client, response, b),
                backend=b,
                tries=tries,
            )
        await client.aclose()
        raise HubRequestError(
            f"every server of model {model!r} failed: {'; '.join(failures)}", status=502
        )

    async def _relay(
        self, client: httpx.AsyncClient, response: httpx.Response, b: Backend
    ) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()
            await client.aclose()
            self._done(b)

    def _done(self, b: Backend) -> None:
        self.in_flight[b.key] = max(0, self.in_flight.get(b.key, 0) - 1)


def _weight(text: str | None) -> float:
    try:
        value = float(text) if text is not None else 1.0
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0
