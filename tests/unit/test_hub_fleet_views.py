"""The hub's fleet-scope views over a real store (both backends): every node's GPUs and host
now, filtered by pool / label / status; history of the whole fleet; the analysis, the
recommendations and the analyst over the hub's store, with pool and label as scope filters,
all behind tokens."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.store_samples import T0, gpu, proc, snap

from gpufleet.api.hub_app import create_hub_app
from gpufleet.fleet.hub import Hub
from gpufleet.model_wire import snapshot_to_wire
from gpufleet.store.base import Store
from gpufleet.store.task_records import TaskRecords

NODES = (("c1", "n1", "train", 80.0), ("c1", "n2", "infer", 20.0), ("c2", "n3", None, 50.0))
END = T0 + 6 * 3600.0


@pytest.fixture
def fleet(store: Store) -> tuple[Hub, TestClient, dict[str, str]]:
    assert isinstance(store, TaskRecords)
    hub = Hub(store, clock=lambda: END + 30.0)
    _, record = hub.create_token("agents", ["node-join"])
    for cluster, node, pool, util in NODES:
        body: dict[str, Any] = {"cluster": cluster, "node": node, "labels": {"rack": node[-1]}}
        if pool:
            body["pool"] = pool
        hub.join(body, record)
        snaps = [
            snap(
                T0 + 60.0 * i,
                gpu(f"GPU-{node}", util, procs=[proc(1, "train", namespace="ml")]),
                node=node,
                cluster=cluster,
            )
            for i in range(6 * 60)
        ]
        hub.ingest(
            {
                "cluster": cluster,
                "node": node,
                "batch_id": f"{node}:1",
                "snapshots": [snapshot_to_wire(s) for s in snaps],
            }
        )
        hub.heartbeat({"cluster": cluster, "node": node})
    read, _ = hub.create_token("viewer", ["read"])
    return hub, TestClient(create_hub_app(hub)), {"Authorization": f"Bearer {read}"}


def test_every_node_s_gpus_and_host_now(fleet: tuple[Hub, TestClient, dict[str, str]]) -> None:
    _, api, auth = fleet
    r = api.get("/fleet/v1/gpus", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gpu_count"] == 3
    assert [
        (n["node"], n["sample"]["gpus"][0]["utilization"]["gpu_percent"]) for n in body["nodes"]
    ] == [
        ("n1", 80.0),
        ("n2", 20.0),
        ("n3", 50.0),
    ]
    train = api.get("/fleet/v1/gpus?pool=train", headers=auth).json()["nodes"]
    assert [n["node"] for n in train] == ["n1"]
    rack = api.get("/fleet/v1/gpus?label=rack=2", headers=auth).json()["nodes"]
    assert [n["node"] for n in rack] == ["n2"]
    assert api.get("/fleet/v1/gpus?status=sleepy", headers=auth).status_code == 422
    assert api.get("/fleet/v1/gpus?label=rack", headers=auth).status_code == 422
    assert api.get("/fleet/v1/gpus").status_code == 401
    hosts = api.get("/fleet/v1/system?cluster=c2", headers=auth).json()["nodes"]
    assert [n["node"] for n in hosts] == ["n3"]


def test_fleet_history_and_analysis_by_pool(
    fleet: tuple[Hub, TestClient, dict[str, str]],
) -> None:
    _, api, auth = fleet
    window = {"from": str(T0), "to": str(END)}
    hist = api.get(
        "/fleet/v1/gpus/history", params={**window, "resolution": "1h"}, headers=auth
    ).json()
    assert sorted(s["node"] for s in hist["series"]) == ["n1", "n2", "n3"]
    by_pool = api.get("/analysis/trends", params={**window, "pool": "train"}, headers=auth)
    assert by_pool.status_code == 200, by_pool.text
    by_node = api.get("/analysis/trends", params={**window, "node": "n1"}, headers=auth).json()
    points = by_pool.json()["series"]["points"]
    assert points == by_node["series"]["points"]
    assert [p["value"] for p in points] == [80.0, 80.0]
    assert by_pool.json()["series"]["scope"]["nodes"] == ["c1/n1"]
    whole = api.get("/analysis/trends", params=window, headers=auth).json()
    assert [p["value"] for p in whole["series"]["points"]] == [50.0, 50.0]
    nothing = api.get("/analysis/trends", params={**window, "pool": "gpu-less"}, headers=auth)
    assert nothing.status_code == 422
    assert "no node of the hub has pool gpu-less" in nothing.json()["detail"]
    waste = api.get("/analysis/waste", params={**window, "label": "rack=2"}, headers=auth)
    assert waste.status_code == 200, waste.text
    # POST bodies take the same node filters in their scope.
    body = {**window, "by": "node", "scope": {"pool": "train"}}
    util = api.post("/analysis/utilization", json=body, headers=auth)
    assert util.status_code == 200, util.text
    assert [g["key"] for g in util.json()["by"]] == ["n1"]
    body["scope"] = {"pool": "gpu-less"}
    none = api.post("/analysis/utilization", json=body, headers=auth)
    assert none.status_code == 422
    assert "no node of the hub has pool gpu-less" in none.json()["detail"]
    scoped = api.post(
        "/optimize/recommendations", json={**window, "scope": {"label": "rack=2"}}, headers=auth
    )
    assert scoped.status_code == 200, scoped.text
    assert api.get("/analysis/waste", params=window).status_code == 401
    recs = api.get("/optimize/recommendations", params=window, headers=auth)
    assert recs.status_code == 200, recs.text
    execute = api.post(
        "/optimize/execute", json={**window, "recommendation_ids": ["x"]}, headers=auth
    )
    assert execute.status_code == 403


def test_the_analyst_answers_per_cluster(fleet: tuple[Hub, TestClient, dict[str, str]]) -> None:
    _, api, auth = fleet
    r = api.post(
        "/api/gpu-analysis/chat", json={"query": "how many GPUs are there now?"}, headers=auth
    )
    assert r.status_code == 200, r.text
    both = api.post(
        "/api/gpu-analysis/chat", json={"query": "which clusters are there?"}, headers=auth
    ).json()
    assert "c1" in both["answer"]
    assert "c2" in both["answer"]
    one = api.post(
        "/api/gpu-analysis/chat",
        json={"query": "which nodes are there?", "cluster_name": "c2"},
        headers=auth,
    ).json()
    assert "n3" in one["answer"]
    assert "n1" not in one["answer"]
    assert api.post("/api/gpu-analysis/chat", json={"query": "hi"}).status_code == 401


def test_a_drain_recommendation_drains_the_node_on_the_hub(store: Store) -> None:
    assert isinstance(store, TaskRecords)
    hub = Hub(store, clock=lambda: END + 30.0)
    _, record = hub.create_token("agents", ["node-join"])
    hub.join({"cluster": "c1", "node": "spare"}, record)
    # Two GPUs nobody held for six hours: a recommendation to drain the node.
    snaps = [
        snap(T0 + 60.0 * i, gpu("GPU-s0", 0.0), gpu("GPU-s1", 0.0, index=1), node="spare")
        for i in range(6 * 60)
    ]
    hub.ingest(
        {
            "cluster": "c1",
            "node": "spare",
            "batch_id": "s:1",
            "snapshots": [snapshot_to_wire(s) for s in snaps],
        }
    )
    hub.heartbeat({"cluster": "c1", "node": "spare"})
    admin, _ = hub.create_token("ops", ["admin"])
    auth = {"Authorization": f"Bearer {admin}"}
    api = TestClient(create_hub_app(hub))
    window = {"from": str(T0), "to": str(END)}
    recs = api.get("/optimize/recommendations", params=window, headers=auth).json()
    drain = [r for r in recs["recommendations"] if r["action"]["type"] == "drain_node"]
    assert drain, recs
    r = api.post(
        "/optimize/execute",
        json={**window, "recommendation_ids": [drain[0]["id"]], "dry_run": False},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    (done,) = r.json()["executions"]
    assert (done["executor"], done["status"]) == ("hub", "succeeded")
    (node,) = hub.nodes()
    assert node.status == "drained"
    assert node.node.drain_reason == f"recommendation {drain[0]['id']}"
