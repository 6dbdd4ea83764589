"""PostgreSQL backend (psycopg 3): the store of a hub.

Raw rows go in with ``COPY``. Rollup rows are ``COPY``-ed into a temporary staging table per
rollup table and merged with one ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` each, which
is far fewer round trips than a statement per row. Staging tables are ``ON COMMIT DELETE
ROWS``, so a failed or committed batch leaves nothing behind in them.

The schema lives in the first schema of the connection's ``search_path``; give
``?options=-csearch_path%3Dmyschema`` in the URL to keep gpufleet apart from other tables.
A lost connection is reopened at the next call; until then writes raise
:class:`StoreUnavailable` and :meth:`health` reports it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import quote, unquote

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from gpufleet.store.base import (
    DEFAULT_IDLE_THRESHOLD_PCT,
    Retention,
    StoreError,
    StoreUnavailable,
)
from gpufleet.store.schema import (
    GPU_1H,
    GPU_1M,
    GPUS,
    NODES,
    ONE_SAMPLE_ROLLUPS,
    SYSTEM_1H,
    SYSTEM_1M,
    WORKLOAD_1H,
    OneSampleRollup,
    one_sample_merge_sql,
    upsert_set_clause,
)
from gpufleet.store.schema_model import Column, Dialect, Table
from gpufleet.store.sql import DEFAULT_RETENTION, Clock, Row, SqlStore, Tx

_STAGED: tuple[Table, ...] = (GPU_1M, GPU_1H, SYSTEM_1M, SYSTEM_1H, WORKLOAD_1H, GPUS, NODES)
_MIGRATION_LOCK = 0x6770_7566  # any constant: serializes schema upgrades of concurrent hubs


@cache
def _pg(sql: str) -> str:
    """Shared statements use ``?``; psycopg wants ``%s``."""
    return sql.replace("?", "%s")


_PG_TYPES = {"real": "float8", "int": "int8", "text": "text"}


@cache
def _copy_sql(table_name: str, columns: tuple[str, ...]) -> str:
    # Binary COPY: about three times less client CPU per row than text, which has to format
    # every float as decimal text.
    return f"COPY {table_name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"


@cache
def _copy_types(columns: tuple[Column, ...]) -> list[str]:
    return [_PG_TYPES[c.kind] for c in columns]


@cache
def _one_merge_sql(rollup: OneSampleRollup) -> str:
    return one_sample_merge_sql(rollup, f"stage_{rollup.name}")


def _stage_one_sql(rollup: OneSampleRollup) -> str:
    cols = ", ".join(f"{c.name} {_PG_TYPES[c.kind]}" for c in rollup.columns)
    return f"CREATE TEMP TABLE IF NOT EXISTS stage_{rollup.name} ({cols}) ON COMMIT DELETE ROWS"


@cache
def _merge_sql(table: Table) -> str:
    cols = ", ".join(table.column_names)
    assert table.primary_key is not None
    # Sorted by key so concurrent hubs lock rows in the same order and cannot deadlock.
    return (
        f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM stage_{table.name} "
        f"ORDER BY {', '.join(table.primary_key)} {upsert_set_clause(table, Dialect.POSTGRES)}"
    )


_SECRET_OPTIONS = frozenset({"password", "sslpassword"})
"""libpq connection options whose values are secrets."""

_KEYWORD_SECRET = re.compile(r"(?i)(?<![\w.])((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")
"""``password = value`` in a keyword/value conninfo string (value quoted or not)."""


def redact(url: str) -> str:
    """``url`` (a libpq URI or ``key=value`` string) without any password, for messages.

    The password goes from the user-info part of a URI (everything up to the last ``@``
    before the query, so a password holding an unencoded ``@``, ``/`` or ``:`` is hidden
    whole) and from ``password`` / ``sslpassword`` query parameters and keywords. Should a
    URI be shaped so that this misses what libpq itself would read as the password (say an
    unencoded ``?`` in it), that value is masked wherever it appears.
    """
    out, secrets = _redact_structure(url)
    if not secrets:
        for secret in _libpq_secrets(url):
            for form in dict.fromkeys((secret, quote(secret, safe=""), quote(secret))):
                out = out.replace(form, "***")
    return out


def _redact_structure(url: str) -> tuple[str, list[str]]:
    """``url`` with the passwords its shape shows masked, and those passwords (as written)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        secrets = [m.group(2) for m in _KEYWORD_SECRET.finditer(url)]
        return _KEYWORD_SECRET.sub(r"\1***", url), secrets
    secrets = []
    head, qmark, query = rest.partition("?")
    at = head.rfind("@")
    if at >= 0:
        user, colon, password = head[:at].partition(":")
        if colon:
            head = f"{user}:***{head[at:]}"
            secrets.append(password)
    if qmark:
        kept: list[str] = []
        in_secret = False
        for param in query.split("&"):
            name, eq, value = param.partition("=")
            if not eq and in_secret:
                secrets.append(param)  # an unencoded "&" inside the secret: still the secret
                continue
            in_secret = bool(eq) and unquote(name).strip().lower() in _SECRET_OPTIONS
            if in_secret:
                secrets.append(value)
            kept.append(f"{name}=***" if in_secret else param)
        query = "&".join(kept)
    return f"{scheme}{sep}{head}{qmark}{query}", secrets


