"""History of snapshots, alerts and usage: the Store protocol and its two backends.

``open_store`` picks the backend from the target: a ``postgresql://`` or ``postgres://`` URL
opens :class:`PostgresStore`, anything else is the path of an SQLite file
(:class:`SQLiteStore`, the embedded default).
"""

from __future__ import annotations

import os
import re
import time

from gpufleet.store.base import (
    DEFAULT_IDLE_THRESHOLD_PCT,
    GPU_METRICS,
    SYSTEM_METRICS,
    UTIL_HIST_BINS,
    GpuInventory,
    GpuUsage,
    QueryTooLargeError,
    Resolution,
    Retention,
    Series,
    SeriesPoint,
    Store,
    StoreError,
    StoreHealth,
    StoreUnavailable,
    WorkloadUsage,
    pick_resolution,
)
from gpufleet.store.postgres import PostgresStore
from gpufleet.store.schema import SYSTEM_STORED_METRICS
from gpufleet.store.sql import DEFAULT_RETENTION, Clock
from gpufleet.store.sqlite import SQLiteStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_store(
    target: str | os.PathLike[str],
    *,
    retention: Retention = DEFAULT_RETENTION,
    idle_threshold_pct: float = DEFAULT_IDLE_THRESHOLD_PCT,
    clock: Clock = time.time,
) -> Store:
    """Open (creating or upgrading as needed) the store at ``target``.

    Args:
        target: ``postgresql://user@host:5432/db`` (or ``postgres://``) for PostgreSQL;
            ``sqlite:///path`` or any other string is an SQLite file path, whose parent
            directories are created.
        retention: how long raw samples and 1m / 1h rollups are kept.
        idle_threshold_pct: utilization below which a GPU-interval counts as idle.
        clock: current epoch seconds, used to resolve ``Resolution.AUTO``.

    Raises:
        StoreError: with a message that says what to fix: a malformed URL, an unreachable
            server (:class:`StoreUnavailable`), a path that is a directory, a file that is
            not a gpufleet database, or a database written by a newer gpufleet.
    """
    text = os.fspath(target)
    if not text.strip():
        raise StoreError("no store given: pass an SQLite file path or a postgresql:// URL")
    if text.lower().startswith(POSTGRES_SCHEMES):
        return PostgresStore(
            text, retention=retention, idle_threshold_pct=idle_threshold_pct, clock=clock
        )
    scheme = _URL_SCHEME.match(text)
    if scheme is not None:
        if scheme.group(1).lower() != "sqlite":
            raise StoreError(
                f"unsupported store URL scheme {scheme.group(1)!r}: use postgresql://..., "
                "sqlite:///path or a plain file path"
            )
        text = text[scheme.end() :]
    return SQLiteStore(
        text, retention=retention, idle_threshold_pct=idle_threshold_pct, clock=clock
    )


__all__ = [
    "GPU_METRICS",
    "SYSTEM_METRICS",
    "SYSTEM_STORED_METRICS",
    "UTIL_HIST_BINS",
    "GpuInventory",
    "GpuUsage",
    "PostgresStore",
    "QueryTooLargeError",
    "Resolution",
    "Retention",
    "SQLiteStore",
    "Series",
    "SeriesPoint",
    "Store",
    "StoreError",
    "StoreHealth",
    "StoreUnavailable",
    "WorkloadUsage",
    "open_store",
    "pick_resolution",
]
