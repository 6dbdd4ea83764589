"""What the scrapes of a window say: hit rates, KV pressure, TTFT percentiles, per source.

Hit rates are ratios of counter deltas over the window (tokens hit / tokens queried), so they
describe the window and not the server's whole life; gauges (usage, queues) are the newest
reading. With a single scrape per source there is no delta: counters are then read as they
stand, i.e. since the server started (``basis = "since_start"``). vLLM V0 has no prefix-cache
counters, only a hit-rate gauge, which is used as a last resort (``prefix_hit_rate_basis =
"gauge"``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from gpufleet.kvcache.names import COUNTERS, name_sets
from gpufleet.kvcache.rates import SourceDeltas, add_histograms, quantile, ratio_pct, source_deltas
from gpufleet.store.kvcache_records import KIND_VLLM, HistogramReading, KvCacheScrape
from gpufleet.timeparse import TimeParseError


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One configured URL and what its scrapes showed."""

    source: str
    kind: str
    reachable: bool | None
    """Whether the newest scrape answered; None before the first scrape."""
    last_scrape_s: float | None
    last_ok_s: float | None
    error: str | None
    name_sets: tuple[str, ...]
    models: tuple[str, ...]
    engines: int | None
    scrapes: int
    """Scrapes of this source in the window."""


@dataclass(frozen=True, slots=True)
class KvCacheSummary:
    """The KV-cache picture of one window, all sources together."""

    start_s: float
    end_s: float
    basis: str
    """``window`` (counter deltas inside the window), ``since_start`` (one scrape per source:
    counters since each server started) or ``none`` (nothing answered)."""
    sources: tuple[SourceStatus, ...]
    scrapes: int
    prefix_queries_tokens: float | None
    prefix_hits_tokens: float | None
    prefix_hit_rate_pct: float | None
    prefix_hit_rate_basis: str | None
    external_queries_tokens: float | None
    external_hits_tokens: float | None
    external_hit_rate_pct: float | None
    lmcache_requested_tokens: float | None
    lmcache_hit_tokens: float | None
    lmcache_hit_rate_pct: float | None
    lmcache_lookup_tokens: float | None
    lmcache_lookup_hit_tokens: float | None
    lmcache_lookup_hit_rate_pct: float | None
    kv_usage_pct: float | None
    kv_usage_max_pct: float | None
    requests_running: float | None
    requests_waiting: float | None
    preemptions: float | None
    preemptions_per_s: float | None
    ttft_p50_s: float | None
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    ttft_requests: float | None
    lmcache_cpu_usage_bytes: float | None
    lmcache_disk_usage_bytes: float | None
    lmcache_remote_usage_bytes: float | None
    lmcache_l1_usage_pct: float | None
    lmcache_evictions: float | None
    lmcache_evictions_per_s: float | None
    lmcache_cpu_writes: float | None
    prompt_tokens: float | None
    block_size: int | None
    num_gpu_blocks: int | None
    elapsed_s: float
    """Seconds between scrapes the counter deltas cover (the longest of the sources')."""
    resets: int
    """Counter resets (server restarts) seen inside the window."""

    @property
    def lmcache_seen(self) -> bool:
        """Whether any source reports LMCache (its own metrics or vLLM's connector counters)."""
        return any(
            v is not None
            for v in (
                self.lmcache_requested_tokens,
                self.lmcache_lookup_tokens,
                self.lmcache_cpu_usage_bytes,
                self.lmcache_evictions,
                self.external_queries_tokens,
            )
        )


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _status(source: str, kind: str, scrapes: Sequence[KvCacheScrape]) -> SourceStatus:
    newest = scrapes[-1] if scrapes else None
    ok = [s for s in scrapes if s.ok]
    last_ok = ok[-1] if ok else None
    return SourceStatus(
        source=source,
        kind=kind,
        reachable=None if newest is None else newest.ok,
        last_scrape_s=None if newest is None else newest.ts_s,
        last_ok_s=None if last_ok is None else last_ok.ts_s,
        error=None if newest is None else newest.error,
        name_sets=name_sets(list(last_ok.names)) if last_ok else (),
        models=last_ok.models if last_ok else (),
        engines=last_ok.engines if last_ok else None,
        scrapes=len(scrapes),
    )


