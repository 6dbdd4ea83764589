"""Plumbing shared by the recommendation rules: per-GPU totals and the rule context.

:mod:`gpufleet.analysis.recommend` builds one :class:`Ctx` per call and hands it to the
capacity rules (:mod:`~gpufleet.analysis.recommend_capacity`) and the workload rules
(:mod:`~gpufleet.analysis.recommend_workloads`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gpufleet.analysis import recommend_types as t
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.recommend_types import Action, Recommendation, Target, recommendation_id
from gpufleet.analysis.scope import ScopedRows, covered_span_s, gpu_label, workload_key
from gpufleet.store.base import UTIL_HIST_BINS, GpuUsage, WorkloadUsage

HOUR_S = 3600.0
GIB = 1 << 30


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
    """What every rule needs: the rows, prices, the window's labels and the month factor."""

    def __init__(self, scoped: ScopedRows, prices: PriceTable, threshold: float) -> None:
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
        self.gpus: dict[str, Gpu] = {}
        for r in scoped.gpu_rows:
            self.gpus.setdefault(r.uuid, Gpu(r.uuid)).add(r)
        for g in self.gpus.values():
            g.finish()
        self.workloads: dict[str, list[WorkloadUsage]] = {}
        for w in scoped.workload_rows:
            self.workloads.setdefault(workload_key(w), []).append(w)

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
