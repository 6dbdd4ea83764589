"""Handing tasks to an engine that schedules at scale (the hub's scale-out adapters).

A hub schedules a LAN of up to a few hundred nodes itself. Past that, or when work needs
what a cluster scheduler does better (gang scheduling, fair share between many teams,
preemption, autoscaling), the hub can hand a task to an engine users already run: a task
submitted with ``"engine": "ray"`` is not placed on the hub's agents but submitted to that
engine, which picks the GPUs; the hub keeps it in its queue, follows its state, collects its
exit code and output, and cancels it there. See ``docs/SCALE_OUT.md`` for when to switch.

An engine is a class with the :class:`Engine` protocol; :mod:`gpufleet.fleet.scaleout_ray`
is the Ray one (Ray Jobs' REST API: ``entrypoint_num_gpus``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class EngineError(Exception):
    """The engine refused or could not be reached; the message says which and why."""


@dataclass(frozen=True, slots=True)
class EngineStatus:
    """A submitted part as the engine sees it, in the hub's part states."""

    state: str
    """``placed`` (waiting there), ``running``, ``succeeded``, ``failed`` or ``cancelled``."""
    exit_code: int | None = None
    message: str | None = None


class Engine(Protocol):
    name: str
    where: str
    """Where the engine is (its address), for listings."""

    def submit(
        self,
        job_id: str,
        command: Sequence[str],
        *,
        gpus: float,
        cpus: float,
        env: Mapping[str, str],
        metadata: Mapping[str, str],
    ) -> str:
        """Submit one part under ``job_id`` (submitting an id twice is not an error: the
        engine's id of it is returned); the engine's id."""
        ...

    def status(self, engine_id: str) -> EngineStatus: ...

    def logs(self, engine_id: str) -> str: ...

    def stop(self, engine_id: str) -> None: ...
