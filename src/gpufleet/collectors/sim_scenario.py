"""Workload schedules for the simulator: who holds which GPU when.

A ``Scenario`` is a fixed list of workloads, checked so that no GPU ever carries two
exclusive workloads (inference servers may share a GPU while their memory fits) and indexed
per GPU for O(log n) look-ups while sampling. ``ScenarioBuilder`` places workloads on free
GPUs; ``live_window`` makes the self-generated day of activity a live simulated node runs.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from gpufleet.collectors.sim_workload import (
    DAY_S,
    UtilPattern,
    Workload,
    WorkloadKind,
    stable_seed,
)

MEM_HEADROOM = 0.97
"""Most of a GPU's memory that sharing workloads may hold together (the driver keeps some)."""


class Timeline:
    """Which workloads hold one GPU, as constant segments between sorted breakpoints."""

    __slots__ = ("_bounds", "_sets")

    def __init__(self, workloads: Iterable[Workload]) -> None:
        events: dict[float, list[tuple[int, Workload]]] = {}
        for w in workloads:
            events.setdefault(w.start_s, []).append((1, w))
            events.setdefault(w.end_s, []).append((-1, w))
        bounds: list[float] = []
        sets: list[tuple[Workload, ...]] = []
        active: list[Workload] = []
        for t in sorted(events):
            for delta, w in events[t]:
                if delta < 0:
                    active.remove(w)
            for delta, w in events[t]:
                if delta > 0:
                    active.append(w)
            bounds.append(t)
            sets.append(tuple(sorted(active, key=lambda x: (x.start_s, x.name))))
        self._bounds = bounds
        self._sets = sets

    def active(self, t: float) -> tuple[Workload, ...]:
        """Workloads holding the GPU at ``t`` (start inclusive, end exclusive)."""
        i = bisect_right(self._bounds, t) - 1
        return self._sets[i] if i >= 0 else ()

    def segment(self, t: float) -> tuple[float, float, tuple[Workload, ...]]:
        """``(start, end, workloads)`` of the constant segment that contains ``t``."""
        i = bisect_right(self._bounds, t) - 1
        start = self._bounds[i] if i >= 0 else -math.inf
        end = self._bounds[i + 1] if i + 1 < len(self._bounds) else math.inf
        return start, end, self._sets[i] if i >= 0 else ()


def _conflict(a: Workload, b: Workload) -> str | None:
    """Why ``a`` and ``b`` cannot share a GPU while both run, or None if they can."""
    if a.exclusive or b.exclusive:
        return "an exclusive workload shares the GPU"
    if a.mem_frac + b.mem_frac > MEM_HEADROOM:
        return "their memory does not fit"
    return None


