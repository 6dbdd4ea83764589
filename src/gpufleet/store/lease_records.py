"""What a hub keeps to hand GPUs out (schema version 5): leases, swarm groups and pools, on
SQLite and PostgreSQL alike.

Everything a hub restart needs is here: active leases come back with their GPUs and
expiry, groups with their members (tokens) and quotas, pools by name. A lease changes state
once (``active`` -> ``released`` | ``expired`` | ``reclaimed``), inside one transaction that
checks it is still active, so two racing ends of one lease record one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gpufleet.store.hub_records import HubRecords

Row = tuple[Any, ...]

ACTIVE = "active"
LEASE_STATES = (ACTIVE, "released", "expired", "reclaimed")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """One lease: GPUs of one node held by one holder until ``expires_s``."""

    id: str
    token_id: str
    request_id: str | None
    holder: str
    cluster: str
    node: str
    gpus: tuple[str, ...]
    """GPU uuids, in the node's index order."""
    milli_per_gpu: int
    memory_budget_mib: int | None
    cpu_milli: int
    memory_mib: int
    pool: str | None
    group: str | None
    priority: int
    request: dict[str, Any]
    created_s: float
    expires_s: float
    state: str = ACTIVE
    ended_s: float | None = None
    end_reason: str | None = None
    renewals: int = 0

    @property
    def gpu_count(self) -> float:
        """GPUs held, a fraction counted as its share (quota accounting)."""
        return len(self.gpus) * self.milli_per_gpu / 1000.0


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """A swarm group: who may join (``max_members`` tokens), where members may allocate
    (``pools``, empty for every pool) and its quotas."""

    name: str
    max_members: int
    created_s: float
    description: str | None = None
    pools: tuple[str, ...] = ()
    max_gpus: float | None = None
    max_queued: int | None = None
    members: tuple[str, ...] = field(default=())
    """Token ids (filled in on read)."""


@dataclass(frozen=True, slots=True)
class PoolRecord:
    name: str
    created_s: float
    description: str | None = None


_LEASE_COLUMNS = (
    "id, token_id, request_id, holder, cluster, node, gpus, milli_per_gpu, memory_budget_mib, "
    "cpu_milli, memory_mib, pool, group_name, priority, request, created, expires, state, ended, "
    "end_reason, renewals"
)
_GROUP_COLUMNS = "name, description, max_members, pools, max_gpus, max_queued, created"


def _lease(row: Row) -> LeaseRecord:
    return LeaseRecord(
        id=str(row[0]),
        token_id=str(row[1]),
        request_id=row[2],
        holder=str(row[3]),
        cluster=str(row[4]),
        node=str(row[5]),
        gpus=tuple(str(u) for u in json.loads(row[6])),
        milli_per_gpu=int(row[7]),
        memory_budget_mib=None if row[8] is None else int(row[8]),
        cpu_milli=int(row[9]),
        memory_mib=int(row[10]),
        pool=row[11],
        group=row[12],
        priority=int(row[13]),
        request=dict(json.loads(row[14])),
        created_s=float(row[15]),
        expires_s=float(row[16]),
        state=str(row[17]),
        ended_s=None if row[18] is None else float(row[18]),
        end_reason=row[19],
        renewals=int(row[20]),
    )


def _members_of(token_rows: Sequence[Row], group: str) -> tuple[str, ...]:
    return tuple(
        sorted(str(tid) for tid, groups in token_rows if group in json.loads(groups or "[]"))
    )


