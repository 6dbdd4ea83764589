"""Typed results of a hub's ``/fleet/v1/*`` endpoints (and ``/v1/models``).

Lease, task and token times are epoch seconds on the wire already (``created_s``); node
times are ISO 8601 there and epoch seconds here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpufleet.client._wire import (
    Json,
    integer,
    many,
    num,
    obj,
    opt_float,
    opt_int,
    opt_str,
    opt_ts,
    strs,
)
from gpufleet.client.types_gpu import (
    NodeGpus,
)
from gpufleet.client.types_host import (
    Host,
)


@dataclass(frozen=True, slots=True)
class FleetNode:
    """A node of the hub with its health now (``healthy``, ``degraded``, ``unreachable``,
    ``drained``...) and the reasons for it."""

    cluster: str
    node: str
    status: str
    reasons: tuple[str, ...]
    url: str | None
    labels: Mapping[str, str]
    zone: str | None
    pool: str | None
    joined_s: float | None
    last_heartbeat_s: float | None
    last_sample_s: float | None
    gpus_lost: int
    gpu_errors: int
    drained: bool
    drain_reason: str | None
    gpus: tuple[Mapping[str, Any], ...]
    cpu_cores: float | None
    mem_total_mib: float | None
    raw: Json = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        """``cluster/node``, as pools name their members."""
        return f"{self.cluster}/{self.node}"

    @classmethod
    def from_wire(cls, d: Json) -> FleetNode:
        return cls(
            cluster=str(d["cluster"]),
            node=str(d["node"]),
            status=str(d["status"]),
            reasons=strs(d.get("reasons")),
            url=opt_str(d.get("url")),
            labels={str(k): str(v) for k, v in obj(d.get("labels")).items()},
            zone=opt_str(d.get("zone")),
            pool=opt_str(d.get("pool")),
            joined_s=opt_ts(d.get("joined")),
            last_heartbeat_s=opt_ts(d.get("last_heartbeat")),
            last_sample_s=opt_ts(d.get("last_sample")),
            gpus_lost=integer(d.get("gpus_lost", 0)),
            gpu_errors=integer(d.get("gpu_errors", 0)),
            drained=bool(d.get("drained")),
            drain_reason=opt_str(d.get("drain_reason")),
            gpus=many(d.get("gpus"), lambda g: g),
            cpu_cores=opt_float(d.get("cpu_cores")),
            mem_total_mib=opt_float(d.get("mem_total_mib")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """GPUs handed out on one node; ``env`` is what the holder's processes should get
    (``CUDA_VISIBLE_DEVICES``...). ``released_now`` is set only by a release."""

    id: str
    holder: str
    request_id: str | None
    cluster: str
    node: str
    gpus: tuple[str, ...]
    gpu_fraction: float
    memory_budget_mib: float | None
    cpu_cores: float
    memory_mib: float
    pool: str | None
    group: str | None
    priority: int
    created_s: float
    expires_s: float | None
    state: str
    ended_s: float | None
    end_reason: str | None
    renewals: int
    env: Mapping[str, str]
    released_now: bool | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Lease:
        released = d.get("released_now")
        return cls(
            id=str(d["id"]),
            holder=str(d["holder"]),
            request_id=opt_str(d.get("request_id")),
            cluster=str(d["cluster"]),
            node=str(d["node"]),
            gpus=strs(d.get("gpus")),
            gpu_fraction=num(d.get("gpu_fraction", 0.0)),
            memory_budget_mib=opt_float(d.get("memory_budget_mib")),
            cpu_cores=num(d.get("cpu_cores", 0.0)),
            memory_mib=num(d.get("memory_mib", 0)),
            pool=opt_str(d.get("pool")),
            group=opt_str(d.get("group")),
            priority=integer(d.get("priority", 0)),
            created_s=num(d["created_s"]),
            expires_s=opt_float(d.get("expires_s")),
            state=str(d["state"]),
            ended_s=opt_float(d.get("ended_s")),
            end_reason=opt_str(d.get("end_reason")),
            renewals=integer(d.get("renewals", 0)),
            env={str(k): str(v) for k, v in obj(d.get("env")).items()},
            released_now=None if released is None else bool(released),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool: created by an admin or named by its nodes."""

    name: str
    description: str | None
    created: bool
    nodes: tuple[str, ...]
    gpus: int
    gpus_leased: float
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Pool:
        return cls(
            name=str(d["name"]),
            description=opt_str(d.get("description")),
            created=bool(d.get("created")),
            nodes=strs(d.get("nodes")),
            gpus=integer(d.get("gpus", 0)),
            gpus_leased=num(d.get("gpus_leased", 0.0)),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Group:
    """A swarm group: member tokens, the pools they may lease from, their quotas."""

    name: str
    description: str | None
    max_members: int
    members: tuple[str, ...]
    pools: tuple[str, ...]
    max_gpus: float | None
    max_queued: int | None
    gpus_in_use: float
    created_s: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Group:
        return cls(
            name=str(d["name"]),
            description=opt_str(d.get("description")),
            max_members=integer(d.get("max_members", 0)),
            members=strs(d.get("members")),
            pools=strs(d.get("pools")),
            max_gpus=opt_float(d.get("max_gpus")),
            max_queued=opt_int(d.get("max_queued")),
            gpus_in_use=num(d.get("gpus_in_use", 0.0)),
            created_s=opt_float(d.get("created_s")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class TaskPart:
    part: int
    state: str
    attempts: int
    node: str | None
    lease_id: str | None
    placed_s: float | None
    started_s: float | None
    ended_s: float | None
    exit_code: int | None
    error: str | None
    output: str

    @classmethod
    def from_wire(cls, d: Json) -> TaskPart:
        return cls(
            part=integer(d["part"]),
            state=str(d["state"]),
            attempts=integer(d.get("attempts", 0)),
            node=opt_str(d.get("node")),
            lease_id=opt_str(d.get("lease_id")),
            placed_s=opt_float(d.get("placed_s")),
            started_s=opt_float(d.get("started_s")),
            ended_s=opt_float(d.get("ended_s")),
            exit_code=opt_int(d.get("exit_code")),
            error=opt_str(d.get("error")),
            output=str(d.get("output") or ""),
        )


@dataclass(frozen=True, slots=True)
class Task:
    """A queued task and its parts (one per node it runs on)."""

    id: str
    name: str | None
    holder: str
    group: str | None
    command: tuple[str, ...]
    priority: int
    timeout_s: float | None
    created_s: float
    state: str
    parts: tuple[TaskPart, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Task:
        return cls(
            id=str(d["id"]),
            name=opt_str(d.get("name")),
            holder=str(d.get("holder", "")),
            group=opt_str(d.get("group")),
            command=strs(d.get("command")),
            priority=integer(d.get("priority", 0)),
            timeout_s=opt_float(d.get("timeout_s")),
            created_s=num(d["created_s"]),
            state=str(d["state"]),
            parts=many(d.get("parts"), TaskPart.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Token:
    """A hub token (never its secret, except ``secret`` right after it was created)."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_s: float
    expires_s: float | None
    revoked_s: float | None
    groups: tuple[str, ...]
    secret: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Token:
        return cls(
            id=str(d["id"]),
            name=str(d.get("name", "")),
            scopes=strs(d.get("scopes")),
            created_s=num(d["created_s"]),
            expires_s=opt_float(d.get("expires_s")),
            revoked_s=opt_float(d.get("revoked_s")),
            groups=strs(d.get("groups")),
            secret=opt_str(d.get("token")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class FleetNodeGpus:
    """One node of ``GET /fleet/v1/gpus``; ``sample`` None until it sent a snapshot since
    the hub started."""

    cluster: str
    node: str
    status: str
    pool: str | None
    sample: NodeGpus | None

    @classmethod
    def from_wire(cls, d: Json) -> FleetNodeGpus:
        sample = d.get("sample")
        return cls(
            cluster=str(d["cluster"]),
            node=str(d["node"]),
            status=str(d["status"]),
            pool=opt_str(d.get("pool")),
            sample=None if sample is None else NodeGpus.from_wire(obj(sample)),
        )


@dataclass(frozen=True, slots=True)
class FleetGpus:
    """``GET /fleet/v1/gpus``: every selected node's GPUs now."""

    gpu_count: int
    nodes: tuple[FleetNodeGpus, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> FleetGpus:
        return cls(integer(d["gpu_count"]), many(d.get("nodes"), FleetNodeGpus.from_wire), d)


@dataclass(frozen=True, slots=True)
class FleetNodeHost:
    """One node of ``GET /fleet/v1/system``."""

    cluster: str
    node: str
    status: str
    pool: str | None
    sample: Host | None

    @classmethod
    def from_wire(cls, d: Json) -> FleetNodeHost:
        sample = d.get("sample")
        return cls(
            cluster=str(d["cluster"]),
            node=str(d["node"]),
            status=str(d["status"]),
            pool=opt_str(d.get("pool")),
            sample=None if sample is None else Host.from_wire(obj(sample)),
        )


def hosts_of(d: Json) -> tuple[FleetNodeHost, ...]:
    return many(d.get("nodes"), FleetNodeHost.from_wire)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """``POST /fleet/v1/ingest``: ``duplicate`` when the batch id was stored before."""

    batch_id: str
    snapshots: int
    duplicate: bool

    @classmethod
    def from_wire(cls, d: Json) -> IngestResult:
        return cls(str(d["batch_id"]), integer(d["snapshots"]), bool(d["duplicate"]))


@dataclass(frozen=True, slots=True)
class Model:
    """A model some reachable node serves (``GET /v1/models``, OpenAI's shape)."""

    id: str
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Model:
        return cls(str(d["id"]), d)
