"""Tables, columns and forward migrations shared by the SQLite and PostgreSQL backends.

Every table is described once as a list of :class:`Column` records; the DDL of both dialects
and the ``ON CONFLICT DO UPDATE`` clauses of the rollup upserts are generated from them, so
a column added here reaches both backends and the merge rule travels with the column.

Times are epoch seconds in REAL / DOUBLE PRECISION columns. Two names differ from the
vocabulary because they are reserved words in SQL: a GPU's ``index`` is ``gpu_index`` and a
workload's ``user`` is ``user_name``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpufleet.store.base import GPU_METRICS, SYSTEM_METRICS, UTIL_HIST_BINS
from gpufleet.store.hub_tables import (
    HUB_BATCHES,
    HUB_GROUPS,
    HUB_LEASES,
    HUB_NODES,
    HUB_POOLS,
    HUB_SETTINGS,
    HUB_TASK_PARTS,
    HUB_TASKS,
    HUB_TOKENS,
)
from gpufleet.store.schema_model import (
    Column,
    Dialect,
    Index,
    Merge,
    Table,
    key_columns,
    rollup_head,
    stat_columns,
)

SCHEMA_VERSION_TABLE = "gpufleet_schema"

SYSTEM_STORED_METRICS: tuple[str, ...] = (*SYSTEM_METRICS, "disk_max_used_pct")
"""SYSTEM_METRICS plus the fullest filesystem's used percentage (a useful host series)."""

HIST_COLUMNS: tuple[str, ...] = tuple(f"util_hist_{i:02d}" for i in range(UTIL_HIST_BINS))
"""One column per utilization bin: summing a column is plain SQL in both dialects."""


# Raw and 1-minute tables are keyed time first: a batch appends at the right edge of every
# index (cheap ingest), and their reads (a window over a cluster, retention) are one range
# scan. A hub on PostgreSQL also serves single-GPU drill-downs over hundreds of GPUs, so it
# gets a per-GPU index too; an agent's SQLite file holds a handful of GPUs and skips it.
_PG_PER_GPU_TS = Index(("cluster", "node", "uuid", "ts"), dialects=(Dialect.POSTGRES,))
_PG_PER_GPU_BUCKET = Index(("cluster", "node", "uuid", "bucket"), dialects=(Dialect.POSTGRES,))

GPUS = Table(
    "gpus",
    (
        *key_columns("cluster", "node", "uuid"),
        Column("gpu_index", "int", Merge.NEWEST, not_null=True),
        Column("name", "text", Merge.NEWEST),
        Column("mem_total_bytes", "real", Merge.NEWEST),
        Column("first_seen", "real", Merge.MIN, not_null=True),
        Column("last_seen", "real", Merge.MAX, not_null=True),
    ),
    primary_key=("cluster", "node", "uuid"),
)

NODES = Table(
    "nodes",
    (
        *key_columns("cluster", "node"),
        Column("first_seen", "real", Merge.MIN, not_null=True),
        Column("last_seen", "real", Merge.MAX, not_null=True),
    ),
    primary_key=("cluster", "node"),
)
"""Hosts seen (with or without GPUs): the subjects of system series and retention."""

GPU_RAW = Table(
    "gpu_raw",
    (
        *key_columns("ts", "cluster", "node", "uuid"),
        Column("dt_s", "real", not_null=True),
        *(Column(m, "real") for m in GPU_METRICS),
        Column("n_processes", "int", not_null=True),
        Column("allocated", "int", not_null=True),
        Column("lost", "int", not_null=True),
    ),
    indexes=(Index(("ts", "cluster", "node", "uuid")), _PG_PER_GPU_TS),
)

_GPU_ROLLUP_COLUMNS: tuple[Column, ...] = (
    *key_columns("bucket", "cluster", "node", "uuid"),
    *rollup_head(),
    *stat_columns(GPU_METRICS),
    Column("allocated_s", "real", Merge.ADD, not_null=True),
    Column("idle_s", "real", Merge.ADD, not_null=True),
    Column("idle_allocated_s", "real", Merge.ADD, not_null=True),
    Column("throttled_s", "real", Merge.ADD, not_null=True),
    *(Column(h, "real", Merge.ADD, not_null=True) for h in HIST_COLUMNS),
)
# util_max and mem_used_max are util_gpu_pct_max and mem_used_bytes_max: not stored twice.
GPU_1M = Table(
    "gpu_1m",
    _GPU_ROLLUP_COLUMNS,
    primary_key=("bucket", "cluster", "node", "uuid"),
    indexes=(_PG_PER_GPU_BUCKET,),
)
# Hourly tables take 1/60 of the writes and serve the long-range reads (30 days of a
# cluster, one GPU over a year), so they are keyed per subject first instead.
GPU_1H = Table(
    "gpu_1h",
    _GPU_ROLLUP_COLUMNS,
    primary_key=("cluster", "node", "uuid", "bucket"),
    indexes=(Index(("bucket",)),),
    clustered=True,
)

