"""Records of the recommendation engine, its thresholds, confidence rule and MIG table.

Every threshold the engine applies is a module constant here, so reports and docs can quote
them and tests can reason about them. :mod:`gpufleet.analysis.recommend` holds the rules.

Confidence (0..1) is the mean of three parts, each 0..1, and always comes with its basis:

* **coverage**: hours of data behind the finding over :data:`FULL_COVERAGE_H` (a week, so a
  weekly cycle has been seen), capped at 1;
* **margin**: how far the measure is past its threshold, relative to the room there was;
* **consistency**: share of the hours in which the condition held on its own.

The mean is then capped by the hours of data: confidence is at most
``hours / CONFIDENCE_CAP_H`` (:data:`CONFIDENCE_CAP_H` is two days), so a finding from under a
day of data is below 0.5 and ``low`` whatever its margin and consistency, one from under a
day and a half at most ``medium``, and from two days on the cap no longer applies.

Labels: ``high`` from 0.75, ``medium`` from 0.5, ``low`` below.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from gpufleet.analysis.scope import Scope, Window

KINDS: tuple[str, ...] = (
    "scale_down",
    "scale_up",
    "consolidate",
    "mig_or_share",
    "right_size",
    "reclaim_idle",
)
ACTION_TYPES: tuple[str, ...] = (
    "drain_node",
    "release_gpus",
    "resize_workload",
    "move_workload",
    "enable_mig",
    "enable_time_slicing",
    "add_capacity",
    "notify_owner",
)

MONTH_H = 720.0
"""Hours in the 30 days savings are scaled to."""
FULL_COVERAGE_H = 168.0
"""Hours of data for full coverage (a week, so that a weekly cycle has been seen)."""
CONFIDENCE_CAP_H = 48.0
"""Confidence is at most ``hours of data / CONFIDENCE_CAP_H``: ``low`` (below 0.5) with under
a day of data."""
SCALE_DOWN_UNALLOCATED_FRACTION = 0.9
"""A GPU is surplus when nobody held it for at least this share of its observed time."""
SCALE_UP_ALLOCATION_RATE = 0.9
SCALE_UP_P95_UTIL_PCT = 90.0
SCALE_UP_MEM_PEAK_PCT = 95.0
"""Memory-bound when the GPU's peak reading reaches this share of its memory (as
``utilization.MEM_SATURATED_PCT``)."""
SCALE_UP_HOURS_FRACTION = 0.5
"""Saturation must hold in at least this share of the hours with data."""
SCALE_UP_TARGET_ALLOCATION = 0.8
"""Capacity to add is sized to bring the allocation rate down to this."""
SHAREABLE_KINDS = frozenset({"inference", "notebook", "batch"})
CONSOLIDATE_MIN_PRESENCE = 0.5
"""Only workloads that held a GPU for at least this share of the window are packed."""
CONSOLIDATE_FOREIGN_SHARE = 0.1
"""A GPU is a packing source only if other workloads held it for less than this share."""
PACKING_HEADROOM = 0.1
MIG_MEM_PEAK_FRACTION = 0.5
MIG_P95_UTIL_PCT = 30.0
MIG_MIN_ALLOCATION = 0.5
RIGHT_SIZE_BUSY_FRACTION = 0.1
"""A job's GPU busy (at or above the idle threshold) less than this share of its held time
is one it does not need."""
RECLAIM_IDLE_FRACTION = 0.8
RECLAIM_MIN_IDLE_HOURS = 4.0


@dataclass(frozen=True, slots=True)
class MigProfile:
    """A MIG GPU-instance profile: compute slices of 7 and memory slices of 8."""

    name: str
    compute_sevenths: int
    memory_eighths: int


def _profiles(gb: tuple[int, int, int, int]) -> tuple[MigProfile, ...]:
    one, two, half, full = gb
    return (
        MigProfile(f"1g.{one}gb", 1, 1),
        MigProfile(f"1g.{two}gb", 1, 2),
        MigProfile(f"2g.{two}gb", 2, 2),
        MigProfile(f"3g.{half}gb", 3, 4),
        MigProfile(f"4g.{half}gb", 4, 4),
        MigProfile(f"7g.{full}gb", 7, 8),
    )


MIG_PROFILES: Mapping[str, tuple[MigProfile, ...]] = {
    "A100 40GB": _profiles((5, 10, 20, 40)),
    "A100 80GB": _profiles((10, 20, 40, 80)),
    "H100 80GB": _profiles((10, 20, 40, 80)),
    "H200 141GB": _profiles((18, 35, 71, 141)),
}
"""GPU-instance profiles per model, smallest first, from NVIDIA's MIG User Guide, "Supported
MIG Profiles" (https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html):
1g = 1/7 of the SMs with 1/8 of memory (2/8 for the larger 1g), 2g = 2/7 with 2/8, 3g = 3/7
and 4g = 4/7 with 4/8, 7g the whole GPU. Other models get time-slicing instead."""


def mig_table(model: str | None, mem_total_bytes: int | None) -> str | None:
    """The :data:`MIG_PROFILES` key of a GPU model as NVML names it, None when not MIG-capable.

    Memory tells the 40 GB A100 from the 80 GB one, and the 80 GB H100 from the 94 GB NVL
    (whose profiles differ and are not tabled).
    """
    name = (model or "").upper()
    gib = (mem_total_bytes or 0) / (1 << 30)
    if "A100" in name and gib > 0:
        return "A100 40GB" if gib < 60 else "A100 80GB"
    if "H100" in name and 0 < gib < 85:
        return "H100 80GB"
    if "H200" in name:
        return "H200 141GB"
    return None


@dataclass(frozen=True, slots=True)
class Confidence:
    """A confidence value with the parts it came from."""

    value: float
    label: str
    basis: str


def _hours_text(hours: float) -> str:
    """``1 min``, ``45 min``, ``8 h``: minutes below an hour, so a short history is not 0 h."""
    if hours < 1.0:
        return f"{max(hours, 0.0) * 60:.0f} min"
    return f"{hours:.0f} h"


def confidence(hours: float, margin: float, consistency: float) -> Confidence:
    """Combine coverage, margin and consistency, capped by the hours of data.

    The value is the mean of the three parts (each clamped to 0..1), capped at
    ``hours / CONFIDENCE_CAP_H``: with under a day of data it is below 0.5, so ``low``, however
    far past its threshold and however consistent the finding. The basis says when the cap
    applied.
    """
    coverage = min(max(hours / FULL_COVERAGE_H, 0.0), 1.0)
    margin = min(max(margin, 0.0), 1.0)
    consistency = min(max(consistency, 0.0), 1.0)
    mean = round((coverage + margin + consistency) / 3.0, 3)
    # Rounded down, so that a cap just under a label's threshold stays under it.
    cap = math.floor(min(max(hours / CONFIDENCE_CAP_H, 0.0), 1.0) * 1000.0) / 1000.0
    value = min(mean, cap)
    label = "high" if value >= 0.75 else "medium" if value >= 0.5 else "low"
    basis = (
        f"{_hours_text(hours)} of data (coverage {coverage:.2f} of a week), "
        f"margin past the threshold {margin:.2f}, "
        f"condition held in {consistency:.0%} of hours"
    )
    if cap < mean:
        basis += (
            f"; capped at {value:.2f} by the hours of data (at most hours / "
            f"{CONFIDENCE_CAP_H:.0f} h: low with under a day of data)"
        )
    return Confidence(value, label, basis)


@dataclass(frozen=True, slots=True)
class Target:
    """What a recommendation is about; unset levels are None or empty."""

    cluster: str
    node: str | None = None
    gpu_uuids: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()
    """``node GPU index`` labels of ``gpu_uuids``."""
    namespace: str | None = None
    user: str | None = None
    workload: str | None = None
    gpu_model: str | None = None

    def key(self) -> str:
        """A canonical string for ids: every level, in a fixed order."""
        parts = (self.cluster, self.node, ",".join(self.gpu_uuids), self.namespace, self.user)
        return "|".join(p or "" for p in (*parts, self.workload, self.gpu_model))


@dataclass(frozen=True, slots=True)
class Action:
    """A machine-readable change for an executor: ``type`` is one of :data:`ACTION_TYPES`."""

    type: str
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One thing to change, why (measured evidence), what it saves and how sure it is."""

    id: str
    kind: str
    target: Target
    title: str
    evidence: tuple[str, ...]
    """Measured facts, each with its numbers and the window."""
    metrics: Mapping[str, float | int | None]
    """The numbers behind the evidence, unrounded, for machines."""
    action: Action
    expected_monthly_saving_usd: float
    """USD over 30 days at the price table; negative for added capacity (a cost)."""
    confidence: float
    confidence_label: str
    confidence_basis: str
    title_zh: str = ""
    """The title in Chinese, for the analyst's Chinese answers (same numbers)."""


def recommendation_id(kind: str, target: Target, window: Window | None = None) -> str:
    """Stable id: the same kind and target always give the same 16 hex digits.

    The window is deliberately not part of it: a recommendation seen over "the last 7 days"
    keeps its id when asked again a minute later, so ``execute`` can name what was shown.
    (``window`` is accepted for callers that pass it and ignored.)
    """
    del window
    raw = f"{kind}\n{target.key()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RecommendationSet:
    """Everything :func:`~gpufleet.analysis.recommend.recommend` found for a window."""

    window: Window
    scope: Scope
    idle_threshold_pct: float
    kinds: tuple[str, ...]
    """Kinds that were looked for."""
    recommendations: tuple[Recommendation, ...]
    """Highest expected saving first."""
    total_monthly_saving_usd: float
    """Sum of the positive savings (added capacity is reported, not netted)."""
    prices_usd_per_gpu_hour: Mapping[str, float]
    fallback_models: tuple[str, ...]
    thresholds: Mapping[str, float]

    def of_kind(self, kind: str) -> tuple[Recommendation, ...]:
        """The recommendations of one kind, in the set's order."""
        return tuple(r for r in self.recommendations if r.kind == kind)
