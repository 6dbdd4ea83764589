"""What a hub keeps beside the fleet's history (schema version 4): the nodes joined to it,
its access tokens, and the sample batches it has stored, on SQLite and PostgreSQL alike.

A hub restart reads all of it back, so nodes, their drain state and tokens survive it; a
batch an agent re-sends after a lost acknowledgement is recognized by its id and stored
once (:meth:`HubRecords.ingest_batch` writes the samples and the id in one transaction).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from gpufleet.model import Snapshot

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What a hub stores of an access token (see :mod:`gpufleet.fleet.tokens`)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    secret_sha256: str
    created_s: float
    expires_s: float | None
    revoked_s: float | None = None
    groups: tuple[str, ...] = ()
    """Groups whose pools the token may allocate from (empty: every pool)."""

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


@dataclass(frozen=True, slots=True)
class HubNode:
    """A node joined to the hub and what the hub last heard of it."""

    cluster: str
    node: str
    url: str | None
    labels: dict[str, str]
    zone: str | None
    pool: str | None
    joined_s: float
    last_heartbeat_s: float | None
    last_sample_s: float | None
    gpus_lost: int
    gpu_errors: int
    drained: bool
    drain_reason: str | None
    health_check: dict[str, Any] = field(default_factory=dict)
    """The last heartbeat's report: response time, resource use, active allocations."""
    token_id: str | None = None
    inventory: dict[str, Any] = field(default_factory=dict)
    """The last heartbeat's GPUs, CPU and memory (see :mod:`gpufleet.fleet.inventory`)."""
    agent_leases: list[dict[str, Any]] = field(default_factory=list)
    """The leases the agent said it enforces in its last heartbeat (``id``, ``gpus``)."""


_NODE_COLUMNS = (
    "cluster, node, url, labels, zone, pool, joined, last_heartbeat, last_sample, gpus_lost, "
    "gpu_errors, drained, drain_reason, health_check, token_id, inventory, agent_leases"
)
_TOKEN_COLUMNS = "id, name, scopes, secret_sha256, created, expires, revoked, groups_json"


def _json(text: object) -> dict[str, Any]:
    try:
        value = json.loads(str(text)) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _node(row: Row) -> HubNode:
    return HubNode(
        cluster=str(row[0]),
        node=str(row[1]),
        url=row[2],
        labels={str(k): str(v) for k, v in _json(row[3]).items()},
        zone=row[4],
        pool=row[5],
        joined_s=float(row[6]),
        last_heartbeat_s=None if row[7] is None else float(row[7]),
        last_sample_s=None if row[8] is None else float(row[8]),
        gpus_lost=int(row[9]),
        gpu_errors=int(row[10]),
        drained=bool(row[11]),
        drain_reason=row[12],
        health_check=_json(row[13]),
        token_id=row[14],
        inventory=_json(row[15]),
        agent_leases=_json_list(row[16]),
    )


def _json_list(text: object) -> list[dict[str, Any]]:
    try:
        value = json.loads(str(text)) if text else []
    except ValueError:
        return []
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _token(row: Row) -> TokenRecord:
    groups = json.loads(row[7]) if row[7] else []
    return TokenRecord(
        id=str(row[0]),
        name=str(row[1]),
        scopes=tuple(s for s in str(row[2]).split(",") if s),
        secret_sha256=str(row[3]),
        created_s=float(row[4]),
        expires_s=None if row[5] is None else float(row[5]),
        revoked_s=None if row[6] is None else float(row[6]),
        groups=tuple(str(g) for g in groups),
    )


