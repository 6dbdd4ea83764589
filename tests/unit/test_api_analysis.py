"""``/analysis/*`` and ``/optimize/*`` over a real store: hand-computed numbers, the demo's
planted findings, executions logged, and 422s that list what exists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.store_samples import GIB, T0, gpu, proc, snap

from gpufleet.agent.context import AgentContext
from gpufleet.agent.demo import DemoSummary, write_demo
from gpufleet.agent.live import LiveState
from gpufleet.api.app import create_app
from gpufleet.collectors.sim import SimGpuSource
from gpufleet.settings import Settings
from gpufleet.store import open_store
from gpufleet.store.base import Store

HOURS = 4
WINDOW = {"from": str(T0), "to": str(T0 + HOURS * 3600)}


def hand_store(path: Path) -> Store:
    """Two H100s for four hours at one sample a minute.

    GPU-a runs ``team/alice/train`` at 60 %; GPU-b is held by ``team/bob/nb`` at 0 % (idle
    while allocated) for the first two hours and is free (unallocated, 0 %) after that.
    """
    store = open_store(path)
    snaps = []
    for m in range(HOURS * 60):
        held_b = m < 120
        snaps.append(
            snap(
                T0 + m * 60,
                gpu("GPU-a", 60.0, mem_used=8 * GIB, procs=[proc(1, "train", mem=8 * GIB)]),
                gpu(
                    "GPU-b",
                    0.0,
                    index=1,
                    mem_used=4 * GIB if held_b else 0,
                    procs=[proc(2, "nb", user="bob", mem=4 * GIB)] if held_b else [],
                ),
            )
        )
    store.write_snapshots(snaps)
    return store


def _client(store: Store, tmp_path: Path, **settings: Any) -> TestClient:
    ctx = AgentContext(
        settings=Settings(cluster="c1", node="n1", db=str(tmp_path / "unused.db"), **settings),
        live=LiveState(SimGpuSource(gpus=1).status()),
        store=store,
    )
    return TestClient(create_app(ctx))


@pytest.fixture
def hand(tmp_path: Path) -> Iterator[TestClient]:
    store = hand_store(tmp_path / "hand.db")
    try:
        yield _client(store, tmp_path)
    finally:
        store.close()


def test_utilization_matches_hand_computed_values(hand: TestClient) -> None:
    r = hand.post("/analysis/utilization", json={**WINDOW, "by": "workload"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["gpu_hours"] == pytest.approx(8.0)
    assert out["mean_gpu_util_pct"] == pytest.approx(30.0)  # (60 * 4 + 0 * 4) / 8
    assert out["idle_gpu_hours"] == pytest.approx(4.0)
    assert out["idle_fraction"] == pytest.approx(0.5)
    assert out["allocated_gpu_hours"] == pytest.approx(6.0)
    assert out["idle_allocated_gpu_hours"] == pytest.approx(2.0)
    assert out["allocation_rate"] == pytest.approx(0.75)
    assert out["window"]["start"] == "2023-11-14T22:00:00Z"
    assert out["group_key"] == "workload"
    by = {g["key"]: g for g in out["by"]}
    assert set(by) == {"team/alice/train", "team/bob/nb"}
    assert by["team/alice/train"]["mean_gpu_util_pct"] == pytest.approx(60.0)
    assert by["team/bob/nb"]["idle_fraction"] == pytest.approx(1.0)
    assert by["team/bob/nb"]["gpu_hours"] == pytest.approx(2.0)
    for g in out["by"]:
        assert {"key", "mean_gpu_util_pct", "idle_fraction", "gpu_hours", "idle_gpu_hours"} <= set(
            g
        )


def test_utilization_without_body_uses_the_last_7_days(hand: TestClient) -> None:
    r = hand.post("/analysis/utilization")
    # The hand data is from 2023: nothing in the last 7 days is a 422 saying so, not a 500.
    assert r.status_code in (200, 422), r.text
    if r.status_code == 200:
        assert r.json()["gpu_hours"] == 0


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda c: c.post("/analysis/utilization", json={**WINDOW, "by": "team"}), "namespace"),
        (
            lambda c: c.post(
                "/analysis/utilization", json={**WINDOW, "scope": {"namespace": "nope"}}
            ),
            "team",
        ),
        (
            lambda c: c.post("/analysis/utilization", json={**WINDOW, "idle_treshold": 3}),
            "idle_treshold",
        ),
        (lambda c: c.post("/analysis/utilization", json={"from": "soon"}), "cannot read time"),
        (
            lambda c: c.post("/analysis/utilization", json={"from": str(T0), "to": str(T0 - 1)}),
            "must be before",
        ),
        (lambda c: c.get("/analysis/waste", params={**WINDOW, "by": "rack"}), "namespace"),
        (lambda c: c.get("/analysis/waste", params={**WINDOW, "node": "n9"}), "n1"),
        (lambda c: c.get("/analysis/trends", params={**WINDOW, "granularity": "year"}), "day"),
        (lambda c: c.get("/analysis/trends", params={**WINDOW, "metric": "fun"}), "utilization"),
        (lambda c: c.get("/analysis/trends", params={**WINDOW, "compare_from": "-1d"}), "both"),
        (lambda c: c.get("/analysis/drilldown", params={**WINDOW, "levels": "rack"}), "levels"),
        (lambda c: c.get("/optimize/recommendations", params={**WINDOW, "kind": "x"}), "use:"),
        (
            lambda c: c.post("/optimize/execute", json={**WINDOW, "recommendation_ids": ["f00"]}),
            "current recommendations",
        ),
        (lambda c: c.post("/optimize/execute", json={**WINDOW}), "recommendation_ids"),
        (lambda c: c.get("/analysis/report", params={**WINDOW, "format": "pdf"}), "format"),
    ],
)
def test_bad_requests_are_422_saying_what_exists(hand: TestClient, call: Any, needle: str) -> None:
    r = call(hand)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]


def test_waste_and_opportunities_price_the_idle_notebook(hand: TestClient) -> None:
    out = hand.get("/analysis/waste", params={**WINDOW, "by": "user"}).json()
    assert out["idle_allocated_gpu_hours"] == pytest.approx(2.0)
    assert out["unallocated_gpu_hours"] == pytest.approx(2.0)
    assert out["efficiency"] == pytest.approx(4.0 / 6.0)  # 4 h used of 6 h held
    (top,) = out["top_wasters"]
    assert (top["workload"], top["user"]) == ("nb", "bob")
    price = out["prices_usd_per_gpu_hour"]
    (usd_h,) = price.values()
    assert out["idle_allocated_cost_usd"] == pytest.approx(2.0 * usd_h)
    opp = hand.get("/analysis/opportunities", params=WINDOW).json()
    assert [w["key"] for w in opp["under_utilized_workloads"]] == ["team/bob/nb"]
    assert opp["idle_allocated_gpu_hours"] == pytest.approx(2.0)


def test_trends_compare_two_windows_and_two_entities(hand: TestClient) -> None:
    params = {
        **WINDOW,
        "granularity": "hour",
        "compare_from": str(T0),
        "compare_to": str(T0 + 2 * 3600),
        "compare_key": "user",
        "a": "alice",
        "b": "bob",
    }
    r = hand.get("/analysis/trends", params=params)
    assert r.status_code == 200, r.text
    out = r.json()
    values = [p["value"] for p in out["series"]["points"]]
    assert values == pytest.approx([30.0] * 4)  # 60 % on one GPU, 0 % on the other
    ent = out["entity_comparison"]
    assert (ent["value_a"], ent["value_b"]) == pytest.approx((60.0, 0.0))
    win = out["window_comparison"]
    assert win["value_a"] == pytest.approx(30.0)


def test_drilldown_names_the_user_who_left(hand: TestClient) -> None:
    params = {
        "before_from": str(T0),
        "before_to": str(T0 + 7200),
        "from": str(T0 + 7200),
        "to": str(T0 + 4 * 3600),
    }
    r = hand.get("/analysis/drilldown", params=params)
    assert r.status_code == 200, r.text
    root = r.json()["root"]
    assert root["change"] == pytest.approx(-2.0)  # 4 GPU-h held -> 2
    (team,) = root["children"]
    bob = next(c for c in team["children"] if c["name"] == "bob")
    assert bob["contribution"] == pytest.approx(-2.0)


def test_execute_is_a_dry_run_by_default_and_logged(tmp_path: Path) -> None:
    store = hand_store(tmp_path / "exec.db")
    try:
        client = _client(store, tmp_path)
        recs = client.get("/optimize/recommendations", params=WINDOW).json()["recommendations"]
        assert recs, "the idle notebook should be found"
        first = recs[0]["id"]
        # The same recommendation keeps its id over another window that still shows it.
        again = client.post(
            "/optimize/recommendations", json={"from": str(T0 + 60), "to": WINDOW["to"]}
        ).json()["recommendations"]
        assert first in {r["id"] for r in again}
        r = client.post("/optimize/execute", json={**WINDOW, "recommendation_ids": [first]})
        assert r.status_code == 200, r.text
        (done,) = r.json()["executions"]
        assert (done["status"], done["dry_run"], done["recommendation_id"]) == (
            "planned",
            True,
            first,
        )
        assert done["requested_by"].startswith("api")
        # Not a dry run, and no executor configured: refused, nothing logged for it.
        refused = client.post(
            "/optimize/execute",
            json={**WINDOW, "recommendation_ids": [first], "dry_run": False},
        )
        assert refused.status_code == 422
        assert "executor" in refused.json()["detail"]
        log = client.get("/optimize/executions").json()
        assert log["count"] == 1
        assert log["executions"][0]["recommendation_id"] == first
    finally:
        store.close()


def test_execute_through_a_command(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = tmp_path / "act.py"
    script.write_text(
        "import json, os, sys\n"
        f"open({str(out)!r}, 'w').write(json.dumps({{'body': json.load(sys.stdin), "
        "'type': os.environ['GPUFLEET_ACTION_TYPE']}))\n"
    )
    store = hand_store(tmp_path / "cmd.db")
    try:
        import sys

        client = _client(
            store, tmp_path, executor={"kind": "command", "command": [sys.executable, str(script)]}
        )
        recs = client.get("/optimize/recommendations", params=WINDOW).json()["recommendations"]
        rid = recs[0]["id"]
        r = client.post(
            "/optimize/execute",
            json={**WINDOW, "recommendation_ids": [rid], "dry_run": False, "requested_by": "ops"},
        )
        assert r.status_code == 200, r.text
        (done,) = r.json()["executions"]
        assert (done["status"], done["requested_by"], done["executor"]) == (
            "succeeded",
            "ops",
            "command",
        )
        got = json.loads(out.read_text())
        assert got["type"] == recs[0]["action"]["type"]
        assert rid in json.dumps(got["body"])
    finally:
        store.close()


# ---- the demo's planted findings through the API --------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, DemoSummary]]:
    tmp = tmp_path_factory.mktemp("apidemo")
    store = open_store(tmp / "demo.db")
    try:
        summary = write_demo(store, days=15, nodes=2, gpus=4, interval_s=300, end_s=1_800_000_000.0)
        yield _client(store, tmp), summary
    finally:
        store.close()


@pytest.mark.slow
def test_demo_findings_through_the_api(demo: tuple[TestClient, DemoSummary]) -> None:
    client, summary = demo
    window = {"from": str(summary.demo.start_s), "to": str(summary.demo.end_s)}
    recs = client.get("/optimize/recommendations", params=window).json()
    reclaimed = {
        r["target"]["workload"] for r in recs["recommendations"] if r["kind"] == "reclaim_idle"
    }
    assert {h.workload for h in summary.truth.idle_holders} <= reclaimed
    assert recs["total_monthly_saving_usd"] > 0
    waste = client.get("/analysis/waste", params=window).json()
    top = {w["workload"] for w in waste["top_wasters"]}
    assert {h.workload for h in summary.truth.idle_holders} & top
    # (2 x 4 GPUs is too small for the planted team drop: test_analysis_drilldown covers it.)
    tree = client.get("/analysis/drilldown", params=window).json()
    root = tree["root"]
    parts = sum(c["contribution"] for c in root["children"]) + root["other_contribution"]
    assert parts == pytest.approx(root["change"], abs=1e-6)
    for kind, path in (("scale_up", "scale-up"), ("scale_down", "scale-down")):
        got = client.post(f"/optimize/{path}", json=window).json()
        assert all(r["kind"] == kind for r in got["recommendations"])
        assert got["kinds"] == [kind]
    report = client.get("/analysis/report", params={**window, "format": "html"})
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert "<svg" in report.text
    md = client.get("/analysis/report", params={**window, "format": "md"})
    assert md.headers["content-type"].startswith("text/markdown")
    js = client.get("/analysis/report", params=window).json()
    assert js["headline"]


def test_idle_threshold_defaults_to_the_agent_settings(tmp_path: Path) -> None:
    store = hand_store(tmp_path / "thr.db")
    try:
        client = _client(store, tmp_path, idle_threshold_pct=70.0)
        # No threshold in the body or query: the settings' 70 %, so 60 % counts as idle.
        r = client.post("/analysis/utilization", json=WINDOW)
        assert r.status_code == 200, r.text
        assert r.json()["idle_threshold_pct"] == 70
        assert r.json()["idle_fraction"] == pytest.approx(1.0)
        for path in ("/analysis/waste", "/analysis/opportunities", "/analysis/report"):
            r = client.get(path, params=WINDOW)
            assert r.status_code == 200, (path, r.text)
            assert r.json()["idle_threshold_pct"] == 70, path
        r = client.get("/analysis/trends", params={**WINDOW, "granularity": "hour"})
        assert r.status_code == 200, r.text
        assert r.json()["series"]["idle_threshold_pct"] == 70
        r = client.get("/optimize/recommendations", params=WINDOW)
        assert r.status_code == 200, r.text
        assert r.json()["idle_threshold_pct"] == 70
        r = client.post("/optimize/recommendations", json=WINDOW)
        assert r.status_code == 200, r.text
        assert r.json()["idle_threshold_pct"] == 70
        # An explicit value wins.
        r = client.post("/analysis/utilization", json={**WINDOW, "idle_threshold_pct": 5})
        assert r.json()["idle_threshold_pct"] == 5
        assert r.json()["idle_fraction"] == pytest.approx(0.5)
        r = client.get("/analysis/waste", params={**WINDOW, "idle_threshold_pct": 5})
        assert r.json()["idle_threshold_pct"] == 5
        r = client.get("/optimize/recommendations", params={**WINDOW, "idle_threshold_pct": 5})
        assert r.json()["idle_threshold_pct"] == 5
        r = client.post("/analysis/utilization", json={**WINDOW, "idle_threshold_pct": 101})
        assert r.status_code == 422
    finally:
        store.close()


def test_workload_kind_scopes_and_groups(hand: TestClient) -> None:
    # The hand fleet's processes carry no kind: every workload reads "unknown".
    by_kind = hand.post("/analysis/utilization", json={**WINDOW, "by": "workload_kind"}).json()
    assert [g["key"] for g in by_kind["by"]] == ["unknown"]
    assert by_kind["by"][0]["gpu_hours"] == pytest.approx(6.0)  # held: 4 h + 2 h
    scoped = hand.get("/analysis/waste", params={**WINDOW, "workload_kind": "unknown"})
    assert scoped.status_code == 200, scoped.text
    assert scoped.json()["scope"] == {"workload_kind": "unknown"}
    missing = hand.get("/analysis/waste", params={**WINDOW, "workload_kind": "training"})
    assert missing.status_code == 422
    assert "workload kinds: unknown" in missing.json()["detail"]


def test_post_utilization_refuses_options_in_the_query_string(hand: TestClient) -> None:
    r = hand.post("/analysis/utilization?from=-1d", json=WINDOW)
    assert r.status_code == 422
    assert "JSON body" in r.json()["detail"]
    assert "from" in r.json()["detail"]


def test_an_agent_refuses_the_hub_s_node_filters(hand: TestClient) -> None:
    r = hand.post("/analysis/utilization", json={**WINDOW, "scope": {"pool": "train"}})
    assert r.status_code == 422
    assert "pool and label select a hub's nodes" in r.json()["detail"]


def test_comparing_an_entity_without_data_is_a_422_listing_what_exists(hand: TestClient) -> None:
    r = hand.get(
        "/analysis/trends", params={**WINDOW, "compare_key": "user", "a": "alice", "b": "nobody"}
    )
    assert r.status_code == 422
    assert "no user 'nobody'" in r.json()["detail"]
    assert "alice" in r.json()["detail"]
