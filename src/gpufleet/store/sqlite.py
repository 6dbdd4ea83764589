"""SQLite backend: the embedded default, one file, WAL mode.

Two connections: a writer (guarded by a lock, one transaction per write call) and a reader
(its own lock), so queries run while a batch is being written. Both are opened with
``check_same_thread=False`` because the agent writes from one thread and the API reads from
others; the locks make that safe.

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A transaction is appended to the
WAL and becomes visible at its commit record; SQLite does not fsync at every commit, only at
checkpoints. A killed process (``kill -9``) loses nothing that was committed, because the
committed frames are already in the OS page cache; a power loss or OS crash may lose the last
transactions but never corrupts the file, because a transaction whose commit frame did not
reach the disk is ignored on recovery. That is the trade a monitoring history wants: no
fsync per batch, no torn database.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import cache
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gpufleet.store.base import (
    DEFAULT_IDLE_THRESHOLD_PCT,
    Retention,
    StoreError,
    StoreUnavailable,
)
from gpufleet.store.schema import (
    SCHEMA_VERSION_TABLE,
    OneSampleRollup,
    insert_sql,
    one_sample_upsert_sql,
    upsert_sql,
)
from gpufleet.store.schema_model import Dialect, Table
from gpufleet.store.sql import DEFAULT_RETENTION, Clock, Row, SqlStore

_MAX_PAGES_DEFAULT = 4_294_967_294
"""SQLite's own default ``max_page_count``: no cap."""


@cache
def _insert(table: Table, missing: tuple[str, ...], rows: int) -> str:
    return insert_sql(table, missing=missing, rows=rows)


@cache
def _upsert(table: Table) -> str:
    return upsert_sql(table, Dialect.SQLITE)


@cache
def _upsert_one(rollup: OneSampleRollup, missing: tuple[str, ...]) -> str:
    return one_sample_upsert_sql(rollup, missing)


ROWS_PER_INSERT = 128
"""Rows per multi-row ``INSERT`` of raw rows: one statement step per 128 rows instead of
one per row saves about a third of the cost of a raw row (within SQLite's parameter limit)."""


def _primary_code(exc: sqlite3.Error) -> int:
    """The primary result code (extended codes carry detail in the high bits)."""
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    return -1 if code is None else code & 0xFF


