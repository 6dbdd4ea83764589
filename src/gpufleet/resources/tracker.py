"""Turns readings and strategy signals into timed violation reports.

A limit is ``exceeded`` once its reading has stayed over the threshold for ``sustain_s``;
it is reported then and again every ``repeat_s`` while it lasts, and ``recovered`` once
the reading is back under. ``approaching`` and ``predicted`` warnings are reported when
they first appear and every ``repeat_s`` while they persist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from gpufleet.resources.limits import LIMIT_METRICS, LimitViolation, describe
from gpufleet.resources.metrics import ResourceMetrics
from gpufleet.resources.strategies import Signal


@dataclass
class _State:
    since_s: float
    reported_s: float | None = None


def _report(
    kind: str,
    limit: str,
    value: float,
    threshold: float,
    since_s: float,
    at_s: float,
    *,
    predicted_at_s: float | None = None,
    share: bool = False,
) -> LimitViolation:
    excess = value - threshold
    v = LimitViolation(
        kind=kind,
        limit=limit,
        metric=LIMIT_METRICS[limit][0],
        value=value,
        threshold=threshold,
        excess=excess,
        excess_pct=100.0 * excess / threshold,
        started_s=since_s,
        duration_s=max(0.0, at_s - since_s),
        at_s=at_s,
        predicted_at_s=predicted_at_s,
        share=share,
    )
    return replace(v, message=describe(v))


class ViolationTracker:
    """Keeps, per limit, since when it is over and when it was last reported."""

    def __init__(self, *, sustain_s: float, repeat_s: float) -> None:
        self.sustain_s = sustain_s
        self.repeat_s = repeat_s
        self._over: dict[str, _State] = {}
        self._warned: dict[tuple[str, str], _State] = {}

    def _due(self, state: _State, now_s: float) -> bool:
        return state.reported_s is None or now_s - state.reported_s >= self.repeat_s

    def update(
        self,
        metrics: ResourceMetrics,
        thresholds: Mapping[str, float],
        shared: frozenset[str],
        signals: Iterable[Signal],
    ) -> list[LimitViolation]:
        """Reports due after this reading, in limit order."""
        now = metrics.timestamp_s
        out: list[LimitViolation] = []
        for limit, threshold in thresholds.items():
            value = metrics.value(LIMIT_METRICS[limit][0])
            state = self._over.get(limit)
            if value is not None and value > threshold:
                if state is None:
                    state = self._over[limit] = _State(now)
                if now - state.since_s >= self.sustain_s and self._due(state, now):
                    state.reported_s = now
                    out.append(
                        _report(
                            "exceeded",
                            limit,
                            value,
                            threshold,
                            state.since_s,
                            now,
                            share=limit in shared,
                        )
                    )
            elif state is not None:
                del self._over[limit]
                if state.reported_s is not None and value is not None:
                    out.append(
                        _report(
                            "recovered",
                            limit,
                            value,
                            threshold,
                            state.since_s,
                            now,
                            share=limit in shared,
                        )
                    )
        live: set[tuple[str, str]] = set()
        for sig in signals:
            if sig.limit in self._over:
                continue  # already over: the exceeded report says more
            key = (sig.kind, sig.limit)
            live.add(key)
            state = self._warned.setdefault(key, _State(now))
            if self._due(state, now):
                state.reported_s = now
                out.append(
                    _report(
                        sig.kind,
                        sig.limit,
                        sig.value,
                        sig.threshold,
                        state.since_s,
                        now,
                        predicted_at_s=sig.predicted_at_s,
                    )
                )
        for key in self._warned.keys() - live:
            del self._warned[key]
        return out

    def exceeded(self) -> tuple[str, ...]:
        """Limits over their threshold now (sustained or not yet)."""
        return tuple(self._over)
