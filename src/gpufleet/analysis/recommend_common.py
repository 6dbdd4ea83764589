"""Plumbing shared by the recommendation rules: per-GPU totals and the rule context.

:mod:`gpufleet.analysis.recommend` builds one :class:`Ctx` per call and hands it to the
capacity rules (:mod:`~gpufleet.analysis.recommend_capacity`) and the workload rules
(:mod:`~gpufleet.analysis.recommend_workloads`). Each rule picks its candidates from window
sums (:attr:`Ctx.gpu_sums`, :attr:`Ctx.workload_sums`) with :func:`could_reach` and
:func:`could_stay_below`, then tests and measures them on their rows
(:meth:`Ctx.gpus_of`, :meth:`Ctx.workload_rows`): see :mod:`~gpufleet.analysis.recommend_reads`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from gpufleet.analysis import recommend_types as t
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.recommend_reads import GpuReads, WorkloadId, WorkloadReads
from gpufleet.analysis.recommend_types import Action, Recommendation, Target, recommendation_id
from gpufleet.analysis.scope import ScopedRows, covered_span_s, gpu_label, workload_key
from gpufleet.store.base import (
    UTIL_HIST_BINS,
    GpuUsage,
    GpuUsageSums,
    WorkloadUsage,
    WorkloadUsageSums,
)

HOUR_S = 3600.0
GIB = 1 << 30
SLACK = 1e-9
"""Relative room for rounding when a rule picks candidates from window sums: the store adds
them in its own order, so a sum can differ in its last bits from the rows' sum the rule
tests. Far above the error of adding millions of non-negative terms, far below any margin
a threshold is meant to draw."""


def could_reach(value: float, bound: float) -> bool:
    """Whether ``value >= bound`` (or ``>``) could hold of the exact sums that ``value`` and
    ``bound`` approximate: false only when ``value`` is short by more than rounding."""
    return value >= bound - SLACK * max(abs(value), abs(bound))


def could_stay_below(value: float, bound: float) -> bool:
    """Whether ``value < bound`` (or ``<=``) could hold of the exact sums: false only when
    ``value`` is past ``bound`` by more than rounding."""
    return value < bound + SLACK * max(abs(value), abs(bound))


@dataclass(slots=True)
class Gpu:
    """One GPU's rows in the window and their totals (call :meth:`finish` after the last
    :meth:`add`: the histogram is summed once, column by column, not row by row)."""

    uuid: str
    rows: list[GpuUsage] = field(default_factory=list)
    seconds: float = 0.0
    allocated_s: float = 0.0
    util_sum: float = 0.0
    util_s: float = 0.0
    hist: list[float] = field(default_factory=lambda: [0.0] * UTIL_HIST_BINS)
    mem_peak: int | None = None
    mem_total: int | None = None

    def add(self, r: GpuUsage) -> None:
        self.rows.append(r)
        self.seconds += r.seconds
        self.allocated_s += r.allocated_s
        self.util_sum += r.util_sum
        if r.mem_used_max_bytes is not None:
            self.mem_peak = max(self.mem_peak or 0, r.mem_used_max_bytes)
        self.mem_total = r.mem_total_bytes or self.mem_total

    def finish(self) -> None:
        """Sum the rows' histograms (and the seconds with a reading they add up to)."""
        self.hist = sum_hists(r.util_hist_s for r in self.rows)
        self.util_s = sum(self.hist)

    @property
    def mean_util(self) -> float:
        return self.util_sum / self.util_s if self.util_s > 0 else 0.0


def sum_hists(hists: Iterable[Sequence[float]]) -> list[float]:
    """Bin-by-bin sum of utilization histograms (``[0.0] * bins`` for none)."""
    out = [0.0] * UTIL_HIST_BINS
    for b, column in enumerate(zip(*hists, strict=True)):
        out[b] = sum(column)
    return out