class _SqliteTx:
    """A write transaction on the writer connection (prepared statements via executemany)."""

    __slots__ = ("conn", "max_params")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.max_params = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(sql, params).fetchall()

    def insert_rows(self, table: Table, rows: Sequence[Row], missing: Sequence[str] = ()) -> None:
        absent = tuple(missing)
        width = len(table.columns) - len(absent)
        per = max(1, min(ROWS_PER_INSERT, self.max_params // width))
        whole = len(rows) - len(rows) % per if per > 1 else 0
        if whole:
            sql = _insert(table, absent, per)
            execute = self.conn.execute
            for i in range(0, whole, per):
                execute(sql, tuple(chain.from_iterable(rows[i : i + per])))
        if whole < len(rows):
            self.conn.executemany(_insert(table, absent, 1), rows[whole:])

    def upsert_rows(self, table: Table, rows: Sequence[Row]) -> None:
        self.conn.executemany(_upsert(table), rows)

    def upsert_one_sample_rows(
        self, rollup: OneSampleRollup, rows: Sequence[Row], missing: Sequence[str] = ()
    ) -> None:
        self.conn.executemany(_upsert_one(rollup, tuple(missing)), rows)


class SQLiteStore(SqlStore):
    """The Store protocol over one SQLite file.

    Args:
        path: database file; its parent directories are created.
        retention: how long each resolution is kept.
        idle_threshold_pct: utilization below which a GPU-interval is idle.
        clock: current epoch seconds (for ``Resolution.AUTO``).
        busy_timeout_s: how long a write waits for another process's lock.

    Raises:
        StoreError: the path is a directory, not a gpufleet database, from a newer
            gpufleet, or cannot be created.

    A file that cannot be written (read-only file, directory or filesystem) is opened
    read-only: queries work, writes raise :class:`StoreUnavailable`, and writing resumes by
    itself once the file is writable again.
    """

    backend = "sqlite"
    dialect = Dialect.SQLITE

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: Retention = DEFAULT_RETENTION,
        idle_threshold_pct: float = DEFAULT_IDLE_THRESHOLD_PCT,
        clock: Clock = time.time,
        busy_timeout_s: float = 10.0,
    ) -> None:
        self.path = Path(path).expanduser()
        super().__init__(
            location=str(self.path),
            retention=retention,
            idle_threshold_pct=idle_threshold_pct,
            clock=clock,
        )
        self._busy_timeout_s = busy_timeout_s
        self._write_lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._readonly_reason: str | None = None
        self._closed = False
        self._open()

    # ---- opening -------------------------------------------------------------------

    def _open(self) -> None:
        path = self.path
        if path.is_dir():
            raise StoreError(
                f"{path} is a directory: give the database file, e.g. {path / 'gpufleet.db'}"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory {path.parent} for the database: {exc.strerror} "
                "(choose another path or create the directory)"
            ) from exc
        try:
            self._open_writer()
        except sqlite3.Error as exc:
            code = _primary_code(exc)
            if code not in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN) or not path.exists():
                raise self._error(exc, "open") from exc
            self._readonly_reason = (
                f"cannot write {path}: the file or its directory is read-only (make both "
                "writable by the user running gpufleet; writing resumes by itself)"
            )
        self._open_reader()

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        return sqlite3.connect(
            target,
            uri=uri,
            timeout=self._busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
        )

    def _open_writer(self) -> None:
        conn = self._connect(str(self.path))
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            # Only takes effect on a new, empty file: rollup rows are ~0.5 KiB, and 8 KiB
            # pages halve the B-tree page splits of 4 KiB ones on ingest.
            conn.execute("PRAGMA page_size = 8192")
            # Both pragmas are explained in the module docstring (WAL + NORMAL survives kill -9).
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Rollup upserts touch index pages all over the keys; a larger cache saves reads.
            conn.execute("PRAGMA cache_size = -32768")
            conn.execute("PRAGMA temp_store = MEMORY")
            # Checkpoint every ~32 MiB of WAL instead of ~8 MiB: fewer, larger checkpoints
            # write a page changed by several batches (index pages, hour rows) only once.
            conn.execute("PRAGMA wal_autocheckpoint = 4000")
            self._check_is_gpufleet(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._migrate(_SqliteTx(conn))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        self._writer = conn

    def _open_reader(self) -> None:
        if self._readonly_reason is None:
            conn = self._connect(str(self.path))
            # The reader never writes; saying so catches a mistake in a query early.
            conn.execute("PRAGMA query_only = ON")
        else:
            conn = self._open_readonly_reader()
            self._check_is_gpufleet(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        if self._reader is not None:
            self._reader.close()
        self._reader = conn

    def _open_readonly_reader(self) -> sqlite3.Connection:
        base = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        try:
            conn = self._connect(base, uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return conn
        except sqlite3.Error as exc:
            last = exc
        # A WAL database in a read-only directory without its -shm file cannot be opened
        # normally; immutable=1 reads the main file as it is (the WAL cannot have content
        # nobody can checkpoint into a read-only file anyway).
        try:
            conn = self._connect(base + "&immutable=1", uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
            return conn
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from last

    def _check_is_gpufleet(self, conn: sqlite3.Connection) -> None:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if names and SCHEMA_VERSION_TABLE not in names:
            raise StoreError(
                f"{self.path} is an SQLite database of another program, not a gpufleet one "
                "(give another path)"
            )

    # ---- errors --------------------------------------------------------------------

    def _error(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """Translate an SQLite error into words that say what to fix."""
        code = _primary_code(exc)
        path = self.path
        if code == sqlite3.SQLITE_FULL:
            return StoreUnavailable(
                f"cannot write {path}: the disk is full (free space and the agent resumes writing)"
            )
        if code == sqlite3.SQLITE_READONLY:
            return StoreUnavailable(
                f"cannot write {path}: the file or its directory is read-only (make both "
                "writable by the user running gpufleet; writing resumes by itself)"
            )
        if code == sqlite3.SQLITE_IOERR:
            return StoreUnavailable(
                f"cannot {doing} {path}: disk I/O error ({exc}); check the disk and its free "
                "space (the agent retries)"
            )
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreUnavailable(
                f"{path} stayed locked by another process for {self._busy_timeout_s:g} s "
                "(stop the other gpufleet writing to it, or give each its own file)"
            )
        if code == sqlite3.SQLITE_CANTOPEN:
            return StoreUnavailable(
                f"cannot open {path}: check that it exists and that its directory is "
                "readable and writable"
            )
        if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            return StoreError(
                f"{path} is not a gpufleet database or is damaged ({exc}); give another path "
                "or restore it from a backup"
            )
        return StoreError(f"cannot {doing} {path}: {exc}")

    def _not_writable_reason(self) -> str | None:
        if self._closed:
            return f"the store for {self.path} is closed"
        if self._readonly_reason is None:
            return None
        with self._write_lock:
            if self._writer is None:
                try:
                    self._open_writer()
                except (sqlite3.Error, StoreError):
                    return self._readonly_reason
            # Writable again: read through a normal connection so new writes are seen.
            self._readonly_reason = None
            with self._read_lock:
                self._open_reader()
        return None

    # ---- Tx / reads ----------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[_SqliteTx]:
        with self._write_lock:
            conn = self._writer
            if conn is None:
                raise StoreUnavailable(self._readonly_reason or f"{self.path} is not open")
            try:
                # IMMEDIATE takes the write lock now, so the busy timeout applies here and
                # not halfway through the batch.
                conn.execute("BEGIN IMMEDIATE")
                yield _SqliteTx(conn)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise self._error(exc, "write") from exc
            except BaseException:
                self._rollback(conn)
                raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        # SQLite may already have rolled back by itself (e.g. after SQLITE_FULL).
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._read_lock:
            conn = self._reader
            if conn is None:
                raise StoreUnavailable(f"the store for {self.path} is closed")
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "read") from exc

    def _chunk_delete_sql(self, table: Table, where: str) -> str:
        name = table.name
        if table.clustered and table.primary_key:
            # WITHOUT ROWID tables have no rowid: their primary key names the rows instead.
            key = ", ".join(table.primary_key)
            return (
                f"DELETE FROM {name} WHERE ({key}) IN "
                f"(SELECT {key} FROM {name} WHERE {where} LIMIT ?)"
            )
        return f"DELETE FROM {name} WHERE rowid IN (SELECT rowid FROM {name} WHERE {where} LIMIT ?)"

    # ---- extras --------------------------------------------------------------------

    def set_page_limit(self, max_pages: int | None) -> None:
        """Cap the database at ``max_pages`` pages (SQLite ``max_page_count``); None lifts it.

        Growing past the cap fails exactly as a full disk does, which is how tests exercise
        the disk-full path without filling a disk. SQLite never caps below the current size.
        """
        with self._write_lock:
            if self._writer is None:
                raise StoreUnavailable(self._readonly_reason or f"{self.path} is not open")
            limit = _MAX_PAGES_DEFAULT if max_pages is None else int(max_pages)
            self._writer.execute(f"PRAGMA max_page_count = {limit}")

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``ok`` when the file is sound."""
        return "; ".join(str(r[0]) for r in self._read("PRAGMA integrity_check"))

    def close(self) -> None:
        """Close both connections (idempotent); the WAL is checkpointed by the last close."""
        with self._write_lock, self._read_lock:
            self._closed = True
            for conn in (self._reader, self._writer):
                if conn is not None:
                    conn.close()
            self._reader = self._writer = None
