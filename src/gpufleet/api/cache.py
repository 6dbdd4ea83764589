"""Serialized responses cached per snapshot: live endpoints change only when a sample lands.

Building pydantic models and JSON for eight GPUs costs far more than serving bytes, and
every request between two samples would build the same body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from fastapi import Response
from pydantic import BaseModel

from gpufleet.model import Snapshot


class SnapshotResponseCache:
    """JSON bodies keyed by endpoint for the newest snapshot only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._bodies: dict[str, bytes] = {}

    def respond(
        self, snapshot: Snapshot, key: str, build: Callable[[], BaseModel | dict[str, Any]]
    ) -> Response:
        """The cached body for ``key`` at ``snapshot``, building it on first use."""
        with self._lock:
            if self._snapshot is not snapshot:
                self._snapshot = snapshot
                self._bodies = {}
            body = self._bodies.get(key)
        if body is None:
            built = build()
            body = (
                built.model_dump_json().encode()
                if isinstance(built, BaseModel)
                else _json_bytes(built)
            )
            with self._lock:
                if self._snapshot is snapshot:
                    self._bodies[key] = body
        return Response(content=body, media_type="application/json")


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