class LeaseRecords(HubRecords):
    """A hub's whole store: its nodes and tokens (:class:`HubRecords`) and its leases,
    groups and pools; a SQL store supplies the transaction and the read."""

    # ---- leases ------------------------------------------------------------------------------

    def save_lease(self, lease: LeaseRecord) -> None:
        with self._writing() as tx:
            tx.execute(
                f"INSERT INTO hub_leases ({_LEASE_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    lease.id,
                    lease.token_id,
                    lease.request_id,
                    lease.holder,
                    lease.cluster,
                    lease.node,
                    json.dumps(list(lease.gpus)),
                    lease.milli_per_gpu,
                    lease.memory_budget_mib,
                    lease.cpu_milli,
                    lease.memory_mib,
                    lease.pool,
                    lease.group,
                    lease.priority,
                    json.dumps(lease.request, sort_keys=True),
                    lease.created_s,
                    lease.expires_s,
                    lease.state,
                    lease.ended_s,
                    lease.end_reason,
                    lease.renewals,
                ),
            )

    def lease(self, lease_id: str) -> LeaseRecord | None:
        rows = self._read(f"SELECT {_LEASE_COLUMNS} FROM hub_leases WHERE id = ?", (lease_id,))
        return _lease(rows[0]) if rows else None

    def lease_by_request(self, token_id: str, request_id: str) -> LeaseRecord | None:
        """The lease a token's earlier request of this id got (for idempotent retries)."""
        rows = self._read(
            f"SELECT {_LEASE_COLUMNS} FROM hub_leases WHERE token_id = ? AND request_id = ?",
            (token_id, request_id),
        )
        return _lease(rows[0]) if rows else None

    def leases(
        self,
        *,
        state: str | None = None,
        cluster: str | None = None,
        node: str | None = None,
        limit: int = 1000,
    ) -> list[LeaseRecord]:
        """Leases, newest first, optionally of one state and node."""
        where, params = [], []
        for column, value in (("state", state), ("cluster", cluster), ("node", node)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(
            f"SELECT {_LEASE_COLUMNS} FROM hub_leases{clause} ORDER BY created DESC, id LIMIT ?",
            (*params, limit),
        )
        return [_lease(r) for r in rows]

    def known_lease_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the hub has a record of (in any state)."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = tuple(ids[i : i + 500])
            marks = ", ".join("?" for _ in chunk)
            rows = self._read(f"SELECT id FROM hub_leases WHERE id IN ({marks})", chunk)
            found.update(str(r[0]) for r in rows)
        return found

    def end_lease(self, lease_id: str, state: str, now_s: float, reason: str) -> bool:
        """End an active lease; False when it is not active (already ended: nothing changes)."""
        if state == ACTIVE or state not in LEASE_STATES:
            raise ValueError(f"a lease ends as released, expired or reclaimed, not {state!r}")
        with self._writing() as tx:
            return bool(
                tx.execute(
                    "UPDATE hub_leases SET state = ?, ended = ?, end_reason = ? "
                    "WHERE id = ? AND state = ?",
                    (state, now_s, reason, lease_id, ACTIVE),
                )
            )

    def renew_lease(self, lease_id: str, expires_s: float) -> bool:
        """Move an active lease's expiry; False when it is not active."""
        with self._writing() as tx:
            return bool(
                tx.execute(
                    "UPDATE hub_leases SET expires = ?, renewals = renewals + 1 "
                    "WHERE id = ? AND state = ?",
                    (expires_s, lease_id, ACTIVE),
                )
            )

    def expire_leases(self, now_s: float) -> list[str]:
        """End every active lease past its expiry; their ids."""
        with self._writing() as tx:
            rows = tx.fetch(
                "SELECT id FROM hub_leases WHERE state = ? AND expires <= ?", (ACTIVE, now_s)
            )
            ids = [str(r[0]) for r in rows]
            for lease_id in ids:
                tx.execute(
                    "UPDATE hub_leases SET state = 'expired', ended = ?, end_reason = ? "
                    "WHERE id = ? AND state = ?",
                    (now_s, "its time ran out without a renewal", lease_id, ACTIVE),
                )
        return ids

    # ---- groups ------------------------------------------------------------------------------

    def save_group(self, group: GroupRecord) -> bool:
        """Create a group; False when one of that name exists."""
        with self._writing() as tx:
            if tx.fetch("SELECT 1 FROM hub_groups WHERE name = ?", (group.name,)):
                return False
            tx.execute(
                f"INSERT INTO hub_groups ({_GROUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    group.name,
                    group.description,
                    group.max_members,
                    json.dumps(list(group.pools)),
                    group.max_gpus,
                    group.max_queued,
                    group.created_s,
                ),
            )
        return True

    def update_group(self, name: str, changes: Mapping[str, Any]) -> bool:
        """Change a group's ``description``, ``max_members``, ``pools``, ``max_gpus`` or
        ``max_queued``; False when there is no such group."""
        allowed = {"description", "max_members", "pools", "max_gpus", "max_queued"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} of a group")
        if not changes:
            return self.group(name) is not None
        sets = ", ".join(f"{k} = ?" for k in changes)
        values = [json.dumps(list(v)) if k == "pools" else v for k, v in changes.items()]
        with self._writing() as tx:
            return bool(tx.execute(f"UPDATE hub_groups SET {sets} WHERE name = ?", (*values, name)))

    def group(self, name: str) -> GroupRecord | None:
        found = [g for g in self.groups() if g.name == name]
        return found[0] if found else None

    def groups(self) -> list[GroupRecord]:
        """Every group with its members, by name."""
        tokens = self._read("SELECT id, groups_json FROM hub_tokens")
        rows = self._read(f"SELECT {_GROUP_COLUMNS} FROM hub_groups ORDER BY name")
        return [
            GroupRecord(
                name=str(r[0]),
                description=r[1],
                max_members=int(r[2]),
                pools=tuple(json.loads(r[3])),
                max_gpus=None if r[4] is None else float(r[4]),
                max_queued=None if r[5] is None else int(r[5]),
                created_s=float(r[6]),
                members=_members_of(tokens, str(r[0])),
            )
            for r in rows
        ]

    def delete_group(self, name: str) -> bool:
        """Delete a group and its memberships; False when there is no such group."""
        with self._writing() as tx:
            if not tx.execute("DELETE FROM hub_groups WHERE name = ?", (name,)):
                return False
            for tid, groups in tx.fetch("SELECT id, groups_json FROM hub_tokens"):
                held = json.loads(groups or "[]")
                if name in held:
                    tx.execute(
                        "UPDATE hub_tokens SET groups_json = ? WHERE id = ?",
                        (json.dumps([g for g in held if g != name]), tid),
                    )
        return True

    def join_group(self, name: str, token_id: str) -> str:
        """Add a token to a group within its ``max_members``, atomically.

        Returns ``joined``, ``member`` (already one), ``full``, ``no group`` or ``no token``.
        """
        with self._writing() as tx:
            found = tx.fetch("SELECT max_members FROM hub_groups WHERE name = ?", (name,))
            if not found:
                return "no group"
            tokens = tx.fetch("SELECT id, groups_json FROM hub_tokens")
            mine = [json.loads(g or "[]") for tid, g in tokens if tid == token_id]
            if not mine:
                return "no token"
            if name in mine[0]:
                return "member"
            if len(_members_of(tokens, name)) >= int(found[0][0]):
                return "full"
            tx.execute(
                "UPDATE hub_tokens SET groups_json = ? WHERE id = ?",
                (json.dumps(sorted({*mine[0], name})), token_id),
            )
        return "joined"

    def leave_group(self, name: str, token_id: str) -> bool:
        """Take a token out of a group; False when it was not a member."""
        with self._writing() as tx:
            rows = tx.fetch("SELECT groups_json FROM hub_tokens WHERE id = ?", (token_id,))
            held = json.loads(rows[0][0] or "[]") if rows else []
            if name not in held:
                return False
            tx.execute(
                "UPDATE hub_tokens SET groups_json = ? WHERE id = ?",
                (json.dumps([g for g in held if g != name]), token_id),
            )
        return True

    # ---- pools -------------------------------------------------------------------------------

    def save_pool(self, pool: PoolRecord) -> None:
        """Create a pool or change its description."""
        with self._writing() as tx:
            if not tx.execute(
                "UPDATE hub_pools SET description = ? WHERE name = ?", (pool.description, pool.name)
            ):
                tx.execute(
                    "INSERT INTO hub_pools (name, description, created) VALUES (?, ?, ?)",
                    (pool.name, pool.description, pool.created_s),
                )

    def pools(self) -> list[PoolRecord]:
        rows = self._read("SELECT name, description, created FROM hub_pools ORDER BY name")
        return [PoolRecord(name=str(r[0]), description=r[1], created_s=float(r[2])) for r in rows]

    def pool_names(self) -> set[str]:
        """Pools created here or named by a joined node."""
        rows = self._read(
            "SELECT name FROM hub_pools UNION SELECT pool FROM hub_nodes WHERE pool IS NOT NULL"
        )
        return {str(r[0]) for r in rows}

    def delete_pool(self, name: str) -> bool:
        """Delete a pool; its nodes are left in no pool. False when there is no such pool."""
        with self._writing() as tx:
            if not tx.execute("DELETE FROM hub_pools WHERE name = ?", (name,)):
                return False
            tx.execute("UPDATE hub_nodes SET pool = NULL WHERE pool = ?", (name,))
        return True