class Scenario:
    """A validated workload schedule over one or more nodes.

    Raises ``ValueError`` at construction when two workloads collide on a GPU: two
    exclusive ones overlap in time, or sharing ones need more memory than the GPU has.
    """

    def __init__(
        self,
        workloads: Iterable[Workload],
        *,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> None:
        self.workloads: tuple[Workload, ...] = tuple(
            sorted(workloads, key=lambda w: (w.start_s, w.node, w.gpu_indices, w.name))
        )
        starts = [w.start_s for w in self.workloads]
        ends = [w.end_s for w in self.workloads]
        self.start_s: float = start_s if start_s is not None else min(starts, default=0.0)
        self.end_s: float = end_s if end_s is not None else max(ends, default=self.start_s)
        per_gpu: dict[tuple[str, int], list[Workload]] = {}
        for w in self.workloads:
            for i in w.gpu_indices:
                per_gpu.setdefault((w.node, i), []).append(w)
        for (node, index), ws in per_gpu.items():
            _check_gpu(node, index, ws)
        self._timelines = {key: Timeline(ws) for key, ws in per_gpu.items()}
        self._empty = Timeline(())

    def nodes(self) -> tuple[str, ...]:
        """Nodes that carry at least one workload, sorted."""
        return tuple(sorted({w.node for w in self.workloads}))

    def max_gpu_index(self, node: str) -> int:
        """Highest GPU index any workload uses on ``node``, or -1 when none."""
        return max((i for w in self.workloads if w.node == node for i in w.gpu_indices), default=-1)

    def timeline(self, node: str, index: int) -> Timeline:
        """The timeline of one GPU (empty when no workload ever uses it)."""
        return self._timelines.get((node, index), self._empty)

    def active(self, node: str, index: int, t: float) -> tuple[Workload, ...]:
        """Workloads holding GPU ``index`` of ``node`` at ``t``."""
        return self.timeline(node, index).active(t)

    def select(
        self,
        *,
        namespace: str | None = None,
        user: str | None = None,
        kind: WorkloadKind | None = None,
        pattern: UtilPattern | None = None,
    ) -> list[Workload]:
        """Workloads matching every given filter, in start order."""
        return [
            w
            for w in self.workloads
            if (namespace is None or w.namespace == namespace)
            and (user is None or w.user == user)
            and (kind is None or w.kind is kind)
            and (pattern is None or w.pattern is pattern)
        ]

    def gpu_seconds(
        self,
        start_s: float,
        end_s: float,
        *,
        namespace: str | None = None,
        user: str | None = None,
    ) -> float:
        """GPU-seconds held in ``[start_s, end_s)`` by the matching workloads.

        Each workload counts its GPUs in full, even where inference servers share one.
        """
        total = 0.0
        for w in self.select(namespace=namespace, user=user):
            overlap = min(end_s, w.end_s) - max(start_s, w.start_s)
            if overlap > 0:
                total += overlap * w.gpu_count
        return total


def _check_gpu(node: str, index: int, workloads: Sequence[Workload]) -> None:
    ordered = sorted(workloads, key=lambda w: w.start_s)
    for pos, a in enumerate(ordered):
        for b in ordered[pos + 1 :]:
            if b.start_s >= a.end_s:
                break
            reason = _conflict(a, b)
            if reason:
                raise ValueError(
                    f"workloads {a.name!r} and {b.name!r} overlap on {node} GPU {index}: {reason}"
                )


class ScenarioBuilder:
    """Places workloads on free GPUs and collects them into a ``Scenario``."""

    def __init__(self, gpus_per_node: Mapping[str, int]) -> None:
        self.gpus_per_node = dict(gpus_per_node)
        # Per GPU: intervals sorted by start, and the longest one, so an overlap check only
        # scans the intervals that could reach the window.
        self._starts: dict[tuple[str, int], list[float]] = {}
        self._items: dict[tuple[str, int], list[Workload]] = {}
        self._longest: dict[tuple[str, int], float] = {}
        self.workloads: list[Workload] = []

    def _overlapping(self, key: tuple[str, int], start_s: float, end_s: float) -> list[Workload]:
        starts = self._starts.get(key)
        if not starts:
            return []
        items = self._items[key]
        reach = self._longest[key]
        out = []
        for j in range(bisect_left(starts, end_s) - 1, -1, -1):
            if starts[j] + reach <= start_s:
                break
            if items[j].end_s > start_s:
                out.append(items[j])
        return out

    def fits(self, candidate: Workload) -> bool:
        """Whether ``candidate`` can be added without colliding on any of its GPUs."""
        if candidate.node not in self.gpus_per_node:
            return False
        if max(candidate.gpu_indices) >= self.gpus_per_node[candidate.node]:
            return False
        for i in candidate.gpu_indices:
            for other in self._overlapping((candidate.node, i), candidate.start_s, candidate.end_s):
                if _conflict(candidate, other):
                    return False
        return True

    def add(self, workload: Workload) -> None:
        """Add ``workload`` as it is.

        Raises:
            ValueError: it collides with a workload already added, or names a GPU the node
                does not have.
        """
        if not self.fits(workload):
            raise ValueError(f"workload {workload.name!r} does not fit on {workload.node}")
        for i in workload.gpu_indices:
            key = (workload.node, i)
            starts = self._starts.setdefault(key, [])
            items = self._items.setdefault(key, [])
            pos = bisect_right(starts, workload.start_s)
            starts.insert(pos, workload.start_s)
            items.insert(pos, workload)
            self._longest[key] = max(self._longest.get(key, 0.0), workload.duration_s)
        self.workloads.append(workload)

    def free_gpus(self, node: str, start_s: float, end_s: float, probe: Workload) -> list[int]:
        """GPU indices of ``node`` where a workload like ``probe`` fits over the window."""
        free = []
        for i in range(self.gpus_per_node.get(node, 0)):
            others = self._overlapping((node, i), start_s, end_s)
            if not any(_conflict(probe, o) for o in others):
                free.append(i)
        return free

    def place(self, template: Workload, nodes: Sequence[str], count: int) -> Workload | None:
        """Put a copy of ``template`` on ``count`` free GPUs of the first node that has them.

        The template's own node and GPU indices are ignored. Returns the placed workload,
        or None when no node has enough free GPUs over the template's window.
        """
        for node in nodes:
            free = self.free_gpus(node, template.start_s, template.end_s, template)
            if len(free) >= count:
                placed = replace(template, node=node, gpu_indices=tuple(free[:count]))
                self.add(placed)
                return placed
        return None

    def build(self, *, start_s: float | None = None, end_s: float | None = None) -> Scenario:
        """The scenario of every workload added so far."""
        return Scenario(self.workloads, start_s=start_s, end_s=end_s)


@dataclass(frozen=True, slots=True)
class _Role:
    """What a GPU of a live simulated node does over a day."""

    namespace: str
    users: tuple[str, ...]
    kind: WorkloadKind
    pattern: UtilPattern
    process_name: str
    label: str


_CHAIN = _Role(
    "data-processing", ("user_j", "user_k"), WorkloadKind.BATCH, UtilPattern.BATCH, "python3", "etl"
)
_TRAIN = _Role("ml-team", ("user_a",), WorkloadKind.TRAINING, UtilPattern.BUSY, "python3", "train")
_NOTEBOOK = _Role(
    "cv-team", ("user_d",), WorkloadKind.NOTEBOOK, UtilPattern.IDLE, "ipykernel_launcher", "jupyter"
)
_SERVE = _Role(
    "production", ("svc-search",), WorkloadKind.INFERENCE, UtilPattern.BURSTY, "tritonserver", "api"
)
_DEV = _Role(
    "nlp-team", ("user_g",), WorkloadKind.NOTEBOOK, UtilPattern.DIURNAL, "ipykernel_launcher", "dev"
)
_SPARSE = _Role(
    "cv-team", ("user_e", "user_f"), WorkloadKind.TRAINING, UtilPattern.BUSY, "python3", "sweep"
)
_PAIR = _Role("ml-team", ("user_b",), WorkloadKind.TRAINING, UtilPattern.BUSY, "python3", "ddp")

_ROLES = (_CHAIN, _TRAIN, _NOTEBOOK, _SERVE, _DEV, _SPARSE, _PAIR, _PAIR)
"""Role of GPU ``i`` is ``_ROLES[i % 8]``: the first GPU already shows jobs coming and going."""

_CHAIN_PARAMS: dict[
    _Role, tuple[tuple[float, float], tuple[float, float], float, tuple[float, float]]
] = {
    # role: (run length s, gap s, level %, memory share)
    _CHAIN: ((300.0, 1500.0), (60.0, 600.0), 75.0, (0.1, 0.4)),
    _TRAIN: ((0.3 * DAY_S, 0.9 * DAY_S), (120.0, 3600.0), 93.0, (0.6, 0.92)),
    _SPARSE: ((1200.0, 5400.0), (2700.0, 10800.0), 90.0, (0.3, 0.7)),
    _PAIR: ((7200.0, 21600.0), (600.0, 3600.0), 94.0, (0.7, 0.9)),
}


def _chain(
    rng: random.Random,
    role: _Role,
    *,
    node: str,
    gpus: tuple[int, ...],
    start_s: float,
    end_s: float,
    run_s: tuple[float, float],
    gap_s: tuple[float, float],
    level: float,
    mem: tuple[float, float],
) -> list[Workload]:
    """Back-to-back jobs with gaps, all inside ``[start_s, end_s)``."""
    out: list[Workload] = []
    t = start_s + rng.uniform(*gap_s) * 0.5
    while True:
        end = t + rng.uniform(*run_s)
        if end > end_s:
            break
        user = rng.choice(role.users)
        name = f"{user}-{role.label}-{len(out):03d}-{rng.randrange(16**4):04x}"
        out.append(
            Workload(
                name=name,
                namespace=role.namespace,
                user=user,
                kind=role.kind,
                node=node,
                gpu_indices=gpus,
                start_s=t,
                end_s=end,
                pattern=role.pattern,
                mem_frac=rng.uniform(*mem),
                level_pct=level + rng.uniform(-4.0, 4.0),
                power_intensity=rng.uniform(0.85, 1.0),
                seed=rng.getrandbits(62),
                process_name=role.process_name,
                unix_user=user,
            )
        )
        t = end + rng.uniform(*gap_s)
    return out


def live_window(*, seed: int, node: str, gpus: int, window_start_s: float) -> Scenario:
    """One window of the self-generated activity of a live simulated node.

    Every workload starts and ends inside the day ``[window_start_s, window_start_s + DAY_S)``,
    so windows generated independently never collide and any window can be recomputed from
    (seed, node, gpus, window_start_s) alone. GPU roles repeat every eight GPUs: a chain of
    short batch jobs, a long training run, a notebook left idle, shared inference servers,
    a notebook that follows the working day, occasional sweeps, and a two-GPU training chain.
    """
    rng = random.Random(stable_seed("live", seed, node, gpus, window_start_s))
    end = window_start_s + DAY_S
    out: list[Workload] = []
    i = 0
    while i < gpus:
        role = _ROLES[i % len(_ROLES)]
        if role is _PAIR and i + 1 >= gpus:
            role = _SPARSE
        if role in _CHAIN_PARAMS:
            run_s, gap_s, level, mem = _CHAIN_PARAMS[role]
            indices = (i, i + 1) if role is _PAIR else (i,)
            out += _chain(
                rng,
                role,
                node=node,
                gpus=indices,
                start_s=window_start_s,
                end_s=end,
                run_s=run_s,
                gap_s=gap_s,
                level=level,
                mem=mem,
            )
            i += len(indices)
        else:
            out += _whole_window(rng, role, node=node, index=i, start_s=window_start_s, end_s=end)
            i += 1
    return Scenario(out, start_s=window_start_s, end_s=end)


def _whole_window(
    rng: random.Random, role: _Role, *, node: str, index: int, start_s: float, end_s: float
) -> list[Workload]:
    """Workloads that hold their GPU for the whole window (restarted at its edge)."""
    specs: tuple[tuple[str, float, float, float], ...]
    if role is _SERVE:
        specs = (("embedding-api", 0.18, 45.0, 0.7), ("reranker-api", 0.12, 30.0, 0.65))
    elif role is _NOTEBOOK:
        specs = ((f"jupyter-{role.users[0]}", rng.uniform(0.2, 0.5), 0.0, 1.0),)
    else:
        specs = ((f"jupyter-{role.users[0]}-dev", rng.uniform(0.15, 0.35), 80.0, 0.9),)
    out = []
    for label, mem, level, intensity in specs:
        user = role.users[0]
        out.append(
            Workload(
                name=f"{label}-{rng.randrange(16**4):04x}",
                namespace=role.namespace,
                user=user,
                kind=role.kind,
                node=node,
                gpu_indices=(index,),
                # The edge gap is the restart a long-running server or kernel sees at most
                # once a window.
                start_s=start_s + 30.0,
                end_s=end_s - 30.0,
                pattern=role.pattern,
                mem_frac=mem,
                level_pct=level,
                power_intensity=intensity,
                seed=rng.getrandbits(62),
                process_name=role.process_name,
                unix_user=user,
            )
        )
    return out
