"""The agent's disk buffer for a hub: kept across restarts, bounded, acknowledged by range."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.store_samples import T0, gpu, snap

from gpufleet.agent.hub_spool import HubSpool
from gpufleet.model import Snapshot
from gpufleet.model_wire import snapshot_from_wire


def _snaps(n: int, start: int = 0) -> list[Snapshot]:
    return [snap(T0 + 10.0 * i, gpu("GPU-a", float(i))) for i in range(start, start + n)]


def test_snapshots_come_back_in_order_and_survive_a_restart(tmp_path: Path) -> None:
    spool = HubSpool(tmp_path / "spool.db")
    for s in _snaps(5):
        spool.append(s)
    spool.close()
    again = HubSpool(tmp_path / "spool.db")
    batch = again.oldest(3)
    assert batch is not None
    assert [snapshot_from_wire(w) for w in batch.snapshots] == _snaps(3)
    assert (batch.first_seq, batch.last_seq) == (1, 3)
    assert len(again) == 5


def test_an_acknowledged_batch_goes_and_later_ones_stay(tmp_path: Path) -> None:
    spool = HubSpool(tmp_path / "spool.db")
    for s in _snaps(4):
        spool.append(s)
    batch = spool.oldest(2)
    assert batch is not None
    spool.append(_snaps(1, start=4)[0])  # sampled while the batch was in flight
    spool.ack(batch)
    rest = spool.oldest(10)
    assert rest is not None
    assert [w["ts_s"] for w in rest.snapshots] == [T0 + 20.0, T0 + 30.0, T0 + 40.0]
    spool.ack(rest)
    assert spool.oldest(10) is None
    # Sequence numbers are never reused: the next batch cannot be mistaken for an old one.
    spool.append(_snaps(1)[0])
    nxt = spool.oldest(1)
    assert nxt is not None
    assert nxt.first_seq == 6


def test_past_its_bound_the_oldest_are_dropped_and_counted(tmp_path: Path) -> None:
    spool = HubSpool(tmp_path / "spool.db", max_snapshots=3)
    for s in _snaps(5):
        spool.append(s)
    assert (len(spool), spool.dropped) == (3, 2)
    batch = spool.oldest(10)
    assert batch is not None
    assert [w["ts_s"] for w in batch.snapshots] == [T0 + 20.0, T0 + 30.0, T0 + 40.0]
    spool.close()
    assert HubSpool(tmp_path / "spool.db", max_snapshots=3).dropped == 2


def test_a_bound_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HubSpool(tmp_path / "s.db", max_snapshots=0)
