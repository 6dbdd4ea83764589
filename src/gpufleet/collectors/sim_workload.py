"""What a simulated workload is, and the utilization it drives on each of its GPUs over time.

Utilization is a pure function of (workload, GPU index, time): noise comes from an integer
hash of the workload's seed and the second, not from a stateful generator, so any sample can
be recomputed alone and a month of history is generated in one pass without replay.
"""

from __future__ import annotations

import enum
import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

DAY_S = 86_400.0

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15

DIURNAL_PEAK_HOUR_UTC = 15.0
"""Hour (UTC) at which request-driven load peaks; the trough is twelve hours later."""


class WorkloadKind(enum.StrEnum):
    """What the workload is, as a scheduler or a label would name it."""

    TRAINING = "training"
    INFERENCE = "inference"
    NOTEBOOK = "notebook"
    BATCH = "batch"


class UtilPattern(enum.StrEnum):
    """Shape of the utilization a workload drives."""

    BUSY = "busy"
    """Training: 85-99 % with short dips while a checkpoint is written."""
    BURSTY = "bursty"
    """Inference: follows the daily request curve, with bursts."""
    IDLE = "idle"
    """Holds memory and does (almost) nothing: a notebook left open."""
    DIURNAL = "diurnal"
    """Swings with the working day: high in the afternoon, low at night and weekends."""
    BATCH = "batch"
    """Alternates compute phases and I/O phases."""


def mix64(x: int) -> int:
    """SplitMix64 finaliser: a fast, well-spread 64-bit integer hash."""
    x &= _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def unit(seed: int, n: int) -> float:
    """Deterministic pseudo-random number in [0, 1) for the pair (seed, n)."""
    return (mix64(seed + n * _GOLDEN) >> 11) * (1.0 / 9007199254740992.0)


_NOISE_MASK = (1 << 16) - 1
_NOISE_STEP = 40503
"""Odd multiplier (the 16-bit golden ratio): consecutive ``n`` land far apart in the table."""
_NOISE_RNG = random.Random(0x51A0)
_NOISE: tuple[float, ...] = tuple(_NOISE_RNG.random() for _ in range(1 << 16))
"""Fixed table of uniform numbers: a look-up is five times cheaper than hashing per reading."""
del _NOISE_RNG


def noise(seed: int, n: int) -> float:
    """Cheap deterministic noise in [0, 1) for the hot sampling path.

    A sequence repeats after 65,536 steps (18 hours of one-second steps) and sequences of
    different seeds are shifts of one another; both are invisible in jitter, so ``unit``
    is kept for decisions that shape a schedule.
    """
    return _NOISE[(seed + n * _NOISE_STEP) & _NOISE_MASK]


def noise4(seed: int, n: int) -> tuple[float, float, float, float]:
    """Four independent ``noise`` values for (seed, n) with one index computation."""
    i = (seed + n * _NOISE_STEP) & _NOISE_MASK
    return _NOISE[i], _NOISE[i ^ 1], _NOISE[i ^ 2], _NOISE[i ^ 3]


def smooth(seed: int, t: float, period_s: float) -> float:
    """Value noise in [0, 1) that drifts smoothly with ``t`` over about ``period_s``."""
    x = t / period_s
    i = math.floor(x)
    f = x - i
    f = f * f * (3.0 - 2.0 * f)
    a = _NOISE[(seed + i * _NOISE_STEP) & _NOISE_MASK]
    return a + (_NOISE[(seed + (i + 1) * _NOISE_STEP) & _NOISE_MASK] - a) * f


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from ``parts`` that is the same in every process.

    Python's ``hash()`` of a string changes per process (PYTHONHASHSEED), so it cannot
    make a simulation reproducible.
    """
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") >> 1


def diurnal(t: float) -> float:
    """Daily request curve in [0, 1]: 1 at the peak hour, 0 twelve hours later (UTC)."""
    hour = (t % DAY_S) / 3600.0
    return 0.5 + 0.5 * math.cos(2.0 * math.pi * (hour - DIURNAL_PEAK_HOUR_UTC) / 24.0)


def is_weekend(t: float) -> bool:
    """Saturday or Sunday in UTC (1970-01-01 was a Thursday)."""
    return (int(t // DAY_S) + 3) % 7 >= 5


@dataclass(frozen=True, slots=True, eq=False)
class Workload:
    """A job, deployment or notebook holding GPUs of one node over ``[start_s, end_s)``.

    ``mem_frac`` is the share of each GPU's memory it holds, so one schedule fits any GPU
    model. ``level_pct`` is the utilization it reaches when working (its meaning per pattern
    is in ``utilization``). ``power_intensity`` scales how close to the power limit that
    utilization gets: memory-bound inference draws less than dense training at the same %.

    Workloads compare by identity: two separately made workloads are two jobs, and the
    sampler keys its caches on them, which needs a cheap hash.
    """

    name: str
    namespace: str
    user: str
    kind: WorkloadKind
    node: str
    gpu_indices: tuple[int, ...]
    start_s: float
    end_s: float
    pattern: UtilPattern
    mem_frac: float = 0.5
    level_pct: float = 92.0
    power_intensity: float = 1.0
    seed: int = 0
    process_name: str = "python3"
    unix_user: str | None = None
    pod: str | None = None
    """Kubernetes pod name when the workload runs in a pod, else None (bare metal)."""
    util_fn: Callable[[Workload, int, float, int], float] = field(
        init=False, repr=False, compare=False
    )
    """The pattern's function, bound once: the sampler calls it for every reading."""
    cycle_s: float = field(init=False, repr=False, compare=False)
    dip_s: float = field(init=False, repr=False, compare=False)
    phase_s: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.end_s <= self.start_s:
            raise ValueError(f"workload {self.name!r}: end_s must be after start_s")
        if not self.gpu_indices or len(set(self.gpu_indices)) != len(self.gpu_indices):
            raise ValueError(f"workload {self.name!r}: gpu_indices must be distinct and not empty")
        if min(self.gpu_indices) < 0:
            raise ValueError(f"workload {self.name!r}: gpu_indices must be >= 0")
        if not 0.0 < self.mem_frac <= 1.0:
            raise ValueError(f"workload {self.name!r}: mem_frac must be in (0, 1]")
        # Derived once here: the hot sampling path must not hash for per-workload constants.
        object.__setattr__(self, "util_fn", _PATTERNS[self.pattern])
        object.__setattr__(self, "cycle_s", 1800.0 + 1800.0 * unit(self.seed, 1))
        object.__setattr__(self, "dip_s", 60.0 + 90.0 * unit(self.seed, 2))
        object.__setattr__(self, "phase_s", self.cycle_s * unit(self.seed, 3))

    @property
    def exclusive(self) -> bool:
        """Whether the workload needs its GPUs alone; inference servers may share a GPU."""
        return self.kind is not WorkloadKind.INFERENCE

    @property
    def gpu_count(self) -> int:
        """Number of GPUs held."""
        return len(self.gpu_indices)

    @property
    def duration_s(self) -> float:
        """Length of the workload in seconds."""
        return self.end_s - self.start_s


