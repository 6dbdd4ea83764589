"""Scrapes of vLLM and LMCache ``/metrics`` endpoints (schema version 9), on SQLite and
PostgreSQL alike.

A scrape keeps what the exposition text said, already reduced to gpufleet's names (counters
and gauges summed over engines, histogram buckets summed per bound), so that rates can be
computed later between any two scrapes of the same source: a hit rate is a ratio of counter
deltas, never a gauge that may have gone stale.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from gpufleet.store.schema import KVCACHE_SCRAPES
from gpufleet.store.schema_model import Table

Row = tuple[Any, ...]

KIND_VLLM = "vllm"
KIND_LMCACHE = "lmcache"
KINDS = (KIND_VLLM, KIND_LMCACHE)


@dataclass(frozen=True, slots=True)
class HistogramReading:
    """A Prometheus histogram at one scrape: cumulative bucket counts per upper bound."""

    buckets: tuple[tuple[float, float], ...]
    """``(le, cumulative count)`` in ascending ``le``; the last bound is ``math.inf``."""
    sum: float
    count: float


@dataclass(frozen=True, slots=True)
class KvCacheScrape:
    """One scrape of one ``/metrics`` URL."""

    ts_s: float
    source: str
    """The URL scraped."""
    kind: str
    """``vllm`` or ``lmcache``: which list of URLs it came from."""
    ok: bool
    error: str | None = None
    """Why the scrape failed (unreachable, HTTP status, unreadable text)."""
    values: Mapping[str, float] = field(default_factory=dict)
    """Counters and gauges under gpufleet's names (see ``gpufleet.kvcache.names``)."""
    histograms: Mapping[str, HistogramReading] = field(default_factory=dict)
    names: tuple[str, ...] = ()
    """The server's own metric names that were recognized (which versions' names it uses)."""
    models: tuple[str, ...] = ()
    """``model_name`` label values seen."""
    engines: int | None = None
    """Distinct ``engine`` label values (vLLM V1 with data parallelism has several)."""
    fetch_s: float | None = None
    """How long the HTTP request took."""


def _le_text(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(le)


def _payload(scrape: KvCacheScrape) -> str:
    return json.dumps(
        {
            "values": dict(scrape.values),
            "histograms": {
                name: {
                    "buckets": [[_le_text(le), count] for le, count in h.buckets],
                    "sum": h.sum,
                    "count": h.count,
                }
                for name, h in scrape.histograms.items()
            },
            "names": list(scrape.names),
            "models": list(scrape.models),
            "engines": scrape.engines,
            "fetch_s": scrape.fetch_s,
        },
        sort_keys=True,
    )


def _scrape(row: Row) -> KvCacheScrape:
    ts, source, kind, ok, error, payload = row
    try:
        data = json.loads(str(payload))
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    histograms = {
        str(name): HistogramReading(
            buckets=tuple((float(le), float(count)) for le, count in h.get("buckets", [])),
            sum=float(h.get("sum", 0.0)),
            count=float(h.get("count", 0.0)),
        )
        for name, h in (data.get("histograms") or {}).items()
    }
    engines = data.get("engines")
    fetch_s = data.get("fetch_s")
    return KvCacheScrape(
        ts_s=float(ts),
        source=str(source),
        kind=str(kind),
        ok=bool(ok),
        error=None if error is None else str(error),
        values={str(k): float(v) for k, v in (data.get("values") or {}).items()},
        histograms=histograms,
        names=tuple(str(n) for n in data.get("names") or ()),
        models=tuple(str(m) for m in data.get("models") or ()),
        engines=None if engines is None else int(engines),
        fetch_s=None if fetch_s is None else float(fetch_s),
    )


_COLUMNS = "ts, source, kind, ok, error, payload"


class KvCacheRecords(ABC):
    """The KV-cache scrape log; a SQL store supplies the transaction and the read."""

    @abstractmethod
    def _writing(self) -> AbstractContextManager[Any]:
        """A write transaction (see SqlStore)."""

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A query on the read connection."""

    @abstractmethod
    def _delete_chunked(self, table: Table, where: str, params: Sequence[Any]) -> int:
        """Delete matching rows in chunks (see SqlStore)."""

    def save_kvcache_scrapes(self, scrapes: Sequence[KvCacheScrape]) -> None:
        """Append scrapes (one transaction).

        Raises:
            StoreUnavailable: the disk is full or read-only, or the database is down.
        """
        if not scrapes:
            return
        rows = [(s.ts_s, s.source, s.kind, int(s.ok), s.error, _payload(s)) for s in scrapes]
        with self._writing() as tx:
            for row in rows:
                tx.execute(
                    f"INSERT INTO kvcache_scrapes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", row
                )

    def kvcache_scrapes(
        self,
        *,
        start_s: float,
        end_s: float,
        source: str | None = None,
        limit: int = 20_000,
    ) -> list[KvCacheScrape]:
        """Scrapes with ``start_s <= ts < end_s`` (of ``source`` only, when given), oldest
        first; the newest ``limit`` when there are more."""
        where = "ts >= ? AND ts < ?"
        params: list[Any] = [start_s, end_s]
        if source is not None:
            where += " AND source = ?"
            params.append(source)
        rows = self._read(
            f"SELECT {_COLUMNS} FROM kvcache_scrapes WHERE {where} "
            "ORDER BY ts DESC, id DESC LIMIT ?",
            (*params, int(limit)),
        )
        return [_scrape(r) for r in reversed(rows)]

    def latest_kvcache_scrapes(self) -> list[KvCacheScrape]:
        """The newest scrape of each source, by source."""
        rows = self._read(
            f"SELECT {', '.join('k.' + c for c in _COLUMNS.split(', '))} "
            "FROM kvcache_scrapes k JOIN (SELECT source, max(ts) AS ts FROM kvcache_scrapes "
            "GROUP BY source) m ON k.source = m.source AND k.ts = m.ts ORDER BY k.source, k.id"
        )
        latest: dict[str, KvCacheScrape] = {}
        for row in rows:
            scrape = _scrape(row)
            latest[scrape.source] = scrape  # the later id wins a tie on ts
        return list(latest.values())

    def delete_kvcache_scrapes_before(self, cutoff_s: float) -> int:
        """Delete scrapes older than ``cutoff_s``; how many went."""
        return self._delete_chunked(KVCACHE_SCRAPES, "ts < ?", (cutoff_s,))


__all__ = [
    "KINDS",
    "KIND_LMCACHE",
    "KIND_VLLM",
    "HistogramReading",
    "KvCacheRecords",
    "KvCacheScrape",
]
