"""How a table is described: columns with their merge rule, indexes, the SQL dialect.

:mod:`gpufleet.store.schema` (the agent's tables, migrations, generated SQL) and
:mod:`gpufleet.store.hub_tables` (the hub's tables) are written in these records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Dialect(enum.StrEnum):
    """SQL flavour a statement is generated for."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"


class Merge(enum.Enum):
    """How a stored value combines with an incoming one for the same key."""

    KEY = "key"
    ADD = "add"
    MIN = "min"
    MAX = "max"
    LATEST = "latest"
    """Incoming value when not NULL, else the stored one (labels)."""
    NEWEST = "newest"
    """Value of whichever row has the later ``last_seen`` (inventory facts: a backfill of
    old snapshots must not overwrite what the newest sample says), NULL never wins."""


@dataclass(frozen=True, slots=True)
class Column:
    """A column: name, storage kind (``real``, ``int``, ``text``) and merge rule."""

    name: str
    kind: str
    merge: Merge = Merge.KEY
    not_null: bool = False


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index; ``dialects`` limits it to some backends."""

    columns: tuple[str, ...]
    dialects: tuple[Dialect, ...] = (Dialect.SQLITE, Dialect.POSTGRES)


@dataclass(frozen=True, slots=True)
class Table:
    """A table: its columns, primary key (None for append-only tables) and indexes."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] | None = None
    indexes: tuple[Index, ...] = ()
    clustered: bool = False
    """Stored in primary-key order (SQLite ``WITHOUT ROWID``): one B-tree instead of two."""

    @property
    def keyed_by_subject(self) -> bool:
        """Whether the key starts with the subject (cluster, node...) rather than time."""
        return self.primary_key is not None and self.primary_key[0] == "cluster"

    @property
    def column_names(self) -> tuple[str, ...]:
        """Names in storage order (the order rows are built in)."""
        return tuple(c.name for c in self.columns)


def key_columns(*names: str) -> tuple[Column, ...]:
    """Key columns: NOT NULL, REAL for times (``ts``, ``bucket``, ``hour``), else TEXT."""
    times = ("ts", "bucket", "hour")
    return tuple(Column(n, "real" if n in times else "text", not_null=True) for n in names)


def stat_columns(metrics: tuple[str, ...]) -> tuple[Column, ...]:
    """A rollup's sum, weight, min and max columns of each metric, with their merge rules."""
    # <m>_sum is value x seconds and <m>_wt the seconds with a value, so mean = sum / wt
    # stays exact however many buckets are merged, even when some readings are missing.
    # Grouped by statistic (all sums, all weights, all mins, all maxes) so a sample's
    # readings tuple can be spliced in as the min and max groups unchanged.
    return (
        *(Column(f"{m}_sum", "real", Merge.ADD, not_null=True) for m in metrics),
        *(Column(f"{m}_wt", "real", Merge.ADD, not_null=True) for m in metrics),
        *(Column(f"{m}_min", "real", Merge.MIN) for m in metrics),
        *(Column(f"{m}_max", "real", Merge.MAX) for m in metrics),
    )


def rollup_head() -> tuple[Column, ...]:
    """A rollup row's sample count and seconds covered."""
    return (
        Column("n", "int", Merge.ADD, not_null=True),
        Column("seconds", "real", Merge.ADD, not_null=True),
    )