def _busy(w: Workload, gpu: int, t: float, n: int) -> float:
    elapsed = t - w.start_s
    if elapsed < 150.0:
        # Start-up: reading the dataset and compiling kernels before the first step.
        return 2.0 + 28.0 * noise(w.seed + 11, n)
    if (elapsed + w.phase_s) % w.cycle_s < w.dip_s:
        # Checkpoint: every rank waits on storage at the same moment.
        return 3.0 + 12.0 * noise(w.seed + 13, n)
    v = (
        w.level_pct
        + (smooth(w.seed + 17, t, 600.0) - 0.5) * 6.0
        + (noise(w.seed + 19 + gpu, n) - 0.5) * 3.0
    )
    return min(99.0, max(85.0, v))


def _bursty(w: Workload, gpu: int, t: float, n: int) -> float:
    if t - w.start_s < 120.0:
        return 4.0 * noise(w.seed + 23, n)  # loading weights, no requests served yet
    load = diurnal(t) * (0.65 if is_weekend(t) else 1.0)
    v = 6.0 + (w.level_pct - 6.0) * load
    bucket = int(t // 300.0)
    if noise(w.seed + 29, bucket) < 0.08:
        v += 15.0 + 25.0 * noise(w.seed + 31, bucket)
    v += (noise(w.seed + 37 + gpu, n) - 0.5) * 8.0
    return min(98.0, max(1.0, v))


def _idle(w: Workload, gpu: int, t: float, n: int) -> float:
    u = noise(w.seed + 41 + gpu, int(t // 600.0))
    # A cell run now and then: stays under 3 % so it is idle by any threshold in use.
    return 1.0 + 10.0 * u if u < 0.1 else 0.0


def _diurnal(w: Workload, gpu: int, t: float, n: int) -> float:
    load = diurnal(t) * (0.5 if is_weekend(t) else 1.0)
    v = (
        12.0
        + (w.level_pct - 12.0) * load
        + (smooth(w.seed + 43, t, 900.0) - 0.5) * 10.0
        + (noise(w.seed + 47 + gpu, n) - 0.5) * 4.0
    )
    return min(99.0, max(2.0, v))


def _batch(w: Workload, gpu: int, t: float, n: int) -> float:
    elapsed = t - w.start_s
    if elapsed < 60.0:
        return 5.0 + 20.0 * noise(w.seed + 53, n)
    if noise(w.seed + 59, int(elapsed // 240.0)) < 0.25:
        return 8.0 + 20.0 * noise(w.seed + 61 + gpu, n)  # waiting on input files
    v = w.level_pct - 12.0 + 24.0 * noise(w.seed + 67 + gpu, n)
    return min(99.0, max(5.0, v))


_PATTERNS: dict[UtilPattern, Callable[[Workload, int, float, int], float]] = {
    UtilPattern.BUSY: _busy,
    UtilPattern.BURSTY: _bursty,
    UtilPattern.IDLE: _idle,
    UtilPattern.DIURNAL: _diurnal,
    UtilPattern.BATCH: _batch,
}


def utilization(w: Workload, gpu: int, t: float) -> float:
    """Utilization (%) that ``w`` drives on its GPU with index ``gpu`` at ``t``.

    Ranks of one job share their dips and drift (they step together) and differ only by a
    little per-GPU noise.
    """
    return w.util_fn(w, gpu, t, int(t))