def _userinfo_password(url: str) -> str | None:
    """The password of a URI's user-info as :func:`redact` reads it (decoded), if any."""
    _scheme, sep, rest = url.partition("://")
    head = rest.partition("?")[0]
    at = head.rfind("@")
    if not sep or at < 0 or ":" not in head[:at]:
        return None
    return unquote(head[:at].partition(":")[2])


def _misparsed_password(url: str) -> bool:
    """Whether libpq reads a URI's user-info password differently from how it is written."""
    password = _userinfo_password(url)
    if not password or "password=" in url.partition("?")[2].lower():
        return False
    try:
        options = conninfo_to_dict(url)
    except psycopg.Error:
        return False  # libpq's own message says what is wrong (scrubbed)
    return options.get("password") != password


def _libpq_secrets(url: str) -> list[str]:
    """The secrets libpq reads from ``url``; none when it cannot parse it."""
    try:
        options = conninfo_to_dict(url)
    except psycopg.Error:
        return []
    return [str(v) for k, v in options.items() if k in _SECRET_OPTIONS and v]


def _scrub(text: str, url: str) -> str:
    """``text`` (a libpq message about ``url``) without the secrets of ``url`` in it.

    Pieces shorter than three characters are left: masking every "a" would garble the
    message more than it protects.
    """
    secrets = {*_redact_structure(url)[1], *_libpq_secrets(url)}
    for secret in sorted(secrets, key=len, reverse=True):
        for form in dict.fromkeys((secret, unquote(secret), secret.strip("'"))):
            if len(form) >= 3:
                text = text.replace(form, "***")
    return text


class _PgTx:
    """A write transaction on the writer connection."""

    __slots__ = ("cur",)

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self.cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.cur.execute(_pg(sql), params)
        return self.cur.rowcount

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.cur.execute(_pg(sql), params)
        return self.cur.fetchall()

    def _copy(self, target: str, columns: tuple[Column, ...], rows: Sequence[Row]) -> None:
        with self.cur.copy(_copy_sql(target, tuple(c.name for c in columns))) as copy:
            copy.set_types(_copy_types(columns))
            for row in rows:
                copy.write_row(row)

    def insert_rows(self, table: Table, rows: Sequence[Row], missing: Sequence[str] = ()) -> None:
        self._copy(table.name, tuple(c for c in table.columns if c.name not in missing), rows)

    def upsert_rows(self, table: Table, rows: Sequence[Row]) -> None:
        self._copy(f"stage_{table.name}", table.columns, rows)
        self.cur.execute(_merge_sql(table))
        # Cleared at commit anyway; cleared now too in case a transaction stages twice.
        self.cur.execute(f"TRUNCATE stage_{table.name}")

    def upsert_one_sample_rows(
        self, rollup: OneSampleRollup, rows: Sequence[Row], missing: Sequence[str] = ()
    ) -> None:
        # Staging columns left out of the copy are NULL: the missing readings.
        self._copy(f"stage_{rollup.name}", rollup.carried(missing), rows)
        self.cur.execute(_one_merge_sql(rollup))
        self.cur.execute(f"TRUNCATE stage_{rollup.name}")