SYSTEM_RAW = Table(
    "system_raw",
    (
        *key_columns("ts", "cluster", "node"),
        Column("dt_s", "real", not_null=True),
        *(Column(m, "real") for m in SYSTEM_STORED_METRICS),
    ),
    indexes=(Index(("ts", "cluster", "node")),),
)

_SYSTEM_ROLLUP_COLUMNS: tuple[Column, ...] = (
    *key_columns("bucket", "cluster", "node"),
    *rollup_head(),
    *stat_columns(SYSTEM_STORED_METRICS),
)
SYSTEM_1M = Table("system_1m", _SYSTEM_ROLLUP_COLUMNS, primary_key=("bucket", "cluster", "node"))
SYSTEM_1H = Table(
    "system_1h",
    _SYSTEM_ROLLUP_COLUMNS,
    primary_key=("cluster", "node", "bucket"),
    indexes=(Index(("bucket",)),),
    clustered=True,
)

WORKLOAD_1H = Table(
    "workload_1h",
    (
        *key_columns("hour", "cluster", "node", "uuid", "namespace", "user_name", "workload"),
        Column("workload_kind", "text", Merge.LATEST),
        Column("gpu_s", "real", Merge.ADD, not_null=True),
        Column("busy_gpu_s", "real", Merge.ADD, not_null=True),
        Column("util_sum", "real", Merge.ADD, not_null=True),
        Column("mem_bytes_s", "real", Merge.ADD, not_null=True),
        Column("mem_peak_bytes", "real", Merge.MAX),
        Column("util_peak_pct", "real", Merge.MAX),
        Column("samples", "int", Merge.ADD, not_null=True),
    ),
    # hour first: every workload query and the retention delete are ranges of hours.
    primary_key=("hour", "cluster", "node", "uuid", "namespace", "user_name", "workload"),
)

ALERTS = Table(
    "alerts",
    (
        Column("id", "id"),
        Column("cluster", "text", not_null=True),
        Column("node", "text", not_null=True),
        Column("rule", "text", not_null=True),
        Column("severity", "text", not_null=True),
        Column("subject", "text", not_null=True),
        Column("message", "text", not_null=True),
        Column("value", "real"),
        Column("threshold", "real"),
        Column("started", "real", not_null=True),
        Column("fired", "real", not_null=True),
        Column("resolved", "real"),
    ),
    indexes=(Index(("fired",)), Index(("resolved",))),
)

EXECUTIONS = Table(
    "executions",
    (
        Column("id", "id"),
        Column("recommendation_id", "text", not_null=True),
        Column("kind", "text", not_null=True),
        Column("action_type", "text", not_null=True),
        Column("action_params", "text", not_null=True),
        Column("target", "text", not_null=True),
        Column("title", "text", not_null=True),
        Column("requested_by", "text", not_null=True),
        Column("requested", "real", not_null=True),
        Column("dry_run", "int", not_null=True),
        Column("executor", "text", not_null=True),
        Column("status", "text", not_null=True),
        Column("detail", "text", not_null=True),
        Column("finished", "real"),
        Column("expected_monthly_saving_usd", "real", not_null=True),
    ),
    indexes=(Index(("requested",)), Index(("recommendation_id", "requested"))),
)
"""The execution log (schema version 2); ``action_params`` and ``target`` are JSON text."""

CHAT_TURNS = Table(
    "chat_turns",
    (
        Column("session_id", "text", not_null=True),
        Column("seq", "int", not_null=True),
        Column("ts", "real", not_null=True),
        Column("cluster", "text"),
        Column("query", "text", not_null=True),
        Column("reply", "text", not_null=True),
        Column("state", "text", not_null=True),
    ),
    primary_key=("session_id", "seq"),
    indexes=(Index(("ts",)),),
)
"""The analyst's conversations, one row per turn (schema version 3); a session is its
turns. ``reply`` (the answer as served) and ``state`` (what the next turn needs to follow up)
are JSON text."""

