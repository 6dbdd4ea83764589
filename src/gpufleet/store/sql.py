"""The part of the Store that is the same SQL on SQLite and PostgreSQL.

A backend supplies connections, error translation and bulk-write primitives (a :class:`Tx`);
this base class supplies schema migration, the write path of ``write_snapshots``, retention
and health; :class:`~gpufleet.store.queries.SqlReads` supplies the queries and
:class:`~gpufleet.store.sum_queries.SqlUsageSums` the window sums of ``UsageSumReads``.
Statements are written with ``?`` placeholders; the PostgreSQL backend rewrites them.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol, Self

from gpufleet.model import Alert, ChatTurn, Execution, Snapshot
from gpufleet.store.base import (
    DEFAULT_IDLE_THRESHOLD_PCT,
    ChatTurnConflictError,
    Retention,
    StoreError,
    StoreHealth,
    StoreUnavailable,
)
from gpufleet.store.kvcache_records import KvCacheRecords
from gpufleet.store.record_queries import ALERT_COLUMNS, EXECUTION_COLUMNS, Row
from gpufleet.store.rollup import build_batch
from gpufleet.store.schema import (
    ALERTS,
    GPU_1H,
    GPU_1H_ONE,
    GPU_1M,
    GPU_1M_ONE,
    GPU_RAW,
    GPUS,
    LATEST_VERSION,
    NODES,
    SCHEMA_VERSION_TABLE,
    SYSTEM_1H,
    SYSTEM_1H_ONE,
    SYSTEM_1M,
    SYSTEM_1M_ONE,
    SYSTEM_RAW,
    WORKLOAD_1H,
    OneSampleRollup,
    pending,
    version_table_sql,
)
from gpufleet.store.schema_model import Dialect, Table
from gpufleet.store.sum_queries import SqlUsageSums
from gpufleet.store.task_records import TaskRecords

Clock = Callable[[], float]


def _json_text(value: Mapping[str, object]) -> str:
    """A mapping column as JSON text; values JSON cannot hold are written as strings."""
    return json.dumps(dict(value), sort_keys=True, default=str)


DEFAULT_RETENTION = Retention()
"""Retention when none is given (Retention is frozen, so one shared default is safe)."""

DELETE_CHUNK_ROWS = 20_000
"""Rows deleted per retention transaction, so a writer never waits long behind retention."""


class Tx(Protocol):
    """One open write transaction of a backend."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement and return its rows."""
        ...

    def insert_rows(self, table: Table, rows: Sequence[Row], missing: Sequence[str] = ()) -> None:
        """Append rows (every column but those in ``missing``, which stay NULL; storage
        order) to an append-only table."""
        ...

    def upsert_rows(self, table: Table, rows: Sequence[Row]) -> None:
        """Insert rows, merging each into a stored row with the same key (schema merge rules)."""
        ...

    def upsert_one_sample_rows(
        self, rollup: OneSampleRollup, rows: Sequence[Row], missing: Sequence[str] = ()
    ) -> None:
        """As :meth:`upsert_rows` into ``rollup.target``, rows in the carried layout without
        the metrics in ``missing`` (which read as NULL)."""
        ...


