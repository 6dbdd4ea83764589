"""Watch a program's resources from inside it (seed 004), on the agent's own collectors.

>>> from gpufleet import create_resource_manager
>>> manager = create_resource_manager(max_memory_mb=1000, strategy="adaptive")
>>> manager.start_monitoring()
>>> ...  # the program
>>> manager.stop_monitoring()
>>> manager.save_metrics("resource_metrics.json")
"""

from __future__ import annotations

from typing import Any

from gpufleet.resources.cooperative import (
    CooperativeStrategy,
    MachineBudget,
    ProcessBudget,
    Share,
    fair_shares,
    shared_budget,
)
from gpufleet.resources.limits import LimitViolation, ResourceLimitExceeded, ResourceLimits
from gpufleet.resources.manager import ResourceManager, make_strategy
from gpufleet.resources.metrics import ResourceMetrics
from gpufleet.resources.strategies import (
    STRATEGIES,
    AdaptiveStrategy,
    Advice,
    Check,
    DynamicStrategy,
    PredictiveStrategy,
    Signal,
    Strategy,
)

__all__ = [
    "STRATEGIES",
    "AdaptiveStrategy",
    "Advice",
    "Check",
    "CooperativeStrategy",
    "DynamicStrategy",
    "LimitViolation",
    "MachineBudget",
    "PredictiveStrategy",
    "ProcessBudget",
    "ResourceLimitExceeded",
    "ResourceLimits",
    "ResourceManager",
    "ResourceMetrics",
    "Share",
    "Signal",
    "Strategy",
    "create_resource_manager",
    "fair_shares",
    "make_strategy",
    "shared_budget",
]


def create_resource_manager(
    *,
    strategy: str | Strategy = "dynamic",
    callback: Any = None,
    monitoring_interval: float = 1.0,
    **options: Any,
) -> ResourceManager:
    """A :class:`ResourceManager` from flat keywords, as in seed 004.

    Limit keywords (``max_memory_mb``, ``max_cpu_percent``, ``max_gpu_memory_mb``,
    ``max_power_watts``, ``max_temp_celsius``, ``sustain_s``, ...) build the
    :class:`ResourceLimits`; the rest (``scope``, ``hard``, ``on_violation``, ...) go to the
    manager.

    Raises:
        ValueError: a bad limit, strategy, interval or scope.
        TypeError: a keyword neither takes.
    """
    limit_names = set(ResourceLimits.field_names())
    limits = ResourceLimits(**{k: v for k, v in options.items() if k in limit_names})
    rest = {k: v for k, v in options.items() if k not in limit_names}
    return ResourceManager(
        limits=limits,
        strategy=strategy,
        callback=callback,
        monitoring_interval=monitoring_interval,
        **rest,
    )
