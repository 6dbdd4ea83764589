"""Recommendations on hand-written fleets (every number hand-computed) and on the demo cluster.

Each hand fleet is 8 hours of one snapshot every 10 minutes per node, from ``T0`` (an hour
boundary); the window is those 8 hours, so a month is 720 / 8 = 90 windows. Prices: H100 at
$3.00 per GPU-hour, so one GPU for the whole window costs 8 x 3 x 90 = $2160 a month.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gpufleet.agent.demo import DemoSummary, write_demo
from gpufleet.analysis.history import HistoryQueryError
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.recommend import recommend
from gpufleet.analysis.recommend_types import KINDS, Recommendation, confidence, mig_table
from gpufleet.analysis.scope import Window
from gpufleet.analysis.utilization import analyze_utilization
from gpufleet.model import Attribution, GpuProcess, GpuSample, Snapshot
from gpufleet.store import Store, open_store

GIB = 1 << 30
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600
H100 = "NVIDIA H100 80GB HBM3"
HOURS = 8
WINDOW = Window(T0, T0 + HOURS * 3600)
PRICES = PriceTable({"H100": 3.0}, fallback_usd_per_gpu_hour=1.5)
GPU_MONTH = HOURS * 3.0 * 90  # one GPU held for the whole window, scaled to 30 days

# (node, index) -> (utilization %, used memory bytes, holders as (workload, kind))
Fleet = dict[tuple[str, int], tuple[float, int, tuple[tuple[str, str | None], ...]]]


def _sample(
    node: str, index: int, util: float, mem: int, holders: tuple[tuple[str, str | None], ...]
) -> GpuSample:
    procs = tuple(
        GpuProcess(
            pid=100 + k,
            used_memory_bytes=mem // len(holders),
            attribution=Attribution(namespace="team", user="alice", workload=w, workload_kind=kind),
        )
        for k, (w, kind) in enumerate(holders)
    )
    return GpuSample(
        uuid=f"GPU-{node}-{index}",
        index=index,
        name=H100,
        util_gpu_pct=util,
        mem_total_bytes=80 * GIB,
        mem_used_bytes=mem,
        processes=procs,
    )


def _write(store: Store, fleet: Fleet, *, hours: int = HOURS) -> None:
    nodes = sorted({n for n, _ in fleet})
    snaps = [
        Snapshot(
            ts_s=T0 + 600.0 * k,
            cluster="c1",
            node=node,
            gpus=tuple(_sample(node, i, *fleet[(n, i)]) for n, i in sorted(fleet) if n == node),
            system=None,
            interval_s=600.0,
        )
        for k in range(hours * 6)
        for node in nodes
    ]
    store.write_snapshots(snaps)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "rec.db")
    try:
        yield s
    finally:
        s.close()


Run = Callable[..., tuple[Recommendation, ...]]


@pytest.fixture
def run(store: Store) -> Run:
    def go(fleet: Fleet, kind: str, **kw: object) -> tuple[Recommendation, ...]:
        _write(store, fleet, **kw)  # type: ignore[arg-type]
        return recommend(store, WINDOW, prices=PRICES).of_kind(kind)

    return go


BUSY = (80.0, 40 * GIB, (("train", "training"),))
FREE = (0.0, 0, ())


def test_scale_down_drains_a_whole_node_and_releases_part_of_another(run: Run) -> None:
    recs = run({("n1", 0): BUSY, ("n1", 1): FREE, ("n2", 0): FREE, ("n2", 1): FREE}, "scale_down")
    drain, release = recs  # highest saving first
    assert drain.action.type == "drain_node"
    assert drain.action.params == {"cluster": "c1", "node": "n2"}
    assert drain.expected_monthly_saving_usd == pytest.approx(2 * GPU_MONTH)
    assert drain.target.gpus == ("n2 GPU 0", "n2 GPU 1")
    assert (
        "n2 GPU 0: unallocated 8.0 h of 8.0 h (100.0 %), mean utilization 0.0 %"
        in drain.evidence[0]
    )
    assert drain.metrics["unallocated_gpu_hours"] == pytest.approx(16.0)
    assert release.action == release.action.__class__(
        "release_gpus", {"cluster": "c1", "node": "n1", "gpu_uuids": ["GPU-n1-1"]}
    )
    assert release.expected_monthly_saving_usd == pytest.approx(GPU_MONTH)
    # 8 h of data (coverage 8/168), fully past the threshold, held in every hour: the mean
    # of the parts would be 0.683, but under a day of data caps it at 8 / 48 h.
    assert drain.confidence == pytest.approx(0.166)
    assert drain.confidence_label == "low"
    assert drain.confidence_basis.startswith("8 h of data (coverage 0.05 of a week)")
    assert "capped at 0.17 by the hours of data" in drain.confidence_basis


@pytest.mark.parametrize(
    ("hours", "value", "label", "basis"),
    [
        # A minute of data: however clear the finding, the cap (hours / 48) keeps it low.
        (1 / 60, 0.0, "low", "1 min of data (coverage 0.00 of a week)"),
        (12.0, 0.25, "low", "12 h of data"),
        (23.99, 0.499, "low", "24 h of data"),
        # From a day the cap allows medium; from 36 h on the mean of the parts is lower.
        (24.0, 0.5, "medium", "24 h of data"),
        (168.0, 1.0, "high", "168 h of data (coverage 1.00 of a week)"),
    ],
)
def test_confidence_is_capped_by_the_hours_of_data(
    hours: float, value: float, label: str, basis: str
) -> None:
    c = confidence(hours, 1.0, 1.0)
    assert (c.value, c.label) == (pytest.approx(value), label)
    assert c.basis.startswith(basis)
    assert ("capped at" in c.basis) == (hours < 36.0)


def test_no_scale_down_when_every_gpu_is_held(run: Run) -> None:
    assert run({("n1", 0): BUSY, ("n1", 1): BUSY}, "scale_down") == ()


HOT = (95.0, 78 * GIB, (("train", "training"),))


def test_scale_up_on_sustained_saturation_is_a_cost(run: Run) -> None:
    (rec,) = run(
        {("n1", 0): HOT, ("n1", 1): (95.0, 78 * GIB, (("train2", "training"),))}, "scale_up"
    )
    assert rec.action.params == {"cluster": "c1", "gpu_model": H100, "gpus": 1}
    # Allocation 100 %: ceil(2 x 1.0 / 0.8 - 2) = 1 more GPU for the month at $3.00.
    assert rec.expected_monthly_saving_usd == pytest.approx(-720 * 3.0)
    assert rec.metrics["allocation_rate"] == pytest.approx(1.0)
    assert rec.metrics["saturated_buckets"] == rec.metrics["buckets"] == HOURS
    assert rec.metrics["mem_saturated_gpus"] == 2
    assert rec.metrics["shortfall_gpu_hours"] is None
    assert any("saturated" in e and "in 8 of 8 buckets (100 %)" in e for e in rec.evidence)


def test_no_scale_up_below_saturation(run: Run) -> None:
    half = (50.0, 40 * GIB, (("train", "training"),))
    assert run({("n1", 0): half, ("n1", 1): half}, "scale_up") == ()


def _inference(
    name: str, util: float = 20.0, mem: int = 10 * GIB
) -> tuple[float, int, tuple[tuple[str, str | None], ...]]:
    return (util, mem, ((name, "inference"),))


def test_consolidate_packs_measured_peaks(run: Run) -> None:
    fleet = {("n1", i): _inference(f"svc-{i}") for i in range(3)}
    (rec,) = run(fleet, "consolidate")
    assert rec.metrics["gpus_before"] == 3
    assert rec.metrics["gpus_after"] == 1
    assert rec.metrics["gpus_freed"] == 2
    assert rec.expected_monthly_saving_usd == pytest.approx(2 * GPU_MONTH)
    params = rec.action.params
    assert rec.action.type == "move_workload"
    assert params["release_gpu_uuids"] == ["GPU-n1-1", "GPU-n1-2"]
    assert params["moves"] == [
        {
            "workload": f"team/alice/svc-{i}",
            "from_gpu_uuid": f"GPU-n1-{i}",
            "to_gpu_uuid": "GPU-n1-0",
        }
        for i in (1, 2)
    ]
    assert (
        "peak 10.0 GiB, p95 hourly utilization 20.0 %, move n1 GPU 1 -> n1 GPU 0" in rec.evidence[1]
    )


@pytest.mark.parametrize(
    "fleet",
    [
        # Two at 50 % exceed the 90 % utilization cap together.
        {("n1", i): _inference(f"svc-{i}", util=50.0) for i in range(2)},
        # Training never shares.
        {("n1", i): (20.0, 10 * GIB, ((f"t-{i}", "training"),)) for i in range(2)},
    ],
)
def test_no_consolidation_when_peaks_do_not_fit_or_work_cannot_share(
    run: Run, fleet: Fleet
) -> None:
    assert run(fleet, "consolidate") == ()


def test_mig_profile_by_memory_and_compute(run: Run) -> None:
    (rec,) = run({("n1", 0): _inference("small", mem=12 * GIB)}, "mig_or_share")
    # Peak 12 GiB + 10 % = 13.2 GiB and p95 24.75 % (20 % is in the 20-25 bin) + 10 % = 27.2 %:
    # 1g.20gb has 20 GiB but 1/7 = 14.3 % of the SMs; 2g.20gb has 2/7 = 28.6 %.
    assert rec.action.params["profile"] == "2g.20gb"
    assert rec.action.type == "enable_mig"
    assert rec.metrics["p95_gpu_util_pct"] == pytest.approx(24.75)
    assert rec.expected_monthly_saving_usd == pytest.approx(GPU_MONTH * 5 / 7)
    assert "peak memory 12.0 GiB of 80.0 GiB (15.0 %), p95 utilization 24.8 %" in rec.evidence[0]
    assert mig_table("NVIDIA A100-SXM4-40GB", 40 * GIB) == "A100 40GB"
    assert mig_table("NVIDIA L4", 24 * GIB) is None


@pytest.mark.parametrize("sample", [_inference("hot", util=40.0), _inference("big", mem=50 * GIB)])
def test_no_mig_for_large_or_busy_work(
    run: Run, sample: tuple[float, int, tuple[tuple[str, str | None], ...]]
) -> None:
    assert run({("n1", 0): sample}, "mig_or_share") == ()


def test_right_size_drops_the_idle_gpu_of_a_job(run: Run) -> None:
    ddp = (("ddp", "training"),)
    (rec,) = run({("n1", 0): (90.0, 40 * GIB, ddp), ("n1", 1): (0.0, 40 * GIB, ddp)}, "right_size")
    assert rec.action.params["from_gpus"] == 2
    assert rec.action.params["to_gpus"] == 1
    assert rec.action.params["release_gpu_uuids"] == ["GPU-n1-1"]
    assert rec.expected_monthly_saving_usd == pytest.approx(GPU_MONTH)
    assert "n1 GPU 1: busy 0.0 h of 8.0 h held (0.0 %)" in rec.evidence[1]
    assert rec.metrics["idle_gpu_hours"] == pytest.approx(8.0)


def test_no_right_size_when_every_gpu_works(run: Run) -> None:
    ddp = (("ddp", "training"),)
    assert (
        run({("n1", 0): (90.0, 40 * GIB, ddp), ("n1", 1): (70.0, 40 * GIB, ddp)}, "right_size")
        == ()
    )


def test_reclaim_idle_holder(run: Run) -> None:
    (rec,) = run({("n1", 0): (0.0, 20 * GIB, (("jupyter", "notebook"),))}, "reclaim_idle")
    assert rec.action.type == "notify_owner"
    assert rec.action.params["workload"] == "jupyter"
    assert rec.action.params["gpu_uuids"] == ["GPU-n1-0"]
    assert rec.expected_monthly_saving_usd == pytest.approx(GPU_MONTH)
    assert rec.metrics["idle_gpu_hours"] == pytest.approx(8.0)
    assert "8.0 GPU-h (100.0 %) below 5 % utilization, mean utilization 0.0 %" in rec.evidence[0]
    assert "idle cost $24.00 in the window, $2,160.00 over 30 days" in rec.evidence[1]
    assert "holds up to 20.0 GiB of memory (25.0 % of the GPU)" in rec.evidence[2]
    # 8 h of data: under a day, so low however clear the finding.
    assert rec.confidence_label == "low"


@pytest.mark.parametrize("hours", [3])
def test_no_reclaim_for_short_idleness(run: Run, hours: int) -> None:
    assert (
        run({("n1", 0): (0.0, 20 * GIB, (("jupyter", "notebook"),))}, "reclaim_idle", hours=hours)
        == ()
    )


def test_no_reclaim_for_a_working_notebook(run: Run) -> None:
    assert run({("n1", 0): (30.0, 20 * GIB, (("jupyter", "notebook"),))}, "reclaim_idle") == ()


def test_ids_are_stable_and_kinds_filter(store: Store) -> None:
    _write(store, {("n1", 0): FREE, ("n1", 1): (0.0, 20 * GIB, (("nb", "notebook"),))})
    a = recommend(store, WINDOW, prices=PRICES)
    b = recommend(store, WINDOW, prices=PRICES)
    assert [r.id for r in a.recommendations] == [r.id for r in b.recommendations]
    assert len({r.id for r in a.recommendations}) == len(a.recommendations)
    assert {r.kind for r in a.recommendations} == {"scale_down", "reclaim_idle"}
    only = recommend(store, WINDOW, prices=PRICES, kinds=["reclaim_idle"])
    assert [r.kind for r in only.recommendations] == ["reclaim_idle"]
    assert a.total_monthly_saving_usd == pytest.approx(2 * GPU_MONTH)
    assert a.prices_usd_per_gpu_hour == {H100: 3.0}
    assert set(a.kinds) == set(KINDS)
    with pytest.raises(HistoryQueryError, match="unknown recommendation kind"):
        recommend(store, WINDOW, kinds=["shrink"])


# -- the demo cluster --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, DemoSummary]]:
    store = open_store(tmp_path_factory.mktemp("demo") / "demo.db")
    try:
        yield (
            store,
            write_demo(store, days=15, nodes=2, gpus=4, interval_s=300, end_s=1_800_000_000.0),
        )
    finally:
        store.close()


@pytest.mark.slow
def test_demo_idle_holders_are_reclaimed_and_busy_work_is_not(
    demo: tuple[Store, DemoSummary],
) -> None:
    store, summary = demo
    window = Window(summary.demo.start_s, summary.demo.end_s)
    recs = recommend(store, window)
    reclaim = {r.target.workload: r for r in recs.of_kind("reclaim_idle")}
    index = {g.uuid: (g.node, g.index) for g in store.inventory()}
    assert summary.truth.idle_holders
    for h in summary.truth.idle_holders:
        rec = reclaim[h.workload]
        assert (rec.target.namespace, rec.target.user) == (h.namespace, h.user)
        assert sorted(index[u] for u in rec.target.gpu_uuids) == [
            (h.node, i) for i in h.gpu_indices
        ]
        assert rec.expected_monthly_saving_usd > 0
    util = analyze_utilization(store, window, by="workload")
    busy = {g.key for g in util.groups if (g.mean_gpu_util_pct or 0.0) > 50.0}
    assert any("/" in k for k in busy)  # busy training and batch jobs exist
    for r in recs.recommendations:
        if r.kind in ("reclaim_idle", "right_size"):
            assert f"{r.target.namespace}/{r.target.user}/{r.target.workload}" not in busy
        assert r.evidence
        assert r.confidence_label in ("high", "medium", "low")