KVCACHE_SCRAPES = Table(
    "kvcache_scrapes",
    (
        Column("id", "id"),
        Column("ts", "real", not_null=True),
        Column("source", "text", not_null=True),
        Column("kind", "text", not_null=True),
        Column("ok", "int", not_null=True),
        Column("error", "text"),
        Column("payload", "text", not_null=True),
    ),
    indexes=(Index(("ts",)), Index(("source", "ts"))),
)
"""Scrapes of vLLM / LMCache ``/metrics`` (schema version 9): when, from where, whether it
answered, and what it said as JSON (counters and gauges summed over engines, histogram buckets,
the names and models seen), so hit rates and TTFT percentiles can be computed later from
counter deltas between any two scrapes."""

VERSION_1_TABLES: tuple[Table, ...] = (
    GPUS,
    NODES,
    GPU_RAW,
    GPU_1M,
    GPU_1H,
    SYSTEM_RAW,
    SYSTEM_1M,
    SYSTEM_1H,
    WORKLOAD_1H,
    ALERTS,
)
"""What migration 1 creates. Frozen: a later table comes with its own migration."""

TABLES: tuple[Table, ...] = (*VERSION_1_TABLES, EXECUTIONS, CHAT_TURNS)
"""Every table of the latest schema."""


@dataclass(frozen=True, slots=True)
class OneSampleRollup:
    """How a rollup row of exactly one sample is written: its readings only.

    A rollup row carries sum, weight, min and max per metric, flags and the utilization
    histogram (70 values for a GPU). A bucket holding one sample (every 1-minute bucket at
    one sample a minute) is fully determined by about 20 of them, so only those are sent and
    the ``INSERT`` derives the rest with :attr:`expressions`. Binding parameters is most of
    what SQLite spends on a row, so this more than halves the cost of such rows; on
    PostgreSQL it shrinks what is copied per row the same way. The stored row, and its
    merge into a stored bucket, are exactly those of the general path.
    """

    target: Table
    columns: tuple[Column, ...]
    """What a row carries, in order: the target's key columns first."""
    expressions: tuple[str, ...]
    """Per column of ``target``: SQL over the carried columns, written ``{name}``."""

    @property
    def name(self) -> str:
        """Name of the PostgreSQL staging table."""
        return f"one_{self.target.name}"

    def carried(self, missing: Sequence[str] = ()) -> tuple[Column, ...]:
        """:attr:`columns` without the metrics in ``missing`` (absent from every row)."""
        return tuple(c for c in self.columns if c.name not in missing)

    def render(self, ref: Callable[[str], str]) -> list[str]:
        """:attr:`expressions` with each carried column written as ``ref(name)``."""
        refs = {c.name: ref(c.name) for c in self.columns}
        return [e.format_map(refs) for e in self.expressions]


_ZERO = "0.0"


def _one_stats(metrics: tuple[str, ...]) -> tuple[str, ...]:
    # Same order as _stat_columns: sums, weights, mins, maxes. A missing reading adds 0 to
    # the sum and the weight and leaves min / max NULL, as in the general path.
    return (
        *(f"COALESCE({{{m}}} * {{dt_s}}, {_ZERO})" for m in metrics),
        *(f"CASE WHEN {{{m}}} IS NULL THEN {_ZERO} ELSE {{dt_s}} END" for m in metrics),
        *(f"{{{m}}}" for m in metrics),
        *(f"{{{m}}}" for m in metrics),
    )


def _one_gpu(target: Table) -> OneSampleRollup:
    key = ("bucket", "cluster", "node", "uuid")
    columns = (
        *key_columns(*key),
        Column("dt_s", "real", not_null=True),
        *(Column(m, "real") for m in GPU_METRICS),
        Column("allocated", "int", not_null=True),
        Column("idle", "int", not_null=True),
        Column("throttled", "int", not_null=True),
        Column("hist_bin", "int", not_null=True),
    )
    expressions = (
        *(f"{{{k}}}" for k in key),
        "1",
        "{dt_s}",
        *_one_stats(GPU_METRICS),
        "{allocated} * {dt_s}",
        "{idle} * {dt_s}",
        "{allocated} * {idle} * {dt_s}",
        "{throttled} * {dt_s}",
        *(
            f"CASE WHEN {{hist_bin}} = {i} THEN {{dt_s}} ELSE {_ZERO} END"
            for i in range(UTIL_HIST_BINS)
        ),
    )
    assert len(expressions) == len(target.columns), target.name
    return OneSampleRollup(target, columns, expressions)


def _one_system(target: Table) -> OneSampleRollup:
    key = ("bucket", "cluster", "node")
    columns = (
        *key_columns(*key),
        Column("dt_s", "real", not_null=True),
        *(Column(m, "real") for m in SYSTEM_STORED_METRICS),
    )
    expressions = (
        *(f"{{{k}}}" for k in key),
        "1",
        "{dt_s}",
        *_one_stats(SYSTEM_STORED_METRICS),
    )
    assert len(expressions) == len(target.columns), target.name
    return OneSampleRollup(target, columns, expressions)


