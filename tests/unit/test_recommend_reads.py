"""Recommendations from window sums and candidates' rows (``UsageSumReads``) are those from
every row of the window: the same records, float for float, on both backends.

The reference is ``recommend`` over a store that offers only the ``Store`` protocol's reads
(so it reads every row, as before the sums existed). The fleet has a finding of every kind,
utilization that varies by the sample (so sums are not round numbers), a notebook that hops
between GPUs, a workload that changed kind, and a GPU whose foreign share is exactly on the
threshold (so the sums cannot tell and its rows are read).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, cast

import pytest

from gpufleet.analysis.memo import MemoStore
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.recommend import recommend
from gpufleet.analysis.recommend_types import KINDS
from gpufleet.analysis.scope import Scope, Window
from gpufleet.model import Attribution, GpuProcess, GpuSample, Snapshot
from gpufleet.store import Resolution, Store
from gpufleet.store.base import GpuInventory, GpuUsage, WorkloadUsage

GIB = 1 << 30
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600
HOURS = 10
H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"
PRICES = PriceTable({"H100": 3.0, "A100": 2.0}, fallback_usd_per_gpu_hour=1.5)

Holders = tuple[tuple[str, str | None], ...]
Spec = Callable[[int], tuple[float, int, Holders]]
"""Snapshot number (10 minutes apart) -> (utilization %, used memory, (workload, kind)s)."""


def _const(util: float, mem_gib: float, *holders: tuple[str, str | None]) -> Spec:
    return lambda k: (util + (k % 3) * 0.7, int(mem_gib * GIB) + k * 4096, holders)


FREE: Spec = _const(0.0, 0.0)

FLEET: dict[tuple[str, int, str], Spec] = {
    # n1: two free GPUs (released), an idle notebook (reclaimed), a training job.
    ("n1", 0, H100): FREE,
    ("n1", 1, H100): FREE,
    ("n1", 2, H100): _const(0.0, 20, ("nb-idle", "notebook")),
    ("n1", 3, H100): _const(80.0, 40, ("train-a", "training")),
    # n2: two small services (consolidated), small training (MIG), a foreign share of
    # exactly 10 %: a notebook alone for 9 hours, a batch job alone for the first.
    ("n2", 0, H100): _const(14.0, 10, ("svc-a", "inference")),
    ("n2", 1, H100): _const(11.0, 12, ("svc-b", "inference")),
    ("n2", 2, H100): _const(19.0, 8, ("job-mig", "training")),
    ("n2", 3, H100): lambda k: (
        (30.0, 6 * GIB, (("etl", "batch"),)) if k < 6 else (9.0, 6 * GIB, (("nb-ten", "notebook"),))
    ),
    # n3: a saturated A100 pool (scale up) holding a job with one idle GPU (right size).
    ("n3", 0, A100): _const(96.0, 70, ("job-2", "training")),
    ("n3", 1, A100): _const(0.0, 70, ("job-2", "training")),
    ("n3", 2, A100): _const(97.0, 79, ("train-big", "training")),
    ("n3", 3, A100): _const(98.0, 79, ("train-big2", "training")),
    # n4: a notebook hopping between two GPUs each hour, one that changed kind halfway.
    ("n4", 0, H100): lambda k: (12.0, 5 * GIB, (("nb-hop", "notebook"),) if (k // 6) % 2 else ()),
    ("n4", 1, H100): lambda k: (
        12.0,
        5 * GIB,
        (("nb-hop", "notebook"),) if not (k // 6) % 2 else (),
    ),
    ("n4", 2, H100): lambda k: (
        9.0 + k % 2,
        7 * GIB,
        (("nb-kinds", "notebook" if k < 30 else "inference"),),
    ),
    ("n4", 3, H100): FREE,
}


def _write(store: Store) -> None:
    snaps = []
    for k in range(HOURS * 6):
        for node in sorted({n for n, _, _ in FLEET}):
            gpus = []
            for (n, index, model), spec in sorted(FLEET.items()):
                if n != node:
                    continue
                util, mem, holders = spec(k)
                procs = tuple(
                    GpuProcess(
                        pid=100 + j,
                        used_memory_bytes=mem // len(holders),
                        attribution=Attribution(
                            namespace="team", user="alice", workload=w, workload_kind=kind
                        ),
                    )
                    for j, (w, kind) in enumerate(holders)
                )
                gpus.append(
                    GpuSample(
                        uuid=f"GPU-{node}-{index}",
                        index=index,
                        name=model,
                        util_gpu_pct=util,
                        mem_total_bytes=80 * GIB,
                        mem_used_bytes=mem,
                        processes=procs,
                    )
                )
            snaps.append(
                Snapshot(
                    ts_s=T0 + 600.0 * k,
                    cluster="c1",
                    node=node,
                    gpus=tuple(gpus),
                    system=None,
                    interval_s=600.0,
                )
            )
    store.write_snapshots(snaps)


class _RowsOnly:
    """The Store protocol's reads of ``store`` and nothing more: recommend reads every row."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.backend = store.backend
        self.retention = store.retention
        self.idle_threshold_pct = getattr(store, "idle_threshold_pct", 5.0)

    def inventory(self, cluster: str | None = None) -> list[GpuInventory]:
        return self._store.inventory(cluster)

    def gpu_usage(self, **kw: Any) -> list[GpuUsage]:
        return self._store.gpu_usage(**kw)

    def workload_usage(self, **kw: Any) -> list[WorkloadUsage]:
        return self._store.workload_usage(**kw)


