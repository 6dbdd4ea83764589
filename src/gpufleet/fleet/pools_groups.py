"""Resource pools and swarm groups (seed 003), checked before anything is stored.

* A **pool** is a named set of nodes; a node is in at most one (``hub_nodes.pool``, set by
  the agent's ``--pool`` or by an operator here, which a later join without ``--pool``
  keeps). A pool named by a node but never created here still works; creating it gives it a
  description.
* A **group** has members (tokens, up to ``max_members``), the pools its members may
  allocate from (none listed: every pool; each one named must exist) and quotas:
  ``max_gpus`` held at once by leases charged to it, ``max_queued`` tasks waiting. Joining
  is an admin's act: a group grants access, so a token cannot put itself in one; a member
  may leave by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gpufleet.fleet.errors import HubRequestError
from gpufleet.fleet.names import check_name
from gpufleet.store.lease_records import ACTIVE, GroupRecord, LeaseRecords, PoolRecord

MAX_MEMBERS = 10_000


def group_wire(g: GroupRecord, in_use_gpus: float = 0.0) -> dict[str, Any]:
    return {
        "name": g.name,
        "description": g.description,
        "max_members": g.max_members,
        "members": list(g.members),
        "pools": list(g.pools),
        "max_gpus": g.max_gpus,
        "max_queued": g.max_queued,
        "gpus_in_use": in_use_gpus,
        "created_s": g.created_s,
    }


def _group_fields(body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    allowed = {"name", "description", "max_members", "pools", "max_gpus", "max_queued"}
    unknown = sorted(set(body) - allowed - ({"name"} if creating else set()))
    if unknown or (not creating and "name" in body):
        bad = unknown or ["name"]
        raise HubRequestError(
            f"a group cannot carry {', '.join(bad)}; use: {', '.join(sorted(allowed))}"
            + ("" if creating else " (but not name: a group keeps its name)")
        )
    out: dict[str, Any] = {}
    if "description" in body:
        d = body["description"]
        if d is not None and (not isinstance(d, str) or len(d) > 500):
            raise HubRequestError("description must be a string of at most 500 characters")
        out["description"] = d
    if "max_members" in body or creating:
        m = body.get("max_members", 10)
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_MEMBERS:
            raise HubRequestError(f"max_members must be a whole number 1-{MAX_MEMBERS}, got {m!r}")
        out["max_members"] = m
    if "pools" in body:
        pools = body["pools"] or []
        if not isinstance(pools, list):
            raise HubRequestError("pools must be a list of pool names (empty: every pool)")
        out["pools"] = tuple(sorted({check_name("a pool's name", p) for p in pools}))
    if "max_gpus" in body:
        q = body["max_gpus"]
        if q is not None and (isinstance(q, bool) or not isinstance(q, int | float) or q < 0):
            raise HubRequestError(f"max_gpus must be a number >= 0 or null, got {q!r}")
        out["max_gpus"] = None if q is None else float(q)
    if "max_queued" in body:
        q = body["max_queued"]
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or q < 0):
            raise HubRequestError(f"max_queued must be a whole number >= 0 or null, got {q!r}")
        out["max_queued"] = q
    return out


class PoolsAndGroups:
    """Pools and groups over the hub's store."""

    def __init__(
        self,
        store: LeaseRecords,
        clock: Callable[[], float],
        gpus_in_use: Callable[[], dict[str, float]],
    ) -> None:
        self.store = store
        self.clock = clock
        self.gpus_in_use = gpus_in_use
        """GPUs each group holds now (the lease desk's count: leases and engine jobs)."""

    # ---- groups ------------------------------------------------------------------------------

    def groups(self) -> list[dict[str, Any]]:
        used = self.gpus_in_use()
        return [group_wire(g, used.get(g.name, 0.0)) for g in self.store.groups()]

    def group(self, name: str) -> GroupRecord:
        found = self.store.group(name)
        if found is None:
            raise HubRequestError(f"no group {name!r}", status=404)
        return found

    def _check_pools(self, fields: Mapping[str, Any]) -> None:
        known = self.store.pool_names()
        missing = [p for p in fields.get("pools", ()) if p not in known]
        if missing:
            raise HubRequestError(
                f"no pool {', '.join(missing)}; pools: {', '.join(sorted(known)) or 'none yet'} "
                "(create one with `gpufleet hub pool set NAME`, or agents join with --pool)",
                status=404,
            )

    def create_group(self, body: Mapping[str, Any]) -> GroupRecord:
        name = check_name("a group's name", body.get("name"))
        fields = _group_fields(body, creating=True)
        self._check_pools(fields)
        record = GroupRecord(name=name, created_s=self.clock(), **fields)
        if not self.store.save_group(record):
            raise HubRequestError(f"a group named {name} exists already", status=409)
        return self.group(name)

    def update_group(self, name: str, body: Mapping[str, Any]) -> GroupRecord:
        fields = _group_fields(body, creating=False)
        group = self.group(name)
        self._check_pools(fields)
        if "max_members" in fields and fields["max_members"] < len(group.members):
            raise HubRequestError(
                f"group {name} has {len(group.members)} members; max_members cannot go below "
                "that (remove members first)",
                status=409,
            )
        self.store.update_group(name, fields)
        return self.group(name)

    def delete_group(self, name: str) -> None:
        if not self.store.delete_group(name):
            raise HubRequestError(f"no group {name!r}", status=404)

    def join(self, name: str, token_id: str) -> GroupRecord:
        outcome = self.store.join_group(name, token_id)
        if outcome == "no group":
            raise HubRequestError(f"no group {name!r}", status=404)
        if outcome == "no token":
            raise HubRequestError(f"no token {token_id!r}", status=404)
        if outcome == "full":
            group = self.group(name)
            raise HubRequestError(
                f"group {name} is full ({group.max_members} members): raise its max_members "
                "or remove a member",
                status=409,
            )
        return self.group(name)

    def leave(self, name: str, token_id: str) -> GroupRecord:
        self.group(name)  # 404 for a group that does not exist
        if not self.store.leave_group(name, token_id):
            raise HubRequestError(f"token {token_id} is not a member of group {name}", 404)
        return self.group(name)

    # ---- pools -------------------------------------------------------------------------------

    def pools(self) -> list[dict[str, Any]]:
        """Every pool (created here or named by a node) with its nodes and GPUs."""
        records = {p.name: p for p in self.store.pools()}
        nodes = self.store.hub_nodes()
        held: dict[str, float] = {}
        for lease in self.store.leases(state=ACTIVE, limit=1_000_000):
            if lease.pool is not None:
                held[lease.pool] = held.get(lease.pool, 0.0) + lease.gpu_count
        names = sorted(set(records) | {n.pool for n in nodes if n.pool is not None})
        out = []
        for name in names:
            members = [n for n in nodes if n.pool == name]
            record = records.get(name)
            out.append(
                {
                    "name": name,
                    "description": None if record is None else record.description,
                    "created": record is not None,
                    "nodes": [f"{n.cluster}/{n.node}" for n in members],
                    "gpus": sum(len(n.inventory.get("gpus") or []) for n in members),
                    "gpus_leased": held.get(name, 0.0),
                }
            )
        return out

    def put_pool(self, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create or describe a pool and, with ``nodes`` (``cluster/node`` names), make
        exactly those nodes its members (others leave it)."""
        check_name("a pool's name", name)
        unknown = sorted(set(body) - {"description", "nodes"})
        if unknown:
            raise HubRequestError(
                f"a pool cannot carry {', '.join(unknown)}; use description and nodes"
            )
        description = body.get("description")
        if description is not None and not isinstance(description, str):
            raise HubRequestError("description must be a string")
        wanted = body.get("nodes")
        pairs: list[tuple[str, str]] = []
        if wanted is not None:
            if not isinstance(wanted, list) or not all(isinstance(x, str) for x in wanted):
                raise HubRequestError("nodes must be a list of cluster/node names")
            joined = {(n.cluster, n.node) for n in self.store.hub_nodes()}
            for text in wanted:
                cluster, sep, node = text.partition("/")
                if not sep or (cluster, node) not in joined:
                    raise HubRequestError(
                        f"no joined node {text!r}: name nodes as cluster/node (see hub nodes)",
                        status=404 if sep else 422,
                    )
                pairs.append((cluster, node))
        self.store.save_pool(PoolRecord(name=name, created_s=self.clock(), description=description))
        if wanted is not None:
            for n in self.store.hub_nodes():
                member = (n.cluster, n.node) in pairs
                if member and n.pool != name:
                    self.store.set_node_pool(n.cluster, n.node, name)
                elif not member and n.pool == name:
                    self.store.set_node_pool(n.cluster, n.node, None)
        return next(p for p in self.pools() if p["name"] == name)

    def delete_pool(self, name: str) -> None:
        if not self.store.delete_pool(name):
            raise HubRequestError(
                f"no pool {name!r} was created here (a pool only named by nodes goes away "
                "when its nodes leave it)",
                status=404,
            )
