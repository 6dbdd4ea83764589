"""Waste and pricing: hand-computed on the two-GPU fleet of ``test_analysis_utilization``, then
checked against the findings planted in the demo cluster.

Prices in the hand tests: H100 $3.00 per GPU-hour, anything else the $1.50 fallback, so GPU B
(``Mystery GPU X``) is priced at the fallback and must be flagged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.test_analysis_utilization import (
    GIB,
    H100,
    HAND_WINDOW,
    ODD_MODEL,
    T0,
    write_hand_fleet,
)

from gpufleet.agent.demo import DemoSummary, write_demo
from gpufleet.analysis.history import HistoryQueryError
from gpufleet.analysis.pricing import (
    DEFAULT_FALLBACK_USD_PER_GPU_HOUR,
    DEFAULT_PRICE_TABLE,
    PriceTable,
    price_for,
)
from gpufleet.analysis.scope import Scope, Window
from gpufleet.analysis.utilization import analyze_utilization
from gpufleet.analysis.waste import compute_waste
from gpufleet.store import Store, open_store

PRICES = PriceTable({"H100": 3.0}, fallback_usd_per_gpu_hour=1.5)


@pytest.fixture
def fleet(store: Store) -> Store:
    write_hand_fleet(store)
    return store


def test_waste_totals_and_efficiency(fleet: Store) -> None:
    w = compute_waste(fleet, HAND_WINDOW, prices=PRICES)
    assert w.source == "gpu_usage"
    assert w.gpu_hours == pytest.approx(4.0)
    assert w.allocated_gpu_hours == pytest.approx(3.0)
    # Used = allocated and busy: alice's 2 h on A; bob's hour on B was idle.
    assert w.used_gpu_hours == pytest.approx(2.0)
    assert w.efficiency == pytest.approx(2.0 / 3.0)
    assert w.idle_allocated_gpu_hours == pytest.approx(1.0)
    assert w.idle_allocated_cost_usd == pytest.approx(1.5)
    assert w.allocated_cost_usd == pytest.approx(2 * 3.0 + 1 * 1.5)
    # Reported apart: B's unheld second hour.
    assert w.unallocated_gpu_hours == pytest.approx(1.0)
    assert w.unallocated_cost_usd == pytest.approx(1.5)
    # 30 days / 2 hours = 360.
    assert w.monthly_factor == pytest.approx(360.0)
    assert (w.covered_hours, w.history_coverage) == (pytest.approx(2.0), pytest.approx(1.0))
    assert w.monthly_idle_allocated_cost_usd == pytest.approx(540.0)
    assert w.monthly_unallocated_cost_usd == pytest.approx(540.0)
    assert w.prices_usd_per_gpu_hour == {H100: 3.0, ODD_MODEL: 1.5}
    assert w.fallback_models == (ODD_MODEL,)


def test_waste_per_namespace(fleet: Store) -> None:
    groups = {g.key: g for g in compute_waste(fleet, HAND_WINDOW, prices=PRICES).groups}
    assert list(groups) == ["cv-team", "ml-team"]  # highest idle cost first
    cv, ml = groups["cv-team"], groups["ml-team"]
    assert (cv.idle_allocated_gpu_hours, cv.idle_allocated_cost_usd, cv.efficiency) == (
        pytest.approx(1.0),
        pytest.approx(1.5),
        pytest.approx(0.0),
    )
    assert cv.monthly_idle_allocated_cost_usd == pytest.approx(540.0)
    assert (ml.allocated_gpu_hours, ml.used_gpu_hours, ml.allocated_cost_usd) == (
        pytest.approx(2.0),
        pytest.approx(2.0),
        pytest.approx(6.0),
    )
    assert (ml.idle_allocated_cost_usd, ml.efficiency) == (0.0, pytest.approx(1.0))


def test_waste_per_gpu_level_keys(fleet: Store) -> None:
    models = {
        g.key: g for g in compute_waste(fleet, HAND_WINDOW, by="gpu_model", prices=PRICES).groups
    }
    assert models[ODD_MODEL].idle_allocated_cost_usd == pytest.approx(1.5)
    assert models[ODD_MODEL].allocated_gpu_hours == pytest.approx(1.0)
    assert models[H100].idle_allocated_cost_usd == pytest.approx(0.0)
    (node,) = compute_waste(fleet, HAND_WINDOW, by="node", prices=PRICES).groups
    assert (node.key, node.gpus, node.idle_allocated_cost_usd) == ("n1", 2, pytest.approx(1.5))
    assert compute_waste(fleet, HAND_WINDOW, by=None, prices=PRICES).groups == ()


def test_top_wasters_carry_their_evidence(fleet: Store) -> None:
    (top,) = compute_waste(fleet, HAND_WINDOW, prices=PRICES).top_wasters
    assert (top.namespace, top.user, top.workload) == ("cv-team", "bob", "notebook")
    assert (top.nodes, top.gpus, top.gpu_uuids) == (("n1",), ("n1 GPU 1",), ("GPU-b",))
    assert (top.held_gpu_hours, top.idle_gpu_hours, top.idle_fraction) == (
        pytest.approx(1.0),
        pytest.approx(1.0),
        pytest.approx(1.0),
    )
    assert top.mean_gpu_util_pct == pytest.approx(0.0)
    assert (top.idle_cost_usd, top.monthly_idle_cost_usd) == (
        pytest.approx(1.5),
        pytest.approx(540.0),
    )
    assert (top.mem_held_peak_bytes, top.mem_held_peak_pct) == (20 * GIB, pytest.approx(25.0))


def test_other_threshold_moves_gpu_level_idle_time_only(fleet: Store) -> None:
    # At 50 % A's 30 minutes at 40 % become idle allocated time; workload rows keep 5 %.
    w = compute_waste(fleet, HAND_WINDOW, by="node", idle_threshold_pct=50.0, prices=PRICES)
    assert w.idle_allocated_gpu_hours == pytest.approx(1.5)
    assert w.idle_allocated_cost_usd == pytest.approx(1.5 + 0.5 * 3.0)
    assert w.groups[0].idle_allocated_gpu_hours == pytest.approx(1.5)
    assert (w.idle_threshold_pct, w.workload_idle_threshold_pct) == (50.0, 5.0)
    assert [t.workload for t in w.top_wasters] == ["notebook"]


def test_workload_scope_has_no_unallocated_time(fleet: Store) -> None:
    w = compute_waste(
        fleet, HAND_WINDOW, scope=Scope(namespace="cv-team"), by="user", prices=PRICES
    )
    assert w.source == "workload_usage"
    assert (w.allocated_gpu_hours, w.idle_allocated_cost_usd, w.efficiency) == (
        pytest.approx(1.0),
        pytest.approx(1.5),
        pytest.approx(0.0),
    )
    assert (w.unallocated_gpu_hours, w.unallocated_cost_usd) == (0.0, 0.0)
    assert [(g.key, g.idle_allocated_cost_usd) for g in w.groups] == [("bob", pytest.approx(1.5))]


def test_waste_rejects_bad_requests(fleet: Store) -> None:
    with pytest.raises(HistoryQueryError, match="unknown group-by key 'team'"):
        compute_waste(fleet, HAND_WINDOW, by="team")
    with pytest.raises(HistoryQueryError, match="top_n must be 0 or more"):
        compute_waste(fleet, HAND_WINDOW, top_n=-1)
    with pytest.raises(HistoryQueryError, match="idle_threshold_pct must be between 0 and 100"):
        compute_waste(fleet, HAND_WINDOW, idle_threshold_pct=-1.0)
    assert compute_waste(fleet, Window(T0, T0 + 7200), top_n=0).top_wasters == ()


@pytest.mark.parametrize(
    ("name", "price"),
    [
        ("NVIDIA H100 80GB HBM3", 4.18),
        ("NVIDIA H200", 5.58),
        ("NVIDIA A100-SXM4-40GB", 1.48),
        ("NVIDIA A100 80GB PCIe", 2.74),
        ("NVIDIA L40S", 1.91),
        ("NVIDIA L4", 0.68),
        ("Tesla V100-SXM2-16GB", 0.55),
        ("NVIDIA GeForce RTX 4090", 1.12),
    ],
)
def test_default_list_prices_match_nvml_names(name: str, price: float) -> None:
    assert price_for(name) == pytest.approx(price)
    assert not DEFAULT_PRICE_TABLE.uses_fallback(name)


def test_custom_table_fallback_and_validation() -> None:
    table = PriceTable(
        {"A100": 1.0, "A100 40GB": 0.8, "NVIDIA L4": 0.3}, fallback_usd_per_gpu_hour=9
    )
    assert table.price_for("NVIDIA A100-PCIE-40GB") == 0.8  # the more specific key wins
    assert table.price_for("NVIDIA A100-SXM4-80GB") == 1.0
    assert table.price_for("NVIDIA L4") == 0.3  # an exact NVML name
    assert table.lookup("NVIDIA L40S") == (9.0, True)  # L4 is a different word from L40S
    assert table.lookup(None) == (9.0, True)
    assert price_for(None) == DEFAULT_FALLBACK_USD_PER_GPU_HOUR
    with pytest.raises(HistoryQueryError, match="price of 'H100' must be a finite, non-negative"):
        PriceTable({"H100": -1.0})
    with pytest.raises(HistoryQueryError, match="empty GPU model name"):
        PriceTable({"NVIDIA": 1.0})


# -- the demo cluster --------------------------------------------------------------------------

DEMO_END_S = 1_800_000_000.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, DemoSummary]]:
    path: Path = tmp_path_factory.mktemp("demo") / "demo.db"
    store = open_store(path)
    try:
        summary = write_demo(store, days=15, nodes=2, gpus=4, interval_s=300, end_s=DEMO_END_S)
        yield store, summary
    finally:
        store.close()


@pytest.mark.slow
def test_demo_idle_holders_top_their_namespaces(demo: tuple[Store, DemoSummary]) -> None:
    store, summary = demo
    window = Window(summary.demo.start_s, summary.demo.end_s)
    waste = compute_waste(store, window, top_n=50)
    holders = summary.truth.idle_holders
    assert holders
    index = {g.uuid: (g.node, g.index) for g in store.inventory()}
    for h in holders:
        mine = [t for t in waste.top_wasters if t.namespace == h.namespace]
        top = mine[0]
        assert (top.user, top.workload) == (h.user, h.workload)
        assert top.nodes == (h.node,)
        assert sorted(index[u] for u in top.gpu_uuids) == [(h.node, i) for i in h.gpu_indices]
        assert top.idle_fraction > 0.95
        assert top.mem_held_peak_pct == pytest.approx(100 * h.mem_frac, abs=1.0)
        group = next(g for g in waste.groups if g.key == h.namespace)
        assert group.idle_allocated_cost_usd >= top.idle_cost_usd * 0.999
    # The planted holders are the three biggest wasters of the whole cluster.
    assert {t.workload for t in waste.top_wasters[: len(holders)]} == {h.workload for h in holders}


@pytest.mark.slow
def test_demo_busy_workloads_are_not_called_idle(demo: tuple[Store, DemoSummary]) -> None:
    store, summary = demo
    window = Window(summary.demo.start_s, summary.demo.end_s)
    util = analyze_utilization(store, window, by="workload")
    busy = [g for g in util.groups if (g.mean_gpu_util_pct or 0.0) > 50.0]
    assert busy
    assert all(g.idle_fraction is not None and g.idle_fraction < 0.5 for g in busy)
    flagged = {e.key for e in util.under_utilized}
    holder_gpus = {(h.node, i) for h in summary.truth.idle_holders for i in h.gpu_indices}
    labels = {f"{node} GPU {i}" for node, i in holder_gpus}
    assert labels <= {e.label for e in util.under_utilized}
    busy_keys = {g.key for g in busy}
    wasters = compute_waste(store, window, top_n=50).top_wasters
    for t in wasters:
        if t.idle_fraction >= 0.5:
            assert (t.mean_gpu_util_pct or 0.0) < 50.0
            assert f"{t.namespace}/{t.user}/{t.workload}" not in busy_keys
    assert all(e.mean_gpu_util_pct < util.under_pct for e in util.under_utilized)
    assert flagged


def test_a_window_history_covers_in_part_says_how_much(fleet: Store) -> None:
    """Two hours of history in a four-hour window: half of it is covered, and the month is
    scaled from those two hours."""
    window = Window(HAND_WINDOW.start_s - 2 * 3600.0, HAND_WINDOW.end_s)
    w = compute_waste(fleet, window, prices=PRICES)
    assert (w.covered_hours, w.history_coverage) == (pytest.approx(2.0), pytest.approx(0.5))
    assert w.monthly_factor == pytest.approx(360.0)
