"""Snapshots to JSON and back (what an agent pushes to a hub): exact round trips, and
batches of the wrong shape refused with the field named."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from tests.unit.store_samples import GIB, T0, gpu, host, proc, snap

from gpufleet.collectors.sim import SimGpuSource
from gpufleet.model import MigInstance, Snapshot
from gpufleet.model_wire import WireError, snapshot_from_wire, snapshot_to_wire


def _rich() -> Snapshot:
    sim = SimGpuSource(node="n1", gpus=4, seed=3)
    gpus = sim.sample(T0 + 3600.0)
    extra = gpu("GPU-x", 50.0, index=9, mem_used=GIB, procs=[proc(7, "train", mem=GIB)])
    extra = dataclasses.replace(
        extra,
        xid_errors=(79,),
        throttle_reasons=("hw_thermal_slowdown",),
        mig_mode=True,
        mig_instances=(MigInstance("MIG-1", 1, 0, "1g.10gb", 10 * GIB, GIB),),
    )
    return snap(T0, *gpus, extra, system=host(12.5, rx=[None, 3.0], disks=[40.0]), dt=10.0)


def test_a_snapshot_survives_json_exactly() -> None:
    original = _rich()
    wire = json.loads(json.dumps(snapshot_to_wire(original)))
    assert snapshot_from_wire(wire) == original


def test_a_snapshot_without_host_or_gpus_round_trips() -> None:
    bare = snap(T0)
    assert snapshot_from_wire(snapshot_to_wire(bare)) == bare


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda w: w.pop("node"), "node: missing"),
        (lambda w: w.update(ts_s="soon"), "ts_s: expected a number, got str"),
        (lambda w: w.update(ts_s=float("nan")), "ts_s: must be a finite number"),
        (lambda w: w.update(color="red"), "unknown field(s) color"),
        (lambda w: w["gpus"][0].update(index=1.5), "gpus[0].index: expected an integer"),
        (lambda w: w["gpus"][0].update(lost="no"), "gpus[0].lost: expected true or false"),
        (lambda w: w["gpus"][0].update(processes={}), "gpus[0].processes: expected a list"),
        (
            lambda w: w["gpus"][4]["processes"][0].update(pid=None),
            "gpus[4].processes[0].pid: must not be null",
        ),
        (lambda w: w.update(gpus=[3]), "gpus[0]: expected an object, got int"),
    ],
)
def test_a_wrong_shape_is_refused_with_the_field_named(change: object, where: str) -> None:
    wire = json.loads(json.dumps(snapshot_to_wire(_rich())))
    change(wire)  # type: ignore[operator]
    with pytest.raises(WireError, match=re.escape(where)):
        snapshot_from_wire(wire)


def test_only_objects_are_snapshots() -> None:
    with pytest.raises(WireError, match="expected an object, got list"):
        snapshot_from_wire([1, 2])
