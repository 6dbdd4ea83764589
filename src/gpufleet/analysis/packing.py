"""Two-dimensional bin packing of workloads onto GPUs: memory bytes and utilization %.

Consolidation asks how few GPUs could hold a set of workloads if each got no more than its
measured peak. That is vector bin packing; :func:`pack` answers it with **first-fit
decreasing** (FFD): items are sorted by their dominant share of a bin (the larger of
``mem / bin memory`` and ``util / utilization cap``), then each goes into the first open bin
where it fits in both dimensions, or into a new bin.

Guarantees, which the tests check as properties:

* no bin holds more than its usable capacity in either dimension (the capacity after the
  safety ``headroom``);
* every item is either in exactly one bin or, when it alone exceeds a bin, in ``unplaced``;
* ``len(bins) >= lower_bound``, where the lower bound is the larger of the summed memory and
  the summed utilization divided by a bin's capacity, rounded up;
* first fit never opens a bin that an earlier bin could have taken: the first item of every
  bin fits in no earlier bin, so on one-dimensional instances any two bins together hold more
  than one bin's capacity (hence fewer than ``2 x sum / capacity + 1`` bins).

FFD's tighter worst case on one-dimensional instances (11/9 OPT + 6/9, Dósa 2007) is not
relied upon.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gpufleet.analysis.history import HistoryQueryError

UTIL_TOLERANCE_PCT = 1e-9
"""Slack on the utilization sum, so float rounding never rejects an exact fit."""


@dataclass(frozen=True, slots=True)
class Item:
    """One thing to place: a workload's measured peak memory and utilization."""

    name: str
    mem_bytes: int
    util_pct: float


@dataclass(frozen=True, slots=True)
class Bin:
    """One GPU of the packing and what it holds."""

    items: tuple[Item, ...]

    @property
    def mem_bytes(self) -> int:
        """Memory its items need together."""
        return sum(i.mem_bytes for i in self.items)

    @property
    def util_pct(self) -> float:
        """Utilization its items need together."""
        return sum(i.util_pct for i in self.items)


@dataclass(frozen=True, slots=True)
class Packing:
    """Result of :func:`pack`."""

    bins: tuple[Bin, ...]
    unplaced: tuple[Item, ...]
    """Items larger than one bin's usable capacity; they stay where they are."""
    capacity_mem_bytes: int
    """Usable memory per bin: ``bin_mem_bytes x (1 - headroom)``, rounded down."""
    capacity_util_pct: float
    """Usable utilization per bin: ``util_cap_pct x (1 - headroom)``."""
    lower_bound: int
    """No packing of the placed items uses fewer bins than this."""

    def fits(self, bin_: Bin, item: Item) -> bool:
        """Whether ``item`` could join ``bin_`` without exceeding either capacity."""
        return _fits(
            bin_.mem_bytes, bin_.util_pct, item, self.capacity_mem_bytes, self.capacity_util_pct
        )


def _fits(mem: int, util: float, item: Item, cap_mem: int, cap_util: float) -> bool:
    return mem + item.mem_bytes <= cap_mem and util + item.util_pct <= cap_util + UTIL_TOLERANCE_PCT


def pack(
    items: Sequence[Item],
    bin_mem_bytes: int,
    *,
    headroom: float = 0.1,
    util_cap_pct: float = 100.0,
) -> Packing:
    """Place ``items`` on as few bins as first-fit decreasing finds.

    Args:
        items: what to place; names should be unique (they break ties in the order).
        bin_mem_bytes: memory of one bin (a GPU's total memory).
        headroom: share of each dimension kept free as a safety margin, 0 <= headroom < 1.
        util_cap_pct: utilization one bin can take before the headroom (100 for a GPU).

    Raises:
        HistoryQueryError: a non-positive bin, a headroom outside [0, 1), a non-positive
            utilization cap, or an item with negative or non-finite size.
    """
    if bin_mem_bytes <= 0:
        raise HistoryQueryError(f"bin memory must be positive; got {bin_mem_bytes}")
    if not 0.0 <= headroom < 1.0:
        raise HistoryQueryError(f"headroom must be in [0, 1); got {headroom}")
    if not (math.isfinite(util_cap_pct) and util_cap_pct > 0):
        raise HistoryQueryError(f"util_cap_pct must be positive; got {util_cap_pct}")
    for it in items:
        if it.mem_bytes < 0 or not math.isfinite(it.util_pct) or it.util_pct < 0:
            raise HistoryQueryError(f"item {it.name!r} has a negative or non-finite size")
    cap_mem = math.floor(bin_mem_bytes * (1.0 - headroom))
    cap_util = util_cap_pct * (1.0 - headroom)

    def share(it: Item) -> float:
        # With no usable memory only zero-memory items are placeable, so they share 0.
        mem_share = it.mem_bytes / cap_mem if cap_mem > 0 else 0.0
        return max(mem_share, it.util_pct / cap_util)

    placeable = [it for it in items if _fits(0, 0.0, it, cap_mem, cap_util)]
    unplaced = tuple(it for it in items if not _fits(0, 0.0, it, cap_mem, cap_util))
    # Largest first: big items placed late are what forces extra bins in plain first fit.
    order = sorted(placeable, key=lambda it: (-share(it), -it.mem_bytes, -it.util_pct, it.name))
    bins: list[list[Item]] = []
    loads: list[tuple[int, float]] = []
    for it in order:
        for k, (mem, util) in enumerate(loads):
            if _fits(mem, util, it, cap_mem, cap_util):
                bins[k].append(it)
                loads[k] = (mem + it.mem_bytes, util + it.util_pct)
                break
        else:
            bins.append([it])
            loads.append((it.mem_bytes, it.util_pct))
    total_mem = sum(it.mem_bytes for it in placeable)
    total_util = sum(it.util_pct for it in placeable)
    # Integer ceiling for bytes. Each bin may exceed the utilization cap by the tolerance,
    # so the bound takes that slack (and float noise) off first and never exceeds the bins
    # actually used.
    by_mem = -(-total_mem // cap_mem) if cap_mem > 0 else 0
    slack = UTIL_TOLERANCE_PCT * len(placeable)
    by_util = max(0, math.ceil((total_util - slack) / cap_util - 1e-9))
    lower = max(by_mem, by_util, 1 if placeable else 0)
    return Packing(
        bins=tuple(Bin(tuple(b)) for b in bins),
        unplaced=unplaced,
        capacity_mem_bytes=cap_mem,
        capacity_util_pct=cap_util,
        lower_bound=lower,
    )
