"""Rates from counters: deltas between consecutive scrapes, resets handled, and percentiles
from histogram bucket deltas.

A counter only grows while its server runs; a smaller value than before means the server
restarted and counted again from zero, so the delta across a reset is the new value itself
(what PromQL's ``increase()`` does). Deltas are summed pair by pair, so a restart in the
middle of a window loses nothing counted before or after it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from gpufleet.kvcache.names import COUNTERS
from gpufleet.store.kvcache_records import HistogramReading, KvCacheScrape


def counter_delta(previous: float, current: float) -> float:
    """How much a counter grew between two readings (a drop is a restart from zero)."""
    return current - previous if current >= previous else current


def histogram_delta(previous: HistogramReading, current: HistogramReading) -> HistogramReading:
    """Observations between two readings of a histogram (a drop in count is a restart)."""
    if current.count < previous.count:
        return current
    before = dict(previous.buckets)
    if set(before) != {le for le, _ in current.buckets}:
        # Bucket bounds changed (a new server version): only the new reading is usable.
        return current
    return HistogramReading(
        buckets=tuple((le, counter_delta(before[le], c)) for le, c in current.buckets),
        sum=counter_delta(previous.sum, current.sum),
        count=current.count - previous.count,
    )


def add_histograms(a: HistogramReading | None, b: HistogramReading) -> HistogramReading:
    """The observations of both (same bounds; ``a`` None is nothing yet)."""
    if a is None:
        return b
    mine = dict(a.buckets)
    if set(mine) != {le for le, _ in b.buckets}:
        return b if b.count >= a.count else a
    return HistogramReading(
        buckets=tuple((le, mine[le] + c) for le, c in b.buckets),
        sum=a.sum + b.sum,
        count=a.count + b.count,
    )


def quantile(hist: HistogramReading, q: float) -> float | None:
    """The ``q`` quantile (0..1) of a histogram, interpolated linearly inside its bucket as
    Prometheus' ``histogram_quantile`` does; None without observations.

    A quantile that falls in the ``+Inf`` bucket is reported as the largest finite bound
    (all that is known is that it is at least that).
    """
    if not hist.buckets:
        return None
    total = hist.buckets[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_le, lower_count = 0.0, 0.0
    for le, count in hist.buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_le
            width = count - lower_count
            if width <= 0:
                return le
            return lower_le + (le - lower_le) * (rank - lower_count) / width
        lower_le, lower_count = le, count
    return lower_le


@dataclass(frozen=True, slots=True)
class SourceDeltas:
    """What one source counted over a window of its scrapes."""

    source: str
    kind: str
    pairs: int
    """Consecutive pairs of answered scrapes the deltas come from (0: one scrape only)."""
    elapsed_s: float
    counters: dict[str, float]
    histograms: dict[str, HistogramReading]
    resets: int
    """Pairs across which some counter dropped (a server restart)."""


def source_deltas(scrapes: Sequence[KvCacheScrape]) -> SourceDeltas | None:
    """Deltas over ``scrapes`` of one source (oldest first); failed scrapes are skipped.

    None when no scrape answered.
    """
    answered = [s for s in scrapes if s.ok]
    if not answered:
        return None
    counters: dict[str, float] = {}
    histograms: dict[str, HistogramReading] = {}
    elapsed = 0.0
    resets = 0
    for prev, cur in itertools.pairwise(answered):
        elapsed += max(cur.ts_s - prev.ts_s, 0.0)
        reset = False
        for name in COUNTERS.intersection(cur.values):
            if name not in prev.values:
                continue
            before, now = prev.values[name], cur.values[name]
            reset = reset or now < before
            counters[name] = counters.get(name, 0.0) + counter_delta(before, now)
        for name, hist in cur.histograms.items():
            if name in prev.histograms:
                histograms[name] = add_histograms(
                    histograms.get(name), histogram_delta(prev.histograms[name], hist)
                )
        resets += int(reset)
    return SourceDeltas(
        source=answered[-1].source,
        kind=answered[-1].kind,
        pairs=len(answered) - 1,
        elapsed_s=elapsed,
        counters=counters,
        histograms=histograms,
        resets=resets,
    )


def ratio_pct(hits: float | None, queries: float | None) -> float | None:
    """``100 * hits / queries``; None when nothing was queried."""
    if hits is None or queries is None or queries <= 0:
        return None
    return 100.0 * min(hits, queries) / queries