def summarize(
    scrapes: Sequence[KvCacheScrape],
    *,
    start_s: float,
    end_s: float,
    configured: Sequence[tuple[str, str]] = (),
    latest: Sequence[KvCacheScrape] = (),
) -> KvCacheSummary:
    """The summary of ``scrapes`` (any order, any sources) over ``[start_s, end_s)``.

    Args:
        scrapes: the window's scrapes.
        start_s: window start (epoch seconds).
        end_s: window end.
        configured: ``(url, kind)`` of every configured source, so one never scraped in the
            window is still listed.
        latest: each source's newest scrape even when older than the window (for status).
    """
    by_source: dict[str, list[KvCacheScrape]] = defaultdict(list)
    for s in sorted(scrapes, key=lambda s: s.ts_s):
        by_source[s.source].append(s)
    kinds = dict(configured)
    kinds.update({s.source: s.kind for s in scrapes})
    newest_known = {s.source: s for s in latest}
    statuses = []
    for url in dict.fromkeys([*(u for u, _ in configured), *by_source]):
        window = by_source.get(url, [])
        if not window and url in newest_known:
            older = newest_known[url]
            statuses.append(replace(_status(url, kinds.get(url, older.kind), [older]), scrapes=0))
        else:
            statuses.append(_status(url, kinds.get(url, KIND_VLLM), window))
    deltas = [d for d in (source_deltas(v) for v in by_source.values()) if d is not None]
    newest = [n for n in map(_newest_ok, by_source.values()) if n is not None]
    windowed = [d for d in deltas if d.pairs > 0]
    if windowed:
        basis = "window"
        counters = _add_counters(d.counters for d in windowed)
        hist = _add_hists(windowed)
        elapsed = max(d.elapsed_s for d in windowed)
    elif newest:
        basis = "since_start"
        counters = _add_counters(
            {k: v for k, v in s.values.items() if k in COUNTERS} for s in newest
        )
        hist = _add_hists_of(s.histograms.get("ttft_s") for s in newest)
        elapsed = 0.0
    else:
        basis, counters, hist, elapsed = "none", {}, None, 0.0
    gauges = _gauges(newest)
    c = counters.get
    prefix_rate = ratio_pct(c("prefix_hits"), c("prefix_queries"))
    prefix_basis: str | None = "counters" if prefix_rate is not None else None
    if prefix_rate is None and gauges.get("prefix_hit_rate_gauge_frac") is not None:
        prefix_rate = 100.0 * float(gauges["prefix_hit_rate_gauge_frac"] or 0.0)
        prefix_basis = "gauge"
    preemptions = c("preemptions")
    evictions = c("lmc_cpu_evictions")

    def per_s(name: str) -> float | None:
        # Each source's delta over its own interval, added up: sources scraped at different
        # moments (or one that was down for a while) still give the right total rate.
        rates = [
            d.counters[name] / d.elapsed_s
            for d in windowed
            if name in d.counters and d.elapsed_s > 0
        ]
        return sum(rates) if rates else None

    return KvCacheSummary(
        start_s=start_s,
        end_s=end_s,
        basis=basis,
        sources=tuple(statuses),
        scrapes=len(scrapes),
        prefix_queries_tokens=c("prefix_queries"),
        prefix_hits_tokens=c("prefix_hits"),
        prefix_hit_rate_pct=prefix_rate,
        prefix_hit_rate_basis=prefix_basis,
        external_queries_tokens=c("external_queries"),
        external_hits_tokens=c("external_hits"),
        external_hit_rate_pct=ratio_pct(c("external_hits"), c("external_queries")),
        lmcache_requested_tokens=c("lmc_requested_tokens"),
        lmcache_hit_tokens=c("lmc_hit_tokens"),
        lmcache_hit_rate_pct=ratio_pct(c("lmc_hit_tokens"), c("lmc_requested_tokens")),
        lmcache_lookup_tokens=c("lmc_lookup_tokens"),
        lmcache_lookup_hit_tokens=c("lmc_lookup_hit_tokens"),
        lmcache_lookup_hit_rate_pct=ratio_pct(c("lmc_lookup_hit_tokens"), c("lmc_lookup_tokens")),
        kv_usage_pct=_pct(gauges.get("kv_usage_frac")),
        kv_usage_max_pct=_pct(gauges.get("kv_usage_max_frac")),
        requests_running=gauges.get("requests_running"),
        requests_waiting=gauges.get("requests_waiting"),
        preemptions=preemptions,
        preemptions_per_s=per_s("preemptions"),
        ttft_p50_s=None if hist is None else quantile(hist, 0.5),
        ttft_p90_s=None if hist is None else quantile(hist, 0.9),
        ttft_p99_s=None if hist is None else quantile(hist, 0.99),
        ttft_requests=None if hist is None else hist.count,
        lmcache_cpu_usage_bytes=gauges.get("lmc_local_cache_usage_bytes"),
        lmcache_disk_usage_bytes=gauges.get("lmc_local_storage_usage_bytes"),
        lmcache_remote_usage_bytes=gauges.get("lmc_remote_cache_usage_bytes"),
        lmcache_l1_usage_pct=_pct(gauges.get("lmc_l1_usage_frac")),
        lmcache_evictions=evictions,
        lmcache_evictions_per_s=per_s("lmc_cpu_evictions"),
        lmcache_cpu_writes=c("lmc_cpu_writes"),
        prompt_tokens=c("prompt_tokens"),
        block_size=_int(gauges.get("block_size")),
        num_gpu_blocks=_int(gauges.get("num_gpu_blocks")),
        elapsed_s=elapsed,
        resets=sum(d.resets for d in windowed),
    )


