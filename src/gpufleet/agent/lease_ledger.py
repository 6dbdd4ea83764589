"""The leases an agent enforces, kept on disk so they outlive a hub (and an agent) restart.

The hub answers each heartbeat with the node's active leases and which of the leases the
agent reported have ended. The agent keeps the hub's active ones, plus any it holds that
the hub has no record of (a hub restored from an older database) until they expire by
their own time, and reports all of them in the next heartbeat: the hub holds their GPUs,
so it never hands a GPU out twice.

A JSON file replaced atomically (write, fsync, rename): small, and readable by hand.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any


class LeaseLedger:
    """The agent's leases (each a dict with ``id``, ``gpus`` and ``expires_s``)."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()
        self._leases: dict[str, dict[str, Any]] = {}
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            raw = []
        except ValueError:
            raw = []  # a torn file cannot happen (atomic rename); a hand-edited one is dropped
        for x in raw if isinstance(raw, list) else []:
            if isinstance(x, dict) and isinstance(x.get("id"), str):
                self._leases[x["id"]] = x

    def current(self) -> list[dict[str, Any]]:
        """Leases not yet past their expiry, by id."""
        now = self.clock()
        with self._lock:
            return [
                dict(x)
                for _, x in sorted(self._leases.items())
                if float(x.get("expires_s") or 0.0) > now
            ]

    def gpus_leased(self) -> dict[str, str]:
        """GPU uuid -> the lease holding it."""
        return {u: x["id"] for x in self.current() for u in x.get("gpus") or ()}

    def update(self, active: Iterable[Mapping[str, Any]], ended: Iterable[str]) -> None:
        """Apply a heartbeat's answer: the hub's ``active`` leases of this node replace their
        old copies, ``ended`` ones go, the rest stay until their expiry."""
        now = self.clock()
        gone = set(ended)
        with self._lock:
            kept = {
                k: v
                for k, v in self._leases.items()
                if k not in gone and float(v.get("expires_s") or 0.0) > now
            }
            for x in active:
                if isinstance(x.get("id"), str):
                    kept[str(x["id"])] = dict(x)
            if kept == self._leases:
                return
            self._leases = kept
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w") as f:
            json.dump(sorted(self._leases.values(), key=lambda x: x["id"]), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