GPU_1M_ONE = _one_gpu(GPU_1M)
GPU_1H_ONE = _one_gpu(GPU_1H)
SYSTEM_1M_ONE = _one_system(SYSTEM_1M)
SYSTEM_1H_ONE = _one_system(SYSTEM_1H)
ONE_SAMPLE_ROLLUPS: tuple[OneSampleRollup, ...] = (
    GPU_1M_ONE,
    GPU_1H_ONE,
    SYSTEM_1M_ONE,
    SYSTEM_1H_ONE,
)
"""Rollup rows of one sample, written as readings (see :class:`OneSampleRollup`)."""

_TYPES = {
    Dialect.SQLITE: {"real": "REAL", "int": "INTEGER", "text": "TEXT", "id": "INTEGER PRIMARY KEY"},
    Dialect.POSTGRES: {
        "real": "DOUBLE PRECISION",
        "int": "BIGINT",
        "text": "TEXT",
        "id": "BIGSERIAL PRIMARY KEY",
    },
}


def create_table_sql(table: Table, dialect: Dialect) -> list[str]:
    """``CREATE TABLE`` and ``CREATE INDEX`` statements for ``table``."""
    types = _TYPES[dialect]
    defs = [f"{c.name} {types[c.kind]}{' NOT NULL' if c.not_null else ''}" for c in table.columns]
    if table.primary_key:
        defs.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
    clustered = " WITHOUT ROWID" if table.clustered and dialect is Dialect.SQLITE else ""
    stmts = [f"CREATE TABLE IF NOT EXISTS {table.name} ({', '.join(defs)}){clustered}"]
    for index in table.indexes:
        if dialect not in index.dialects:
            continue
        cols = index.columns
        stmts.append(
            f"CREATE INDEX IF NOT EXISTS {table.name}_{'_'.join(cols)} "
            f"ON {table.name} ({', '.join(cols)})"
        )
    return stmts


def _merge_expr(table: str, col: Column, dialect: Dialect) -> str:
    old, new = f"{table}.{col.name}", f"excluded.{col.name}"
    if col.merge is Merge.ADD:
        return f"{old} + {new}"
    if col.merge is Merge.LATEST:
        return f"COALESCE({new}, {old})"
    if col.merge is Merge.NEWEST:
        return (
            f"CASE WHEN excluded.last_seen >= {table}.last_seen THEN COALESCE({new}, {old}) "
            f"ELSE COALESCE({old}, {new}) END"
        )
    if dialect is Dialect.POSTGRES:
        # LEAST / GREATEST ignore NULL arguments, which is the merge rule we want.
        return f"{'LEAST' if col.merge is Merge.MIN else 'GREATEST'}({old}, {new})"
    # SQLite's multi-argument min()/max() return NULL when any argument is NULL; the
    # COALESCE falls back to whichever side is known.
    fn = "min" if col.merge is Merge.MIN else "max"
    return f"COALESCE({fn}({old}, {new}), {old}, {new})"


def upsert_set_clause(table: Table, dialect: Dialect) -> str:
    """``ON CONFLICT (...) DO UPDATE SET ...`` merging an incoming row into a stored one."""
    assert table.primary_key is not None, f"{table.name} has no key to upsert on"
    sets = [
        f"{c.name} = {_merge_expr(table.name, c, dialect)}"
        for c in table.columns
        if c.merge is not Merge.KEY
    ]
    return f"ON CONFLICT ({', '.join(table.primary_key)}) DO UPDATE SET {', '.join(sets)}"


def present_columns(table: Table, missing: Sequence[str] = ()) -> tuple[str, ...]:
    """Column names of ``table`` in storage order, without those in ``missing``."""
    return tuple(n for n in table.column_names if n not in missing)


def insert_sql(
    table: Table, marker: str = "?", *, missing: Sequence[str] = (), rows: int = 1
) -> str:
    """Plain ``INSERT`` of ``rows`` rows of every column but those in ``missing`` (left NULL),
    with ``marker`` as the parameter placeholder."""
    names = present_columns(table, missing)
    one = f"({', '.join(marker for _ in names)})"
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES {', '.join([one] * rows)}"


def upsert_sql(table: Table, dialect: Dialect, marker: str = "?") -> str:
    """``INSERT ... ON CONFLICT DO UPDATE`` of every column."""
    return f"{insert_sql(table, marker)} {upsert_set_clause(table, dialect)}"


