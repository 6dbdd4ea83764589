"""Fetch a vLLM or LMCache ``/metrics`` page and reduce it to a :class:`KvCacheScrape`.

The text is parsed with ``prometheus_client``'s own parser, which names a counter's family
without ``_total`` but keeps the suffix on its samples, and gives a histogram's
``_bucket`` / ``_sum`` / ``_count`` samples under one family. Series of one metric (one per
engine, model or tenant) are combined as :mod:`gpufleet.kvcache.names` says: summed for
counters and queue lengths, averaged (and the maximum kept) for usage fractions.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gpufleet.kvcache.names import (
    CACHE_CONFIG_INFO,
    HISTOGRAM_ALIASES,
    KNOWN_RAW,
    VALUE_ALIASES,
    Agg,
    base_name,
)
from gpufleet.store.kvcache_records import HistogramReading, KvCacheScrape

Clock = Callable[[], float]

_SKIPPED_SUFFIXES = ("_created",)
"""Samples prometheus_client adds beside counters and histograms: not readings."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one exposition text says, under our names."""

    values: dict[str, float]
    histograms: dict[str, HistogramReading]
    names: tuple[str, ...]
    models: tuple[str, ...]
    engines: int | None


def _combine(values: list[float], agg: Agg) -> float:
    if agg is Agg.MEAN:
        return sum(values) / len(values)
    if agg is Agg.MAX:
        return max(values)
    return sum(values)


def _histogram(samples: list[tuple[str, dict[str, str], float]], family: str) -> HistogramReading:
    """One histogram summed over its series: buckets per bound, sums and counts."""
    buckets: dict[float, float] = defaultdict(float)
    total = count = 0.0
    for name, labels, value in samples:
        if name == f"{family}_bucket":
            buckets[float(labels["le"])] += value
        elif name == f"{family}_sum":
            total += value
        elif name == f"{family}_count":
            count += value
    if buckets and math.inf not in buckets:
        buckets[math.inf] = count
    return HistogramReading(buckets=tuple(sorted(buckets.items())), sum=total, count=count)


def parse_exposition(text: str) -> Parsed:
    """Our readings in a Prometheus exposition text (unknown metrics are ignored).

    Raises:
        ValueError: the text is not Prometheus exposition format.
    """
    series: dict[str, list[float]] = defaultdict(list)
    hist_samples: dict[str, list[tuple[str, dict[str, str], float]]] = defaultdict(list)
    models: set[str] = set()
    engines: set[str] = set()
    info: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.type == "histogram":
            if family.name in KNOWN_RAW:
                hist_samples[family.name].extend(
                    (s.name, dict(s.labels), float(s.value)) for s in family.samples
                )
                _labels_seen(family.samples, models, engines)
            continue
        for sample in family.samples:
            if sample.name.endswith(_SKIPPED_SUFFIXES):
                continue
            name = base_name(sample.name, family.type)
            if name == CACHE_CONFIG_INFO:
                for key in ("block_size", "num_gpu_blocks"):
                    if sample.labels.get(key, "").isdigit():
                        info[key] = float(sample.labels[key])
                continue
            if name not in KNOWN_RAW or math.isnan(sample.value):
                continue
            series[name].append(float(sample.value))
            _labels_seen([sample], models, engines)
    values: dict[str, float] = {}
    used: set[str] = set()
    for alias in VALUE_ALIASES:
        raw = next((r for r in alias.raw if r in series), None)
        if raw is not None:
            values[alias.name] = _combine(series[raw], alias.agg)
            used.add(raw)
    values.update(info)
    histograms: dict[str, HistogramReading] = {}
    for alias in HISTOGRAM_ALIASES:
        raw = next((r for r in alias.raw if r in hist_samples), None)
        if raw is not None:
            histograms[alias.name] = _histogram(hist_samples[raw], raw)
            used.add(raw)
    return Parsed(
        values=values,
        histograms=histograms,
        names=tuple(sorted(used)),
        models=tuple(sorted(models)),
        engines=len(engines) or None,
    )


def _labels_seen(samples: Iterable[object], models: set[str], engines: set[str]) -> None:
    for sample in samples:
        labels: dict[str, str] = getattr(sample, "labels", {})
        if labels.get("model_name"):
            models.add(labels["model_name"])
        if "engine" in labels:
            engines.add(labels["engine"])


def metrics_url(url: str) -> str:
    """``url`` with ``/metrics`` added when it names only a server (``http://host:8000``).

    Raises:
        ValueError: not an http:// or https:// URL.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"{url!r} is not an http:// or https:// URL (e.g. http://127.0.0.1:8000/metrics)"
        )
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    return urlunsplit(parts)


def scrape(url: str, kind: str, client: httpx.Client, *, clock: Clock = time.time) -> KvCacheScrape:
    """GET ``url`` and parse it; a failure is a scrape with ``ok=False`` and the reason."""
    started = time.monotonic()
    ts_s = clock()
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return KvCacheScrape(
            ts_s, url, kind, ok=False, error=f"unreachable: {exc or type(exc).__name__}"
        )
    fetch_s = time.monotonic() - started
    if response.status_code != 200:
        return KvCacheScrape(
            ts_s,
            url,
            kind,
            ok=False,
            error=f"HTTP {response.status_code} from {url}",
            fetch_s=fetch_s,
        )
    try:
        parsed = parse_exposition(response.text)
    except (ValueError, KeyError, IndexError) as exc:
        return KvCacheScrape(
            ts_s,
            url,
            kind,
            ok=False,
            error=f"not Prometheus exposition text: {exc}",
            fetch_s=fetch_s,
        )
    return KvCacheScrape(
        ts_s=ts_s,
        source=url,
        kind=kind,
        ok=True,
        values=parsed.values,
        histograms=parsed.histograms,
        names=parsed.names,
        models=parsed.models,
        engines=parsed.engines,
        fetch_s=fetch_s,
    )
