"""The agent's disk buffer of samples bound for a hub: nothing is lost while the hub is down,
up to a bound, and nothing is lost when the agent restarts meanwhile.

Snapshots are appended as JSON (:mod:`gpufleet.model_wire`) to an SQLite file with an
increasing sequence number; the pusher reads the oldest batch, sends it, and deletes it only
once the hub has acknowledged it (:meth:`HubSpool.ack`). Past ``max_snapshots`` the oldest are
dropped and counted, so a long outage costs the oldest samples, never the agent's disk.
Sequence numbers never repeat (``AUTOINCREMENT``), so ``(agent id, first seq, last seq)``
names a batch uniquely and a batch re-sent after a lost acknowledgement can be recognized.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from gpufleet.model import Snapshot
from gpufleet.model_wire import snapshot_to_wire


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """The oldest snapshots waiting, as sent: their sequence range and JSON payloads."""

    first_seq: int
    last_seq: int
    snapshots: tuple[dict[str, object], ...]


class HubSpool:
    """A bounded, persistent FIFO of snapshots (thread-safe).

    Args:
        path: the SQLite file (created with its parent directories).
        max_snapshots: most snapshots kept; the oldest beyond it are dropped and counted.
    """

    def __init__(self, path: str | Path, *, max_snapshots: int = 100_000) -> None:
        if max_snapshots < 1:
            raise ValueError(f"max_snapshots must be at least 1, got {max_snapshots}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._max = max_snapshots
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool ("
            "seq INTEGER PRIMARY KEY AUTOINCREMENT, ts_s REAL NOT NULL, payload TEXT NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        self._db.execute("INSERT OR IGNORE INTO spool_meta VALUES ('dropped', 0)")

    def __len__(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM spool").fetchone()
        return int(n)

    @property
    def dropped(self) -> int:
        """Snapshots dropped because the spool was full (kept across restarts)."""
        with self._lock:
            (n,) = self._db.execute("SELECT value FROM spool_meta WHERE key='dropped'").fetchone()
        return int(n)

    def append(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` until a hub acknowledges it."""
        payload = json.dumps(snapshot_to_wire(snapshot), separators=(",", ":"))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO spool (ts_s, payload) VALUES (?, ?)", (snapshot.ts_s, payload)
                )
                (n,) = self._db.execute("SELECT COUNT(*) FROM spool").fetchone()
                over = int(n) - self._max
                if over > 0:
                    self._db.execute(
                        "DELETE FROM spool WHERE seq IN "
                        "(SELECT seq FROM spool ORDER BY seq LIMIT ?)",
                        (over,),
                    )
                    self._db.execute(
                        "UPDATE spool_meta SET value = value + ? WHERE key = 'dropped'", (over,)
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def oldest(self, limit: int) -> SpooledBatch | None:
        """The ``limit`` oldest snapshots, or None when the spool is empty."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM spool ORDER BY seq LIMIT ?", (max(limit, 1),)
            ).fetchall()
        if not rows:
            return None
        return SpooledBatch(
            first_seq=int(rows[0][0]),
            last_seq=int(rows[-1][0]),
            snapshots=tuple(json.loads(p) for _, p in rows),
        )

    def ack(self, batch: SpooledBatch) -> None:
        """Forget ``batch``: the hub has stored it (or refused it for good)."""
        with self._lock:
            self._db.execute(
                "DELETE FROM spool WHERE seq BETWEEN ? AND ?", (batch.first_seq, batch.last_seq)
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
