"""First pass of a CSV import: entities, their nodes and spacing, the time span.

See :mod:`gpufleet.store.importers.csv_import` for how these become snapshots.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gpufleet.model import UNKNOWN, Attribution
from gpufleet.store.base import Store

Metric = Literal["gpu_util_pct", "gpu_mem_used_bytes"]
EntityKind = Literal["gpu", "workload", "node"]

DEFAULT_INTERVAL_S = 60.0
"""Interval of single-row entities when no entity has two rows to measure."""


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """How one entity is written: its GPU identity, its samples' interval, its attribution."""

    uuid: str
    index: int
    interval_s: float
    attribution: Attribution | None


@dataclass(frozen=True, slots=True)
class CsvSpec:
    """What the caller asked for, as the row reader needs it."""

    paths: tuple[Path, ...]
    wanted: dict[str, str | None]
    metric: Metric
    entity_kind: EntityKind
    cluster: str
    value_scale: float
    gpu_model: str | None = None
    """Name (model) of every imported GPU; None leaves it unknown."""
    latest_s: float = math.inf
    """Rows timed after this (now plus a small allowance) are rejected as in the future."""


Row = tuple[float, str, str, float]
"""(ts_s, entity, node, value) of an accepted row."""


class Scan:
    """First-pass facts: entities, their nodes and spacing, the time span, value hints."""

    def __init__(self) -> None:
        self.first_node: dict[str, str] = {}
        self.last_ts_by_entity: dict[str, float] = {}
        self.gaps: dict[str, Counter[int]] = {}
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.max_value = 0.0

    def add(self, row: Row) -> None:
        """Take in one accepted row."""
        ts, entity, node, value = row
        previous = self.last_ts_by_entity.get(entity)
        if previous is None:
            self.first_node[entity] = node
        else:
            # Spacing kept in whole milliseconds: traces use few distinct spacings, so the
            # counter stays small and the median exact to the millisecond.
            gaps = self.gaps.get(entity)
            if gaps is None:
                gaps = self.gaps[entity] = Counter()
            gaps[round((ts - previous) * 1000.0)] += 1
        self.last_ts_by_entity[entity] = ts
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
        self.max_value = max(self.max_value, value)

    def entities(self, spec: CsvSpec, namespace: str | None) -> dict[str, EntityInfo]:
        """Identity, index and interval of every entity seen."""
        intervals = {e: _counter_median(g) / 1000.0 for e, g in self.gaps.items()}
        fallback = statistics.median(intervals.values()) if intervals else DEFAULT_INTERVAL_S
        by_node: dict[str, list[str]] = {}
        for entity, node in self.first_node.items():
            by_node.setdefault(node, []).append(entity)
        out: dict[str, EntityInfo] = {}
        for members in by_node.values():
            for index, entity in enumerate(sorted(members)):
                interval = intervals.get(entity, fallback)
                if spec.entity_kind == "workload":
                    attr = Attribution(namespace=namespace or UNKNOWN, workload=entity)
                    out[entity] = EntityInfo(f"workload-{entity}", index, interval, attr)
                elif spec.entity_kind == "node":
                    out[entity] = EntityInfo(f"node-{entity}", 0, interval, None)
                else:
                    out[entity] = EntityInfo(entity, index, interval, None)
        return out

    def warnings(self, spec: CsvSpec, store: Store, now_s: float, rejected: int) -> list[str]:
        """Hints about data that imported but may not mean what the caller thinks."""
        out: list[str] = []
        if spec.metric == "gpu_util_pct" and 0.0 < self.max_value <= 1.0:
            out.append(
                "every utilization value is at most 1: if the trace gives fractions, "
                "import again with value_scale=100"
            )
        if self.first_ts is not None and self.first_ts < now_s - store.retention.hour_s:
            days = store.retention.hour_s / 86_400.0
            out.append(
                f"rows go back further than the store's hourly retention ({days:g} days): "
                "the next retention pass deletes them; open the store with a longer "
                "retention to keep old traces"
            )
        single = sum(1 for e in self.first_node if e not in self.gaps)
        if single:
            out.append(f"{single} entities have a single row; their interval is a guess")
        if rejected:
            out.append(f"{rejected} rows were rejected; see rejections for examples")
        return out


def _counter_median(counter: Counter[int]) -> float:
    """Median of the multiset ``counter`` (mean of the middle two when even)."""
    total = sum(counter.values())
    lower_at, upper_at = (total - 1) // 2, total // 2
    lower: int | None = None
    seen = 0
    for value in sorted(counter):
        seen += counter[value]
        if lower is None and seen > lower_at:
            lower = value
        if seen > upper_at:
            assert lower is not None
            return (lower + value) / 2.0
    raise ValueError("median of an empty counter")
