"""Limits on what a program may use, and what is reported when one is crossed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

# limit field -> (metric it watches, unit for messages)
LIMIT_METRICS: dict[str, tuple[str, str]] = {
    "max_memory_mb": ("memory_used_mb", "MB"),
    "max_memory_percent": ("memory_percent", "%"),
    "max_cpu_percent": ("cpu_percent", "%"),
    "max_gpu_memory_mb": ("gpu_memory_mb", "MB"),
    "max_gpu_utilization": ("gpu_utilization", "%"),
    "max_power_watts": ("power_watts", "W"),
    "max_temp_celsius": ("temperature_celsius", "°C"),
}

# Kinds of LimitViolation, in the order a limit goes through them.
KINDS = ("approaching", "predicted", "exceeded", "recovered")


@dataclass(frozen=True)
class ResourceLimits:
    """Upper limits; a limit left as None is not watched.

    Attributes:
        max_memory_mb: Resident memory of the scope, MiB.
        max_memory_percent: The same as a share of the machine's memory.
        max_cpu_percent: CPU, in the scope's percent (see ``ResourceMetrics.cpu_percent``).
        max_gpu_memory_mb: GPU memory, MiB.
        max_gpu_utilization: GPU utilization, percent.
        max_power_watts: GPU power draw, watts.
        max_temp_celsius: Hottest GPU/CPU sensor, °C.
        sustain_s: A reading must stay over a limit this long before it counts as exceeded
            (0: the first reading over it counts). Short spikes are then ignored.
        repeat_s: While a limit stays exceeded, handlers hear about it again this often, with
            the updated value and duration.

    Raises:
        ValueError: a limit that is not a positive finite number, a percent over 100 where
            100 is the most (memory), or negative ``sustain_s``/``repeat_s``.
    """

    max_memory_mb: float | None = None
    max_memory_percent: float | None = None
    max_cpu_percent: float | None = None
    max_gpu_memory_mb: float | None = None
    max_gpu_utilization: float | None = None
    max_power_watts: float | None = None
    max_temp_celsius: float | None = None
    sustain_s: float = 0.0
    repeat_s: float = 30.0

    def __post_init__(self) -> None:
        for name in LIMIT_METRICS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, not {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        if self.max_memory_percent is not None and self.max_memory_percent > 100:
            raise ValueError(
                f"max_memory_percent must be at most 100, not {self.max_memory_percent!r}"
            )
        for name in ("sustain_s", "repeat_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be zero or a positive number of seconds")

    def watched(self) -> dict[str, float]:
        """The set limits: limit name -> value."""
        return {
            name: float(getattr(self, name))
            for name in LIMIT_METRICS
            if getattr(self, name) is not None
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every field, for keyword filtering in ``create_resource_manager``."""
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class LimitViolation:
    """A limit crossed, about to be crossed, or no longer crossed.

    Attributes:
        kind: ``exceeded`` (over the limit, for ``sustain_s`` at least), ``approaching`` (the
            dynamic strategy: over its warning fraction of the limit), ``predicted`` (the
            predictive strategy: the trend crosses the limit at ``predicted_at_s``) or
            ``recovered`` (back under after being exceeded; ``duration_s`` says how long).
        limit: The limit's name, e.g. ``max_memory_mb``.
        metric: The reading it watches, e.g. ``memory_used_mb``.
        value: The reading (for ``predicted``, the trend's value now).
        threshold: What the reading was held against: the limit, or a cooperative share.
        excess: ``value - threshold`` (negative while only approaching or predicted).
        excess_pct: ``excess`` as a percentage of ``threshold``.
        started_s: Epoch seconds when the reading first went over ``threshold``, or when
            the approach/prediction was first seen.
        duration_s: How long it has lasted so far.
        at_s: Epoch seconds of the reading this report is about.
        predicted_at_s: ``predicted`` only: when the trend reaches the threshold.
        share: True when ``threshold`` is this manager's share of a cooperative budget.
        message: One line saying all of the above.
    """

    kind: str
    limit: str
    metric: str
    value: float
    threshold: float
    excess: float
    excess_pct: float
    started_s: float
    duration_s: float
    at_s: float
    predicted_at_s: float | None = None
    share: bool = False
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def describe(v: LimitViolation) -> str:
    """The one-line message for a violation."""
    unit = LIMIT_METRICS[v.limit][1]
    against = "its share" if v.share else v.limit
    reading = f"{v.metric} {v.value:.1f} {unit}"
    if v.kind == "exceeded":
        by = f"{v.excess:.1f} points" if unit == "%" else f"{v.excess:.1f} {unit}"
        return (
            f"{reading} is over {against} {v.threshold:.1f} {unit} by {by} "
            f"({v.excess_pct:.1f} % over) for {v.duration_s:.1f} s"
        )
    if v.kind == "approaching":
        return f"{reading} is at {100 + v.excess_pct:.1f} % of {against} {v.threshold:.1f} {unit}"
    if v.kind == "predicted":
        eta = max(0.0, (v.predicted_at_s or v.at_s) - v.at_s)
        return (
            f"{reading} is rising and is predicted to reach {against} "
            f"{v.threshold:.1f} {unit} in {eta:.0f} s"
        )
    return f"{reading} is back under {against} {v.threshold:.1f} {unit} after {v.duration_s:.1f} s"


class ResourceLimitExceeded(Exception):  # noqa: N818 - seed-style name users will catch
    """Raised in the monitored thread by a hard-mode manager when a limit is exceeded.

    Attributes:
        violation: What was exceeded, by how much, for how long.
    """

    # Set on the per-violation subclass the monitor raises asynchronously (a class, since
    # CPython raises an asynchronous exception by instantiating it with no arguments).
    pending: LimitViolation | None = None

    def __init__(self, violation: LimitViolation | None = None) -> None:
        self.violation = violation if violation is not None else type(self).pending
        super().__init__(self.violation.message if self.violation else "resource limit exceeded")