def one_sample_upsert_sql(rollup: OneSampleRollup, missing: Sequence[str] = ()) -> str:
    """SQLite: ``INSERT`` of one carried row (``?1``, ``?2``... in carried order, without
    the metrics in ``missing``, which read as NULL), merged into a stored bucket."""
    position = {c.name: i for i, c in enumerate(rollup.carried(missing), 1)}
    values = rollup.render(lambda name: f"?{position[name]}" if name in position else "NULL")
    target = rollup.target
    return (
        f"INSERT INTO {target.name} ({', '.join(target.column_names)}) "
        f"VALUES ({', '.join(values)}) {upsert_set_clause(target, Dialect.SQLITE)}"
    )


def one_sample_merge_sql(rollup: OneSampleRollup, source: str) -> str:
    """PostgreSQL: rows carried in table ``source`` expanded and merged into the target.

    Sorted by key so that concurrent writers lock rows in the same order (no deadlock).
    """
    target = rollup.target
    assert target.primary_key is not None
    return (
        f"INSERT INTO {target.name} ({', '.join(target.column_names)}) "
        f"SELECT {', '.join(rollup.render(str))} FROM {source} "
        f"ORDER BY {', '.join(target.primary_key)} {upsert_set_clause(target, Dialect.POSTGRES)}"
    )


@dataclass(frozen=True, slots=True)
class Migration:
    """One forward step of the schema."""

    version: int
    description: str
    statements: Callable[[Dialect], list[str]]


def _initial(dialect: Dialect) -> list[str]:
    return [stmt for table in VERSION_1_TABLES for stmt in create_table_sql(table, dialect)]


def _execution_log(dialect: Dialect) -> list[str]:
    return create_table_sql(EXECUTIONS, dialect)


def _chat_turns(dialect: Dialect) -> list[str]:
    return create_table_sql(CHAT_TURNS, dialect)


def _hub_registry(dialect: Dialect) -> list[str]:
    return [
        stmt
        for table in (HUB_NODES, HUB_TOKENS, HUB_BATCHES)
        for stmt in create_table_sql(table, dialect)
    ]


def _hub_allocation(dialect: Dialect) -> list[str]:
    return [
        "ALTER TABLE hub_nodes ADD COLUMN inventory TEXT",
        "ALTER TABLE hub_nodes ADD COLUMN agent_leases TEXT",
        *(
            stmt
            for table in (HUB_LEASES, HUB_GROUPS, HUB_POOLS)
            for stmt in create_table_sql(table, dialect)
        ),
    ]


def _hub_tasks(dialect: Dialect) -> list[str]:
    return [
        stmt for table in (HUB_TASKS, HUB_TASK_PARTS) for stmt in create_table_sql(table, dialect)
    ]


def _hub_engines(dialect: Dialect) -> list[str]:
    del dialect
    return [
        "ALTER TABLE hub_tasks ADD COLUMN engine TEXT",
        "ALTER TABLE hub_task_parts ADD COLUMN engine_id TEXT",
    ]


def _hub_settings(dialect: Dialect) -> list[str]:
    return create_table_sql(HUB_SETTINGS, dialect)


def _kvcache_scrapes(dialect: Dialect) -> list[str]:
    return create_table_sql(KVCACHE_SCRAPES, dialect)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial),
    Migration(2, "execution log", _execution_log),
    Migration(3, "analyst chat sessions", _chat_turns),
    Migration(4, "hub registry: nodes, tokens, ingested batches", _hub_registry),
    Migration(5, "hub allocation: node inventory, leases, groups, pools", _hub_allocation),
    Migration(6, "hub task queue: tasks and their parts", _hub_tasks),
    Migration(7, "hub scale-out: a task's engine, a part's id there", _hub_engines),
    Migration(8, "hub settings: what a serving hub was started with", _hub_settings),
    Migration(9, "KV-cache scrapes: vLLM and LMCache metrics", _kvcache_scrapes),
)
"""Applied in order; a database records the highest version it has reached."""

LATEST_VERSION = MIGRATIONS[-1].version


def version_table_sql(dialect: Dialect) -> str:
    """``CREATE TABLE`` of the table that records applied migrations."""
    real = _TYPES[dialect]["real"]
    return (
        f"CREATE TABLE IF NOT EXISTS {SCHEMA_VERSION_TABLE} "
        f"(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_s {real} NOT NULL)"
    )


def pending(current: int) -> list[Migration]:
    """Migrations newer than ``current``, oldest first."""
    return [m for m in MIGRATIONS if m.version > current]


TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