class PostgresStore(SqlStore):
    """The Store protocol over a PostgreSQL database.

    Args:
        url: ``postgresql://user@host:port/dbname`` (libpq URI, options allowed).
        retention: how long each resolution is kept.
        idle_threshold_pct: utilization below which a GPU-interval is idle.
        clock: current epoch seconds (for ``Resolution.AUTO``).
        connect_timeout_s: how long a connection attempt may take.

    Raises:
        StoreError: the URL is malformed, the server cannot be reached, or the schema is
            from a newer gpufleet.
    """

    backend = "postgres"
    dialect = Dialect.POSTGRES

    def __init__(
        self,
        url: str,
        *,
        retention: Retention = DEFAULT_RETENTION,
        idle_threshold_pct: float = DEFAULT_IDLE_THRESHOLD_PCT,
        clock: Clock = time.time,
        connect_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(
            location=redact(url),
            retention=retention,
            idle_threshold_pct=idle_threshold_pct,
            clock=clock,
        )
        self._url = url
        self._connect_timeout_s = connect_timeout_s
        self._write_lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._closed = False
        self._writer: psycopg.Connection[Any] | None = None
        self._reader: psycopg.Connection[Any] | None = None
        try:
            self._writer = self._open_writer()
            self._reader = self._connect()
        except StoreError:
            self.close()
            raise

    # ---- connections ---------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        if _misparsed_password(self._url):
            # libpq splits user-info at the first "@" or "/", so it would take part of the
            # password for the host (and show it in its error): say what to fix instead.
            raise StoreError(
                f"invalid PostgreSQL URL {self.location}: libpq cannot tell its password from "
                "its host; percent-encode '@', '/', '?' and ':' inside the user name, password "
                "or database name (as %40, %2F, %3F, %3A)"
            )
        try:
            return psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=max(1, round(self._connect_timeout_s)),
                application_name="gpufleet",
            )
        except psycopg.ProgrammingError as exc:
            raise StoreError(
                f"invalid PostgreSQL URL {self.location}: {_scrub(_first_line(exc), self._url)} "
                "(expected postgresql://user@host:5432/dbname)"
            ) from exc
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {self.location}: "
                f"{_scrub(_first_line(exc), self._url)} (start "
                "the server or fix the URL; gpufleet reconnects by itself)"
            ) from exc

    def _open_writer(self) -> psycopg.Connection[Any]:
        conn = self._connect()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                self._migrate(_PgTx(cur))
            with conn.cursor() as cur:
                for table in _STAGED:
                    cur.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS stage_{table.name} "
                        f"(LIKE {table.name}) ON COMMIT DELETE ROWS"
                    )
                for rollup in ONE_SAMPLE_ROLLUPS:
                    cur.execute(_stage_one_sql(rollup))
        except psycopg.Error as exc:
            conn.close()
            raise self._error(exc, "prepare") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _live_writer(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreUnavailable(f"the store for {self.location} is closed")
        if self._writer is None or self._writer.closed or self._writer.broken:
            self._writer = self._open_writer()
        return self._writer

    def _live_reader(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreUnavailable(f"the store for {self.location} is closed")
        if self._reader is None or self._reader.closed or self._reader.broken:
            self._reader = self._connect()
        return self._reader

    # ---- errors --------------------------------------------------------------------

    def _error(self, exc: psycopg.Error, doing: str) -> StoreError:
        """Translate a psycopg error into words that say what to fix."""
        where = f"PostgreSQL at {self.location}"
        if isinstance(exc, pg_errors.DiskFull):
            return StoreUnavailable(
                f"{where} cannot {doing}: the database server's disk is full (free space on "
                "it and the agent resumes writing)"
            )
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            return StoreUnavailable(
                f"{where} is read-only (a standby?): point gpufleet at the primary server"
            )
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(
                f"cannot {doing} {where}: {_first_line(exc)} (is the server running? gpufleet "
                "reconnects by itself)"
            )
        return StoreError(f"cannot {doing} {where}: {_first_line(exc)}")

    # ---- Tx / reads ----------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[_PgTx]:
        with self._write_lock:
            conn = self._live_writer()
            try:
                with conn.transaction(), conn.cursor() as cur:
                    yield _PgTx(cur)
            except psycopg.Error as exc:
                raise self._error(exc, "write to") from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._read_lock:
            conn = self._live_reader()
            try:
                # Binary results: floats arrive as 8 bytes instead of decimal text to parse,
                # which is most of the client's time on long series.
                with conn.cursor(binary=True) as cur:
                    cur.execute(_pg(sql), params)
                    return cur.fetchall()
            except psycopg.Error as exc:
                raise self._error(exc, "read from") from exc

    def _chunk_delete_sql(self, table: Table, where: str) -> str:
        # ctid = ANY(ARRAY(...)) gives a TID scan; ctid IN (subquery) may not.
        return (
            f"DELETE FROM {table.name} WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {table.name} WHERE {where} LIMIT ?))"
        )

    def _after_explicit_alert_id(self, tx: Tx) -> None:
        # An id chosen by the caller bypasses the sequence; move it past the largest id so
        # the next generated one does not collide (and never back below ids it gave out).
        tx.execute(
            "SELECT setval(pg_get_serial_sequence('alerts', 'id'), GREATEST("
            "(SELECT max(id) FROM alerts), nextval(pg_get_serial_sequence('alerts', 'id'))))"
        )

    def close(self) -> None:
        """Close both connections (idempotent)."""
        with self._write_lock, self._read_lock:
            self._closed = True
            for conn in (self._reader, self._writer):
                if conn is not None:
                    conn.close()
            self._reader = self._writer = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
