"""Writing imported snapshots: old ones without raw rows, newer ones with, counted."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gpufleet.model import Snapshot
from gpufleet.store.base import Store


def write_by_age(
    store: Store,
    snapshots: Sequence[Snapshot],
    raw_cutoff_s: float,
    on_written: Callable[[Sequence[Snapshot]], None],
) -> None:
    """Write time-sorted ``snapshots``; those before ``raw_cutoff_s`` with ``keep_raw=False``.

    Raw rows older than the store's raw retention would be deleted by the next retention
    pass, so they are not written at all; rollups still are. The two parts are two
    transactions, the older first, so an interruption leaves a prefix in time;
    ``on_written`` is called after each with what it committed.
    """
    split = 0
    while split < len(snapshots) and snapshots[split].ts_s < raw_cutoff_s:
        split += 1
    old, recent = snapshots[:split], snapshots[split:]
    if old:
        store.write_snapshots(old, keep_raw=False)
        on_written(old)
    if recent:
        store.write_snapshots(recent, keep_raw=True)
        on_written(recent)


class SnapshotWriter:
    """The write path every importer shares: batches by age, and counts of what committed.

    ``raw_cutoff_s`` is ``now_s`` minus the store's raw retention, fixed when the import
    starts. ``samples`` and ``snapshots`` count only what whole transactions committed, so
    an interrupted import reports exactly what the store holds.
    """

    def __init__(self, store: Store, *, now_s: float) -> None:
        """Write into ``store``; rows before ``now_s - store.retention.raw_s`` keep no raw."""
        self.store = store
        self.raw_cutoff_s = now_s - store.retention.raw_s
        self.samples = 0
        self.snapshots = 0

    def write(self, snapshots: Sequence[Snapshot]) -> None:
        """Write time-sorted ``snapshots`` (see :func:`write_by_age`) and count them."""
        write_by_age(self.store, snapshots, self.raw_cutoff_s, self._count)

    def _count(self, written: Sequence[Snapshot]) -> None:
        self.snapshots += len(written)
        self.samples += sum(len(s.gpus) for s in written)
