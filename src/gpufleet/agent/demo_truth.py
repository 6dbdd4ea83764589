"""What analysis of the demo history should find: the findings planted in the demo cluster.

Kept as plain records so tests, demos and the analyst's evaluations can compare answers
with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpufleet.collectors.sim_scenario import Scenario
from gpufleet.store.base import DAY_S

WEEK_S = 7 * DAY_S


@dataclass(frozen=True, slots=True)
class IdleHolder:
    """A workload that holds GPUs and their memory while doing (almost) no work."""

    namespace: str
    user: str
    workload: str
    node: str
    gpu_indices: tuple[int, ...]
    start_s: float
    end_s: float
    mem_frac: float
    """Share of each GPU's memory held for the whole time."""


@dataclass(frozen=True, slots=True)
class TeamDrop:
    """A namespace whose GPU usage fell in the last seven days, and the user behind it."""

    namespace: str
    user: str
    previous_start_s: float
    last_start_s: float
    """The previous week is ``[previous_start_s, last_start_s)``."""
    last_end_s: float
    """The last week is ``[last_start_s, last_end_s)``."""
    previous_jobs: int
    last_jobs: int
    """Jobs of ``user`` that started in each week."""
    previous_gpu_hours: float
    last_gpu_hours: float
    """GPU-hours the namespace held in each week (scheduled, before sampling)."""

    @property
    def drop_pct(self) -> float:
        """How much the namespace's GPU-hours fell, in percent of the previous week."""
        if self.previous_gpu_hours <= 0:
            return 0.0
        return 100.0 * (1.0 - self.last_gpu_hours / self.previous_gpu_hours)


@dataclass(frozen=True, slots=True)
class DiurnalLoad:
    """Workloads whose utilization follows the time of day."""

    namespace: str
    workloads: tuple[str, ...]
    peak_hour_utc: float
    trough_hour_utc: float
    weekend_factor: float
    """Share of the weekday swing that remains on Saturdays and Sundays."""


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What analysis of the demo history should find."""

    idle_holders: tuple[IdleHolder, ...]
    team_drop: TeamDrop | None
    """None when the history is shorter than two weeks."""
    diurnal: DiurnalLoad


def team_drop(scenario: Scenario, *, namespace: str, user: str, end_s: float) -> TeamDrop:
    """The week-over-week change of ``namespace`` ending at ``end_s``, with ``user``'s jobs."""
    last_start = end_s - WEEK_S
    previous_start = last_start - WEEK_S
    starts = [w.start_s for w in scenario.select(namespace=namespace, user=user)]
    return TeamDrop(
        namespace=namespace,
        user=user,
        previous_start_s=previous_start,
        last_start_s=last_start,
        last_end_s=end_s,
        previous_jobs=sum(1 for t in starts if previous_start <= t < last_start),
        last_jobs=sum(1 for t in starts if last_start <= t < end_s),
        previous_gpu_hours=scenario.gpu_seconds(previous_start, last_start, namespace=namespace)
        / 3600.0,
        last_gpu_hours=scenario.gpu_seconds(last_start, end_s, namespace=namespace) / 3600.0,
    )
