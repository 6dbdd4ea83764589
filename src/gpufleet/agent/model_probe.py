"""Which models this node serves, for the hub's model routing (``[hub] model_servers``).

Each configured server is asked, at most every ``every_s``, for its models: the
OpenAI-compatible ``GET /v1/models`` (vLLM, llama.cpp server, LM Studio, TGI, Ollama) and,
where that is absent, Ollama's ``GET /api/tags``. A server that does not answer lists no
models until it does again (so the hub stops routing to it); the reason is logged once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from gpufleet.agent.logonce import LogOnce

logger = logging.getLogger(__name__)


def _openai_models(body: Any) -> list[str] | None:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    return [str(m["id"]) for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _ollama_models(body: Any) -> list[str] | None:
    models = body.get("models") if isinstance(body, dict) else None
    if not isinstance(models, list):
        return None
    return [
        str(m.get("name") or m.get("model"))
        for m in models
        if isinstance(m, dict) and isinstance(m.get("name") or m.get("model"), str)
    ]


def probe_server(base: str, client: httpx.Client) -> tuple[list[dict[str, str]], str | None]:
    """The models one server answers for, and why none when it did not answer."""
    base = base.rstrip("/")
    why = None
    for path, read, api in (
        ("/v1/models", _openai_models, "openai"),
        ("/api/tags", _ollama_models, "ollama"),
    ):
        try:
            r = client.get(base + path)
        except httpx.HTTPError as exc:
            return [], f"{base} does not answer: {exc}"
        if r.status_code != 200:
            why = f"{base}{path} answered {r.status_code}"
            continue
        try:
            names = read(r.json())
        except ValueError:
            names = None
        if names is None:
            why = f"{base}{path} did not answer with a model list"
            continue
        return [{"name": n, "url": base, "api": api} for n in names], None
    return [], why


class ModelProbe:
    """Cached model lists of this node's servers."""

    def __init__(
        self,
        servers: Sequence[str],
        *,
        every_s: float = 15.0,
        timeout_s: float = 2.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.servers = [s.rstrip("/") for s in servers]
        self.every_s = every_s
        self._client = client or httpx.Client(timeout=timeout_s)
        self._clock = clock
        self._last: float | None = None
        self._models: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._log = LogOnce(logger)

    def close(self) -> None:
        self._client.close()

    def models(self) -> list[dict[str, str]]:
        """The models now (probing again when the last probe is older than ``every_s``)."""
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self.every_s:
                return list(self._models)
            found: list[dict[str, str]] = []
            for base in self.servers:
                models, why = probe_server(base, self._client)
                if why is not None:
                    self._log.warning(why, "model server: %s (no models routed to it)", why)
                found.extend(models)
            self._models, self._last = found, now
            return list(found)
