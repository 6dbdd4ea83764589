"""The hub's tables (DESIGN.md's fleet layer): node registry, tokens, ingest batches, leases,
groups, pools, settings, the task queue. Their migrations are in :mod:`gpufleet.store.schema`."""

from __future__ import annotations

from gpufleet.store.schema_model import Column, Index, Table

HUB_NODES = Table(
    "hub_nodes",
    (
        Column("cluster", "text", not_null=True),
        Column("node", "text", not_null=True),
        Column("url", "text"),
        Column("labels", "text", not_null=True),
        Column("zone", "text"),
        Column("pool", "text"),
        Column("joined", "real", not_null=True),
        Column("last_heartbeat", "real"),
        Column("last_sample", "real"),
        Column("gpus_lost", "int", not_null=True),
        Column("gpu_errors", "int", not_null=True),
        Column("drained", "int", not_null=True),
        Column("drain_reason", "text"),
        Column("health_check", "text", not_null=True),
        Column("token_id", "text"),
    ),
    primary_key=("cluster", "node"),
)
"""Nodes joined to a hub (schema version 4): where to reach them, labels (JSON) and zone,
the last signs of life the health states are judged from, and the last health check (JSON:
response time, resource use, active allocations)."""

HUB_TOKENS = Table(
    "hub_tokens",
    (
        Column("id", "text", not_null=True),
        Column("name", "text", not_null=True),
        Column("scopes", "text", not_null=True),
        Column("secret_sha256", "text", not_null=True),
        Column("created", "real", not_null=True),
        Column("expires", "real"),
        Column("revoked", "real"),
        Column("groups_json", "text", not_null=True),
    ),
    primary_key=("id",),
)
"""Hub access tokens, the secret only as its SHA-256 (schema version 4)."""

HUB_BATCHES = Table(
    "hub_batches",
    (
        Column("cluster", "text", not_null=True),
        Column("node", "text", not_null=True),
        Column("batch_id", "text", not_null=True),
        Column("received", "real", not_null=True),
        Column("snapshots", "int", not_null=True),
    ),
    primary_key=("cluster", "node", "batch_id"),
    indexes=(Index(("received",)),),
)
"""Sample batches a hub has stored, by the agent's id for them (schema version 4): a batch
re-sent after a lost acknowledgement is recognized and not stored twice."""

HUB_LEASES = Table(
    "hub_leases",
    (
        Column("id", "text", not_null=True),
        Column("token_id", "text", not_null=True),
        Column("request_id", "text"),
        Column("holder", "text", not_null=True),
        Column("cluster", "text", not_null=True),
        Column("node", "text", not_null=True),
        Column("gpus", "text", not_null=True),
        Column("milli_per_gpu", "int", not_null=True),
        Column("memory_budget_mib", "int"),
        Column("cpu_milli", "int", not_null=True),
        Column("memory_mib", "int", not_null=True),
        Column("pool", "text"),
        Column("group_name", "text"),
        Column("priority", "int", not_null=True),
        Column("request", "text", not_null=True),
        Column("created", "real", not_null=True),
        Column("expires", "real", not_null=True),
        Column("state", "text", not_null=True),
        Column("ended", "real"),
        Column("end_reason", "text"),
        Column("renewals", "int", not_null=True),
    ),
    primary_key=("id",),
    indexes=(Index(("state",)), Index(("token_id", "request_id")), Index(("cluster", "node"))),
)
"""GPU leases a hub handed out (schema version 5): where (node, GPU uuids as JSON, milli-GPUs
of each), for whom (token, holder, group charged), until when, and how each ended
(``released``, ``expired``, ``reclaimed``); ``request`` is the request as JSON."""

HUB_GROUPS = Table(
    "hub_groups",
    (
        Column("name", "text", not_null=True),
        Column("description", "text"),
        Column("max_members", "int", not_null=True),
        Column("pools", "text", not_null=True),
        Column("max_gpus", "real"),
        Column("max_queued", "int"),
        Column("created", "real", not_null=True),
    ),
    primary_key=("name",),
)
"""Swarm groups (schema version 5): members are tokens (their ``groups_json``); ``pools``
(JSON, empty: every pool) is where members may allocate, ``max_gpus`` / ``max_queued`` the
group's quotas."""

HUB_POOLS = Table(
    "hub_pools",
    (
        Column("name", "text", not_null=True),
        Column("description", "text"),
        Column("created", "real", not_null=True),
    ),
    primary_key=("name",),
)
"""Named resource pools (schema version 5); a node's pool is ``hub_nodes.pool``."""

HUB_SETTINGS = Table(
    "hub_settings",
    (
        Column("name", "text", not_null=True),
        Column("value", "text", not_null=True),
        Column("updated", "real", not_null=True),
    ),
    primary_key=("name",),
)
"""What a serving hub was started with (schema version 8), e.g. ``unreachable_after_s``, so
that commands reading the same store offline (``gpufleet hub nodes --db``) judge health as the
hub does."""

HUB_TASKS = Table(
    "hub_tasks",
    (
        Column("id", "text", not_null=True),
        Column("token_id", "text", not_null=True),
        Column("holder", "text", not_null=True),
        Column("name", "text", not_null=True),
        Column("command", "text", not_null=True),
        Column("request", "text", not_null=True),
        Column("parts", "int", not_null=True),
        Column("priority", "int", not_null=True),
        Column("group_name", "text"),
        Column("created", "real", not_null=True),
        Column("timeout_s", "real"),
        Column("env", "text"),
    ),
    primary_key=("id",),
    indexes=(Index(("created",)),),
)
"""Tasks submitted to a hub (schema version 6): the command (JSON argv), the lease request
each part is placed with (JSON), how many parts, priority, the group charged."""

HUB_TASK_PARTS = Table(
    "hub_task_parts",
    (
        Column("task_id", "text", not_null=True),
        Column("part", "int", not_null=True),
        Column("state", "text", not_null=True),
        Column("attempts", "int", not_null=True),
        Column("cluster", "text"),
        Column("node", "text"),
        Column("lease_id", "text"),
        Column("placed", "real"),
        Column("started", "real"),
        Column("ended", "real"),
        Column("exit_code", "int"),
        Column("output", "text", not_null=True),
        Column("error", "text"),
    ),
    primary_key=("task_id", "part"),
    indexes=(Index(("state",)),),
)
"""Each part of a task (schema version 6): where it was placed (node, lease), when it ran,
its exit code and the tail of its output."""
