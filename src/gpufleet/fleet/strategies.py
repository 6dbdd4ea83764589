"""Allocation strategies: which of the nodes a request fits on gets it.

Every strategy implements :class:`Strategy` (``choose(request, candidates, state)`` returns
one of the candidate node indices), so a new one is a class and a line in :data:`STRATEGIES`.
Candidates are the nodes the request fits on now (:meth:`ClusterState.candidates`), in
inventory order, never empty.

* ``best_fit`` (default): the node left with the fewest wholly free GPUs, then the least free
  milli-GPUs, after placing. Packing keeps whole nodes free, so multi-GPU requests are not
  starved by fragmentation.
* ``least_loaded``: the node with the smallest allocated share of its GPUs (spreads load).
* ``round_robin``: the next node in inventory order after the last one chosen.
* ``weighted``: smooth weighted round robin over the candidates by node ``weight`` (as
  nginx's upstream balancing): a node of weight 2 gets two requests for each one of weight 1.
* ``geographic``: candidates in the request's zone first (the least loaded of them), then the
  rest; without a zone on the request it is ``least_loaded``.
* ``random``: uniformly at random, from a seeded generator (replays are repeatable).
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Sequence
from typing import Protocol

from gpufleet.fleet.placement import ClusterState, PlacementError, Request


class Strategy(Protocol):
    """Chooses one node index of ``candidates`` (non-empty) for ``request``."""

    name: str

    def choose(self, request: Request, candidates: Sequence[int], state: ClusterState) -> int:
        """The chosen node index (one of ``candidates``)."""
        ...


class BestFit:
    name = "best_fit"

    def choose(self, request: Request, candidates: Sequence[int], state: ClusterState) -> int:
        ff, free_cpu = state.full_free, state.free_cpu
        if request.num_gpu == 0:
            # CPU-only work goes where GPUs are fewest free (it strands no GPU), least CPU left.
            return min(candidates, key=lambda i: (ff[i], free_cpu[i]))
        if request.whole:
            used = state.node_used
            return min(candidates, key=lambda i: (ff[i], -used[i]))
        # A fraction: the node whose tightest fitting GPU has the least room, then fewest free.
        need = request.gpu_milli
        free = state.free

        def room(i: int) -> tuple[int, int]:
            return (min(f for f in free[i] if f >= need), ff[i])

        return min(candidates, key=room)


class LeastLoaded:
    name = "least_loaded"

    def choose(self, request: Request, candidates: Sequence[int], state: ClusterState) -> int:
        return min(candidates, key=state.load)


class RoundRobin:
    name = "round_robin"

    def __init__(self) -> None:
        self._last = -1

    def choose(self, request: Request, candidates: Sequence[int], state: ClusterState) -> int:
        after = [i for i in candidates if i > self._last]
        chosen = after[0] if after else candidates[0]
        self._last = chosen
        return chosen


class Weighted:
    name = "weighted"

    def __init__(self) -> None:
        self._current: dict[int, float] = {}

    def choose(self, request: Request, candidates: Sequence[int], state: ClusterState) -> int:
        current = self._current
        total = 0.0
        best, best_value = candidates[0], float("-inf")
        for i in candidates:
            w = state.nodes[i].weight
            total += w
            value = current.get(i, 0.0) + w
            current[i] = value
            if value > best_value:
                best, best_value = i, value
        current[best] -= total
        return best


class Geographic:
    name = "geographic"

    def choose(self, request: Request, candidates: Sequence[int], state: ClusterState) -> int:
        if request.zone is not None:
            near = [i for i in candidates if state.nodes[i].zone == request.zone]
            if near:
                return min(near, key=state.load)
        return min(candidates, key=state.load)


class Random:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self._rng = _random.Random(seed)

    def choose(self, request: Request, candidates: Sequence[int], state: ClusterState) -> int:
        return candidates[self._rng.randrange(len(candidates))]


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "best_fit": BestFit,
    "least_loaded": LeastLoaded,
    "round_robin": RoundRobin,
    "weighted": Weighted,
    "geographic": Geographic,
    "random": Random,
}
DEFAULT_STRATEGY = "best_fit"


def make_strategy(name: str, *, seed: int = 0) -> Strategy:
    """A fresh strategy by name (``random`` seeded with ``seed``).

    Raises:
        PlacementError: an unknown name (the message lists the known ones).
    """
    if name == "random":
        return Random(seed)
    factory = STRATEGIES.get(name)
    if factory is None:
        raise PlacementError(f"unknown strategy {name!r}; use one of: {', '.join(STRATEGIES)}")
    return factory()