def _newest_ok(scrapes: Sequence[KvCacheScrape]) -> KvCacheScrape | None:
    return next((s for s in reversed(scrapes) if s.ok), None)


def _add_counters(items: Iterable[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for counters in items:
        for name, value in counters.items():
            total[name] = total.get(name, 0.0) + value
    return total


def _add_hists(deltas: Sequence[SourceDeltas]) -> HistogramReading | None:
    return _add_hists_of(d.histograms.get("ttft_s") for d in deltas)


def _add_hists_of(items: Iterable[HistogramReading | None]) -> HistogramReading | None:
    total: HistogramReading | None = None
    for hist in items:
        if hist is not None:
            total = add_histograms(total, hist)
    return total


_MEANS = ("kv_usage_frac", "lmc_l1_usage_frac", "prefix_hit_rate_gauge_frac")
_MAXES = ("kv_usage_max_frac", "block_size", "num_gpu_blocks")


def _gauges(newest: Sequence[KvCacheScrape]) -> dict[str, float | None]:
    """Gauges of each source's newest answered scrape: fractions averaged over sources (their
    maximum kept apart), sizes and queue lengths summed."""
    out: dict[str, float | None] = {}
    for name in (
        "requests_running",
        "requests_waiting",
        "lmc_local_cache_usage_bytes",
        "lmc_local_storage_usage_bytes",
        "lmc_remote_cache_usage_bytes",
    ):
        out[name] = _sum(s.values.get(name) for s in newest)
    for name in _MEANS:
        known = [s.values[name] for s in newest if name in s.values]
        out[name] = sum(known) / len(known) if known else None
    for name in _MAXES:
        known = [s.values[name] for s in newest if name in s.values]
        out[name] = max(known) if known else None
    return out


def _pct(frac: float | None) -> float | None:
    return None if frac is None else 100.0 * frac


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
MAX_WINDOW_S = 30 * 86_400.0


def parse_duration_s(text: str) -> float:
    """Seconds in ``15m``, ``1h``, ``30s``, ``2d`` or a plain number of seconds.

    Raises:
        TimeParseError: anything else, zero, or more than 30 days.
    """
    match = _DURATION.match(text)
    if not match:
        raise TimeParseError(f"cannot read duration {text!r}: use e.g. 30s, 15m, 1h or 2d")
    seconds = float(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]
    if not 0 < seconds <= MAX_WINDOW_S:
        raise TimeParseError(f"duration {text!r} must be above 0 and at most 30d")
    return seconds