class HubRecords(ABC):
    """The hub's records; a SQL store supplies the transaction, the read and the batch write."""

    @abstractmethod
    def _writing(self) -> AbstractContextManager[Any]:
        """A write transaction (see SqlStore)."""

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A query on the read connection."""

    @abstractmethod
    def _write_batch(self, tx: Any, snapshots: Sequence[Snapshot]) -> None:
        """Write ``snapshots`` inside ``tx`` as :meth:`write_snapshots` does."""

    # ---- tokens ------------------------------------------------------------------------------

    def save_token(self, record: TokenRecord) -> None:
        """Store a new token (its hash)."""
        with self._writing() as tx:
            tx.execute(
                f"INSERT INTO hub_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.name,
                    ",".join(record.scopes),
                    record.secret_sha256,
                    record.created_s,
                    record.expires_s,
                    record.revoked_s,
                    json.dumps(list(record.groups)),
                ),
            )

    def token(self, token_id: str) -> TokenRecord | None:
        rows = self._read(f"SELECT {_TOKEN_COLUMNS} FROM hub_tokens WHERE id = ?", (token_id,))
        return _token(rows[0]) if rows else None

    def tokens(self) -> list[TokenRecord]:
        """Every token, newest first (revoked and expired ones included)."""
        rows = self._read(f"SELECT {_TOKEN_COLUMNS} FROM hub_tokens ORDER BY created DESC, id")
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: str, now_s: float) -> bool:
        """Revoke a token; False when there is no such token (revoking twice keeps the first
        time)."""
        with self._writing() as tx:
            found = tx.fetch("SELECT revoked FROM hub_tokens WHERE id = ?", (token_id,))
            if not found:
                return False
            if found[0][0] is None:
                tx.execute("UPDATE hub_tokens SET revoked = ? WHERE id = ?", (now_s, token_id))
            return True

    def has_tokens(self) -> bool:
        return bool(self._read("SELECT 1 FROM hub_tokens LIMIT 1"))

    # ---- settings ----------------------------------------------------------------------------

    def save_hub_setting(self, name: str, value: str, now_s: float) -> None:
        """Record what the serving hub was started with (one value per name)."""
        with self._writing() as tx:
            if tx.fetch("SELECT 1 FROM hub_settings WHERE name = ?", (name,)):
                tx.execute(
                    "UPDATE hub_settings SET value = ?, updated = ? WHERE name = ?",
                    (value, now_s, name),
                )
            else:
                tx.execute(
                    "INSERT INTO hub_settings (name, value, updated) VALUES (?, ?, ?)",
                    (name, value, now_s),
                )

    def hub_setting(self, name: str) -> str | None:
        rows = self._read("SELECT value FROM hub_settings WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    # ---- nodes -------------------------------------------------------------------------------

    def join_node(
        self,
        *,
        cluster: str,
        node: str,
        now_s: float,
        url: str | None = None,
        labels: Mapping[str, str] | None = None,
        zone: str | None = None,
        pool: str | None = None,
        token_id: str | None = None,
    ) -> HubNode:
        """Register a node, or refresh what it says of itself when it joins again (a restart):
        its join time and drain state are kept, and so is a pool an operator set when the
        agent names none."""
        labels_text = json.dumps(dict(labels or {}), sort_keys=True)
        with self._writing() as tx:
            changed = tx.execute(
                "UPDATE hub_nodes SET url = ?, labels = ?, zone = ?, pool = COALESCE(?, pool), "
                "token_id = ?, "
                "last_heartbeat = ? WHERE cluster = ? AND node = ?",
                (url, labels_text, zone, pool, token_id, now_s, cluster, node),
            )
            if not changed:
                tx.execute(
                    f"INSERT INTO hub_nodes ({_NODE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, 0, 0, NULL, '{}', ?, '{}', '[]')",
                    (cluster, node, url, labels_text, zone, pool, now_s, now_s, token_id),
                )
        found = self.hub_node(cluster, node)
        assert found is not None
        return found

    def hub_node(self, cluster: str, node: str) -> HubNode | None:
        rows = self._read(
            f"SELECT {_NODE_COLUMNS} FROM hub_nodes WHERE cluster = ? AND node = ?", (cluster, node)
        )
        return _node(rows[0]) if rows else None

    def hub_nodes(self, *, with_inventory: bool = True) -> list[HubNode]:
        """Every node joined, by cluster and name; ``with_inventory=False`` leaves each
        node's ``inventory`` empty (cheaper: it is most of a row)."""
        columns = _NODE_COLUMNS if with_inventory else _NODE_COLUMNS.replace("inventory,", "NULL,")
        rows = self._read(f"SELECT {columns} FROM hub_nodes ORDER BY cluster, node")
        return [_node(r) for r in rows]

    def record_heartbeat(
        self,
        cluster: str,
        node: str,
        *,
        now_s: float,
        gpus_lost: int,
        gpu_errors: int,
        health_check: Mapping[str, Any],
        inventory: Mapping[str, Any] | None = None,
        agent_leases: Sequence[Mapping[str, Any]] = (),
    ) -> bool:
        """Note a heartbeat, with the node's inventory and the leases its agent enforces;
        False when the node has not joined."""
        with self._writing() as tx:
            return bool(
                tx.execute(
                    "UPDATE hub_nodes SET last_heartbeat = ?, gpus_lost = ?, gpu_errors = ?, "
                    "health_check = ?, inventory = ?, agent_leases = ? "
                    "WHERE cluster = ? AND node = ?",
                    (
                        now_s,
                        gpus_lost,
                        gpu_errors,
                        json.dumps(dict(health_check), sort_keys=True, default=str),
                        json.dumps(dict(inventory or {}), sort_keys=True),
                        json.dumps([dict(x) for x in agent_leases], sort_keys=True),
                        cluster,
                        node,
                    ),
                )
            )

    def set_node_pool(self, cluster: str, node: str, pool: str | None) -> bool:
        """Put a node in ``pool`` (None: in no pool); False when it has not joined."""
        with self._writing() as tx:
            return bool(
                tx.execute(
                    "UPDATE hub_nodes SET pool = ? WHERE cluster = ? AND node = ?",
                    (pool, cluster, node),
                )
            )

    def set_token_groups(self, token_id: str, groups: Sequence[str]) -> bool:
        """The groups a token is a member of; False when there is no such token."""
        with self._writing() as tx:
            return bool(
                tx.execute(
                    "UPDATE hub_tokens SET groups_json = ? WHERE id = ?",
                    (json.dumps(sorted(set(groups))), token_id),
                )
            )

    def set_drained(self, cluster: str, node: str, drained: bool, reason: str | None) -> bool:
        """Drain (or undrain) a node; False when it has not joined."""
        with self._writing() as tx:
            return bool(
                tx.execute(
                    "UPDATE hub_nodes SET drained = ?, drain_reason = ? "
                    "WHERE cluster = ? AND node = ?",
                    (int(drained), reason if drained else None, cluster, node),
                )
            )

    # ---- ingest ------------------------------------------------------------------------------

    def ingest_batch(
        self, cluster: str, node: str, batch_id: str, snapshots: Sequence[Snapshot], now_s: float
    ) -> bool:
        """Store one agent batch once: the samples, the batch id and the node's last-sample
        time in one transaction. False (nothing written) when the batch was stored before."""
        with self._writing() as tx:
            seen = tx.fetch(
                "SELECT 1 FROM hub_batches WHERE cluster = ? AND node = ? AND batch_id = ?",
                (cluster, node, batch_id),
            )
            if seen:
                return False
            self._write_batch(tx, snapshots)
            tx.execute(
                "INSERT INTO hub_batches (cluster, node, batch_id, received, snapshots) "
                "VALUES (?, ?, ?, ?, ?)",
                (cluster, node, batch_id, now_s, len(snapshots)),
            )
            if snapshots:
                latest = max(s.ts_s for s in snapshots)
                tx.execute(
                    "UPDATE hub_nodes SET last_sample = CASE WHEN last_sample IS NULL OR "
                    "last_sample < ? THEN ? ELSE last_sample END WHERE cluster = ? AND node = ?",
                    (latest, latest, cluster, node),
                )
        return True