class SqlStore(SqlUsageSums, TaskRecords, KvCacheRecords, ABC):
    """Store protocol implemented once over a backend's :class:`Tx` and read primitive.

    Thread-safe: backends guard their write and read connections with separate locks, so a
    reader never waits for a writer's transaction to finish.
    """

    backend: str = ""
    dialect: Dialect
    retention: Retention

    def __init__(
        self,
        *,
        location: str,
        retention: Retention,
        idle_threshold_pct: float,
        clock: Clock,
    ) -> None:
        self.retention = retention
        self.idle_threshold_pct = idle_threshold_pct
        self.location = location
        self._clock = clock
        self._write_error: str | None = None
        self._state_lock = threading.Lock()

    # ---- backend hooks -------------------------------------------------------------

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Tx]:
        """A write transaction; driver errors leave it as StoreUnavailable / StoreError."""

    @abstractmethod
    def _chunk_delete_sql(self, table: Table, where: str) -> str:
        """``DELETE`` of at most ``?`` (last parameter) rows of ``table`` matching ``where``."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections."""

    def _not_writable_reason(self) -> str | None:
        """Why writes are refused before trying (a read-only open), else None."""
        return None

    def _after_explicit_alert_id(self, tx: Tx) -> None:
        """Hook after an alert was saved with a caller-chosen id (sequence upkeep)."""
        del tx

    # ---- schema --------------------------------------------------------------------

    def _migrate(self, tx: Tx) -> None:
        """Bring the schema to LATEST_VERSION inside ``tx``."""
        tx.execute(version_table_sql(self.dialect))
        current = tx.fetch(f"SELECT max(version) FROM {SCHEMA_VERSION_TABLE}")[0][0] or 0
        if current > LATEST_VERSION:
            raise StoreError(
                f"{self.location} has schema version {current}, newer than this gpufleet "
                f"understands ({LATEST_VERSION}): upgrade gpufleet"
            )
        for migration in pending(current):
            for stmt in migration.statements(self.dialect):
                tx.execute(stmt)
            tx.execute(
                f"INSERT INTO {SCHEMA_VERSION_TABLE} (version, description, applied_s) "
                "VALUES (?, ?, ?)",
                (migration.version, migration.description, time.time()),
            )

    def schema_version(self) -> int:
        """Highest migration applied to this database."""
        return int(self._read(f"SELECT max(version) FROM {SCHEMA_VERSION_TABLE}")[0][0] or 0)

    # ---- writes --------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[Tx]:
        """A write transaction that records its failure or success for :meth:`health`."""
        reason = self._not_writable_reason()
        if reason is not None:
            self._set_write_error(reason)
            raise StoreUnavailable(reason)
        try:
            with self._transaction() as tx:
                yield tx
        except StoreUnavailable as exc:
            self._set_write_error(str(exc))
            raise
        self._set_write_error(None)

    def _set_write_error(self, error: str | None) -> None:
        with self._state_lock:
            self._write_error = error

    def write_snapshots(self, snapshots: Sequence[Snapshot], *, keep_raw: bool = True) -> None:
        """Write a batch atomically: raw rows, 1m/1h rollups, workload usage, inventory.

        Rollups are computed per batch (see :mod:`gpufleet.store.rollup` for the rules) and
        merged into stored buckets, so a bucket written in several batches ends up equal to
        the bucket written at once. ``keep_raw=False`` skips raw rows (a backfill older
        than raw retention).

        Raises:
            StoreUnavailable: the disk is full or read-only, or the database is down; nothing
                of the batch is stored and the caller may retry it.
        """
        if not snapshots:
            return
        with self._writing() as tx:
            self._write_batch(tx, snapshots, keep_raw=keep_raw)

    def _write_batch(self, tx: Tx, snapshots: Sequence[Snapshot], *, keep_raw: bool = True) -> None:
        """The rows of ``snapshots`` written inside ``tx`` (see :meth:`write_snapshots`)."""
        if not snapshots:
            return
        batch = build_batch(
            snapshots, idle_threshold_pct=self.idle_threshold_pct, keep_raw=keep_raw
        )
        for missing, rows in batch.gpu_raw.items():
            tx.insert_rows(GPU_RAW, rows, missing)
        for missing, rows in batch.system_raw.items():
            tx.insert_rows(SYSTEM_RAW, rows, missing)
        # A key is in one list only: a bucket has one sample of the batch or several.
        for rollup, one_rows in (
            (GPU_1M_ONE, batch.gpu_1m_one),
            (GPU_1H_ONE, batch.gpu_1h_one),
            (SYSTEM_1M_ONE, batch.system_1m_one),
            (SYSTEM_1H_ONE, batch.system_1h_one),
        ):
            for missing, rows in one_rows.items():
                tx.upsert_one_sample_rows(rollup, rows, missing)
        for table, rows in (
            (GPU_1M, batch.gpu_1m),
            (GPU_1H, batch.gpu_1h),
            (SYSTEM_1M, batch.system_1m),
            (SYSTEM_1H, batch.system_1h),
            (WORKLOAD_1H, batch.workload_1h),
            (GPUS, batch.gpus),
            (NODES, batch.nodes),
        ):
            if rows:
                tx.upsert_rows(table, rows)

    def save_alert(self, alert: Alert) -> Alert:
        """Insert (``id`` None) or update (by ``id``) an alert; returns it with its ``id``."""
        values = (
            alert.cluster,
            alert.node,
            alert.rule,
            alert.severity,
            alert.subject,
            alert.message,
            alert.value,
            alert.threshold,
            alert.started_s,
            alert.fired_s,
            alert.resolved_s,
        )
        cols = ALERT_COLUMNS.removeprefix("id, ")
        marks = ", ".join("?" for _ in values)
        with self._writing() as tx:
            if alert.id is None:
                new_id = tx.fetch(
                    f"INSERT INTO alerts ({cols}) VALUES ({marks}) RETURNING id", values
                )[0][0]
                return replace(alert, id=int(new_id))
            sets = ", ".join(f"{c} = excluded.{c}" for c in cols.split(", "))
            tx.execute(
                f"INSERT INTO alerts ({ALERT_COLUMNS}) VALUES (?, {marks}) "
                f"ON CONFLICT (id) DO UPDATE SET {sets}",
                (alert.id, *values),
            )
            self._after_explicit_alert_id(tx)
        return alert

    def save_execution(self, execution: Execution) -> Execution:
        """Insert (``id`` None) or update (by ``id``) an execution log entry; returns it
        with its ``id``.

        An ``id`` that is not stored yet is inserted as given (a log copied from another
        store); the PostgreSQL id sequence is then moved past it.
        """
        values = (
            execution.recommendation_id,
            execution.kind,
            execution.action_type,
            _json_text(execution.action_params),
            _json_text(execution.target),
            execution.title,
            execution.requested_by,
            execution.requested_s,
            int(execution.dry_run),
            execution.executor,
            execution.status,
            execution.detail,
            execution.finished_s,
            execution.expected_monthly_saving_usd,
        )
        cols = EXECUTION_COLUMNS.removeprefix("id, ").split(", ")
        marks = ", ".join("?" for _ in values)
        with self._writing() as tx:
            if execution.id is None:
                new_id = tx.fetch(
                    f"INSERT INTO executions ({', '.join(cols)}) VALUES ({marks}) RETURNING id",
                    values,
                )[0][0]
                return replace(execution, id=int(new_id))
            sets = ", ".join(f"{c} = ?" for c in cols)
            changed = tx.execute(
                f"UPDATE executions SET {sets} WHERE id = ?", (*values, execution.id)
            )
            if changed == 0:
                tx.execute(
                    f"INSERT INTO executions ({EXECUTION_COLUMNS}) VALUES (?, {marks})",
                    (execution.id, *values),
                )
                if self.dialect is Dialect.POSTGRES:
                    tx.fetch(
                        "SELECT setval(pg_get_serial_sequence('executions', 'id'), GREATEST("
                        "(SELECT max(id) FROM executions), "
                        "nextval(pg_get_serial_sequence('executions', 'id'))))"
                    )
        return execution

    def save_chat_turn(self, turn: ChatTurn) -> ChatTurn:
        """Append a turn to its session (see :meth:`Store.save_chat_turn`)."""
        values = (
            turn.session_id,
            int(turn.seq),
            turn.ts_s,
            turn.cluster,
            turn.query,
            _json_text(turn.reply),
            _json_text(turn.state),
        )
        with self._writing() as tx:
            taken = tx.fetch(
                "SELECT 1 FROM chat_turns WHERE session_id = ? AND seq = ?",
                (turn.session_id, int(turn.seq)),
            )
            if taken:
                raise ChatTurnConflictError(
                    f"session {turn.session_id!r} already has a turn {turn.seq}; "
                    "reload the session and ask again"
                )
            tx.execute(
                "INSERT INTO chat_turns (session_id, seq, ts, cluster, query, reply, state) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        return turn

    def delete_chat_session(self, session_id: str) -> int:
        """Delete a session's turns; how many were deleted."""
        with self._writing() as tx:
            return tx.execute("DELETE FROM chat_turns WHERE session_id = ?", (session_id,))

    def apply_retention(self, now_s: float) -> dict[str, int]:
        """Delete rows older than their resolution keeps; rows deleted per table.

        A row goes when its time (``ts``, bucket start, or hour) is before ``now_s`` minus
        the retention: raw tables keep ``raw_s``, 1-minute tables ``minute_s``, 1-hour tables
        and ``workload_1h`` ``hour_s``. Resolved alerts go ``hour_s`` after resolving (active
        ones stay), and GPUs / nodes not seen for ``hour_s`` leave the inventory. The
        execution log is an audit trail and is never deleted here. Deletes run
        in chunks, each its own transaction, so writers are never blocked for long.
        """
        ret = self.retention
        raw_cut, minute_cut, hour_cut = now_s - ret.raw_s, now_s - ret.minute_s, now_s - ret.hour_s
        deleted: dict[str, int] = {}
        # Every time column here leads its table's key or an index, so each chunk is a
        # range scan from the oldest row.
        for table, where, cutoff in (
            (GPU_RAW, "ts < ?", raw_cut),
            (GPU_1M, "bucket < ?", minute_cut),
            (GPU_1H, "bucket < ?", hour_cut),
            (SYSTEM_RAW, "ts < ?", raw_cut),
            (SYSTEM_1M, "bucket < ?", minute_cut),
            (SYSTEM_1H, "bucket < ?", hour_cut),
            (WORKLOAD_1H, "hour < ?", hour_cut),
            (ALERTS, "resolved IS NOT NULL AND resolved < ?", hour_cut),
            (GPUS, "last_seen < ?", hour_cut),
            (NODES, "last_seen < ?", hour_cut),
        ):
            deleted[table.name] = self._delete_chunked(table, where, (cutoff,))
        return deleted

    def _delete_chunked(self, table: Table, where: str, params: Sequence[Any]) -> int:
        sql = self._chunk_delete_sql(table, where)
        total = 0
        while True:
            with self._writing() as tx:
                n = tx.execute(sql, (*params, DELETE_CHUNK_ROWS))
            total += n
            if n < DELETE_CHUNK_ROWS:
                return total

    # ---- health and lifetime -------------------------------------------------------

    def health(self) -> StoreHealth:
        """Whether reads work now and whether the last write (or a read-only open) failed."""
        error: str | None = None
        readable = True
        try:
            self._read("SELECT 1")
        except StoreError as exc:
            readable, error = False, str(exc)
        with self._state_lock:
            write_error = self._write_error
        if write_error is None:
            write_error = self._not_writable_reason()
        return StoreHealth(
            # A store that cannot be read (database down) cannot be written either.
            writable=readable and write_error is None,
            readable=readable,
            error=write_error or error,
            backend=self.backend,
            location=self.location,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["DEFAULT_IDLE_THRESHOLD_PCT", "DEFAULT_RETENTION", "Clock", "Row", "SqlStore", "Tx"]