@pytest.fixture
def fleet(store: Store) -> Store:
    _write(store)
    return store


WINDOW = Window(T0, T0 + HOURS * 3600)
CASES: list[tuple[Window, Scope, float]] = [
    (WINDOW, Scope(), 5.0),
    (WINDOW, Scope(), 10.0),
    # Edges cutting hours; 1-minute buckets (under 6 hours).
    (Window(T0 + 1234.0, T0 + HOURS * 3600 - 777.5), Scope(), 5.0),
    (Window(T0 + 3600 + 90.0, T0 + 5 * 3600 - 30.0), Scope(), 5.0),
    (WINDOW, Scope(node="n2"), 5.0),
    (WINDOW, Scope(gpu_model="a100"), 5.0),
    (WINDOW, Scope(cluster="c1", node="n4"), 5.0),
    (WINDOW, Scope(namespace="team"), 5.0),
    (WINDOW, Scope(workload="job-2"), 5.0),
    (WINDOW, Scope(workload_kind="notebook"), 5.0),
]


def test_every_kind_is_found_on_the_fleet(fleet: Store) -> None:
    found = recommend(fleet, WINDOW, prices=PRICES)
    assert {r.kind for r in found.recommendations} == set(KINDS)
    (merge,) = [r for r in found.recommendations if "nb-hop" in str(r.action.params)]
    assert merge.kind == "consolidate"


@pytest.mark.parametrize(("window", "scope", "threshold"), CASES)
def test_sums_then_rows_give_what_every_row_gives(
    fleet: Store, window: Window, scope: Scope, threshold: float
) -> None:
    want = recommend(
        cast(Store, _RowsOnly(fleet)),
        window,
        scope=scope,
        idle_threshold_pct=threshold,
        prices=PRICES,
    )
    got = recommend(fleet, window, scope=scope, idle_threshold_pct=threshold, prices=PRICES)
    assert got.recommendations
    assert got == want
    # A store wrapped for a report (no sums) reads every row too, to the same effect.
    assert (
        recommend(
            cast(Store, MemoStore(fleet)),
            window,
            scope=scope,
            idle_threshold_pct=threshold,
            prices=PRICES,
        )
        == want
    )


def test_only_candidates_rows_are_read(fleet: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    read: dict[str, list[Collection[object] | None]] = {"gpus": [], "workloads": [], "on": []}
    gpu_usage_of = getattr(fleet, "gpu_usage_of")  # noqa: B009 - not in the Store protocol
    workload_usage_of = getattr(fleet, "workload_usage_of")  # noqa: B009

    def gpus_of(**kw: Any) -> list[GpuUsage]:
        read["gpus"].append(kw["uuids"])
        return list(gpu_usage_of(**kw))

    def workloads_of(**kw: Any) -> list[WorkloadUsage]:
        read["workloads"].append(kw.get("workloads"))
        read["on"].append(kw.get("uuids"))
        return list(workload_usage_of(**kw))

    def no_full_reads(**kw: Any) -> list[object]:
        raise AssertionError(f"every row read: {kw}")

    monkeypatch.setattr(fleet, "gpu_usage_of", gpus_of)
    monkeypatch.setattr(fleet, "workload_usage_of", workloads_of)
    # Only edge buckets are read as rows when the window is cut (none here).
    monkeypatch.setattr(fleet, "gpu_usage", no_full_reads)
    monkeypatch.setattr(fleet, "workload_usage", no_full_reads)
    found = recommend(fleet, WINDOW, prices=PRICES)
    assert {r.kind for r in found.recommendations} == set(KINDS)
    gpus = {u for uuids in read["gpus"] if uuids is not None for u in uuids}
    assert "GPU-n1-3" not in gpus  # busy training: no rule's candidate
    # The foreign share on the threshold: the sums cannot tell, that GPU's rows can.
    assert {"GPU-n2-3"} in [set(on) for on in read["on"] if on is not None]
    chosen = {w for ws in read["workloads"] if ws is not None for w in ws}
    assert ("team", "alice", "train-a") not in chosen


def test_short_window_without_minute_rows_reads_hours(fleet: Store) -> None:
    window = Window(T0 + 3600 + 90.0, T0 + 4 * 3600 - 30.0)
    minutes = fleet.gpu_usage(
        start_s=window.start_s, end_s=window.end_s, resolution=Resolution.MINUTE
    )
    assert minutes
    # 1-minute rollups expire first (90 days): the short window is then read from hours.
    fleet.apply_retention(T0 + 91 * 86_400.0)
    assert not fleet.gpu_usage(
        start_s=window.start_s, end_s=window.end_s, resolution=Resolution.MINUTE
    )
    got = recommend(fleet, window, prices=PRICES)
    assert got.recommendations
    assert got == recommend(cast(Store, _RowsOnly(fleet)), window, prices=PRICES)