class Ctx:
    """What every rule needs: the window sums, the rows of candidates, prices, the window's
    labels and the month factor."""

    def __init__(
        self,
        scoped: ScopedRows,
        gpu_reads: GpuReads,
        workload_reads: WorkloadReads,
        prices: PriceTable,
        threshold: float,
    ) -> None:
        self.scoped = scoped
        self.window = scoped.window
        self.when = f"over {scoped.window.label()}"
        self.when_zh = f"（{scoped.window.label()}）"
        self.threshold = threshold
        # Scaled from the part of the window history covers (see covered_span_s).
        self.monthly = t.MONTH_H * HOUR_S / covered_span_s(scoped)
        self.prices = prices
        self.used: dict[str, float] = {}
        self.fallback: set[str] = set()
        self._price_by_uuid: dict[str, float] = {}
        self.gpu_reads = gpu_reads
        self.workload_reads = workload_reads
        self.gpu_sums: dict[str, GpuUsageSums] = {s.uuid: s for s in gpu_reads.sums()}
        """Per GPU of the scope with rows in the window, in inventory order."""
        self.workload_sums: dict[str, list[WorkloadUsageSums]] = {}
        """Per workload (``namespace/user/workload``), its sums per GPU."""
        self._ids: dict[str, set[WorkloadId]] = {}
        for w in workload_reads.sums():
            key = f"{w.namespace}/{w.user}/{w.workload}"
            self.workload_sums.setdefault(key, []).append(w)
            self._ids.setdefault(key, set()).add((w.namespace, w.user, w.workload))
        self._gpus: dict[str, Gpu] = {}

    def gpus_of(self, uuids: Iterable[str]) -> dict[str, Gpu]:
        """Those of ``uuids`` with rows in the window, from their rows, in inventory order."""
        wanted = set(uuids) & self.gpu_sums.keys()
        missing = wanted - self._gpus.keys()
        if missing:
            fresh: dict[str, Gpu] = {}
            for r in self.gpu_reads.rows(missing):
                g = fresh.get(r.uuid)
                if g is None:
                    g = fresh[r.uuid] = Gpu(r.uuid)
                g.add(r)
            for g in fresh.values():
                g.finish()
            self._gpus.update(fresh)
        return {u: self._gpus[u] for u in self.gpu_sums if u in wanted}

    def workload_rows(self, keys: Collection[str]) -> dict[str, list[WorkloadUsage]]:
        """The rows of the workloads ``keys`` names, per workload in the order of their first
        row (as a read of every workload row would meet them)."""
        ids = {i for k in keys for i in self._ids.get(k, ())}
        out: dict[str, list[WorkloadUsage]] = {}
        if ids:
            for r in self.workload_reads.rows(workloads=ids):
                out.setdefault(workload_key(r), []).append(r)
        return out

    def price(self, uuid: str) -> float:
        """USD per GPU-hour of ``uuid``'s model, looked up once per UUID."""
        price = self._price_by_uuid.get(uuid)
        if price is None:
            price = self._price_by_uuid[uuid] = self._lookup_price(uuid)
        return price

    def _lookup_price(self, uuid: str) -> float:
        inv = self.scoped.gpus.get(uuid)
        name = inv.name if inv is not None else None
        price, fell_back = self.prices.lookup(name)
        self.used[name or "unknown"] = price
        if fell_back:
            self.fallback.add(name or "unknown")
        return price

    def monthly_usd(self, uuid: str, seconds: float) -> float:
        """Cost of ``seconds`` of this GPU in the window, scaled to 30 days."""
        return seconds / HOUR_S * self.price(uuid) * self.monthly

    def label(self, uuid: str) -> str:
        return gpu_label(self.scoped.gpus.get(uuid), uuid)

    def rec(
        self,
        kind: str,
        target: Target,
        title: str,
        evidence: list[str],
        metrics: dict[str, float | int | None],
        action: Action,
        saving: float,
        conf: t.Confidence,
        title_zh: str = "",
    ) -> Recommendation:
        """Assemble one recommendation with its stable id."""
        return Recommendation(
            id=recommendation_id(kind, target, self.window),
            kind=kind,
            target=target,
            title=title,
            evidence=tuple(evidence),
            metrics=metrics,
            action=action,
            expected_monthly_saving_usd=saving,
            confidence=conf.value,
            confidence_label=conf.label,
            confidence_basis=conf.basis,
            title_zh=title_zh,
        )


def pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0
