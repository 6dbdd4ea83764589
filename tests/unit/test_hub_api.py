"""The hub's API over a real store (both backends): tokens enforced on every call, nodes
joining, beating and pushing samples, health states, drain, and a hub restart."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.hub_fixtures import Clock, auth
from tests.unit.store_samples import T0, gpu, proc, snap

from gpufleet.api.hub_app import create_hub_app
from gpufleet.fleet.hub import Hub
from gpufleet.model_wire import snapshot_to_wire
from gpufleet.store import open_store
from gpufleet.store.base import Store
from gpufleet.store.hub_records import HubRecords


def _batch(node: str, n: int, start: float = T0, batch_id: str = "a:1-2") -> dict[str, Any]:
    snaps = [
        snap(start + 60.0 * i, gpu("GPU-" + node, 50.0, procs=[proc(1, "train")]), node=node)
        for i in range(n)
    ]
    return {
        "cluster": "c1",
        "node": node,
        "batch_id": batch_id,
        "snapshots": [snapshot_to_wire(s) for s in snaps],
    }


MUTATING = [
    ("post", "/fleet/v1/join", {"cluster": "c1", "node": "n1"}),
    ("post", "/fleet/v1/heartbeat", {"cluster": "c1", "node": "n1"}),
    ("post", "/fleet/v1/ingest", {"cluster": "c1", "node": "n1", "batch_id": "x", "snapshots": []}),
    ("post", "/fleet/v1/nodes/c1/n1/drain", {}),
    ("post", "/fleet/v1/nodes/c1/n1/undrain", None),
    ("post", "/fleet/v1/tokens", {"name": "x", "scopes": ["read"]}),
]


@pytest.mark.parametrize(("method", "path", "body"), MUTATING)
def test_every_mutating_call_needs_a_token(
    api: TestClient, hub: Hub, store: Store, method: str, path: str, body: Any
) -> None:
    before = (store.hub_nodes(), store.tokens())  # type: ignore[attr-defined]
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer gf_00000000_" + "x" * 40}, 401),
        ({"Authorization": "Basic Zm9vOmJhcg=="}, 401),
        (auth(hub, "read"), 403),
    ):
        r = api.request(method, path, json=body, headers=headers)
        assert r.status_code == status, (path, headers, r.text)
        assert r.json()["detail"]
    # Only the read token created above was added; nothing else changed.
    after_nodes = store.hub_nodes()  # type: ignore[attr-defined]
    assert after_nodes == before[0]


def test_a_node_joins_beats_pushes_and_is_healthy(api: TestClient, hub: Hub, store: Store) -> None:
    node = auth(hub, "node-join")
    r = api.post(
        "/fleet/v1/join",
        json={"cluster": "c1", "node": "n1", "labels": {"rack": "a"}, "zone": "eu", "pool": "p"},
        headers=node,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "degraded"  # joined, no samples yet
    assert "no samples received yet" in r.json()["reasons"]
    r = api.post("/fleet/v1/ingest", json=_batch("n1", 3, start=T0 + 3400.0), headers=node)
    assert r.json() == {"batch_id": "a:1-2", "snapshots": 3, "duplicate": False}
    # The same batch again (its acknowledgement was lost): recognized, not stored twice.
    again = api.post("/fleet/v1/ingest", json=_batch("n1", 3, start=T0 + 3400.0), headers=node)
    assert again.json()["duplicate"] is True
    usage = store.gpu_usage(start_s=T0, end_s=T0 + 7200.0)
    assert sum(u.seconds for u in usage) == pytest.approx(3 * 60.0)
    r = api.post(
        "/fleet/v1/heartbeat",
        json={"cluster": "c1", "node": "n1", "health_check": {"response_ms": 3.2}},
        headers=node,
    )
    assert r.json()["status"] == "healthy"
    listed = api.get("/fleet/v1/nodes", headers=auth(hub, "read")).json()["nodes"]
    assert [(n["node"], n["status"], n["labels"], n["zone"]) for n in listed] == [
        ("n1", "healthy", {"rack": "a"}, "eu")
    ]
    assert listed[0]["health_check"] == {"response_ms": 3.2}


def test_a_silent_node_becomes_unreachable(api: TestClient, hub: Hub, clock: Clock) -> None:
    node = auth(hub, "node-join")
    api.post("/fleet/v1/join", json={"cluster": "c1", "node": "n1"}, headers=node)
    clock.now += 31.0
    read = auth(hub, "read")
    (n1,) = api.get("/fleet/v1/nodes", headers=read).json()["nodes"]
    assert n1["status"] == "unreachable"
    assert api.get("/fleet/v1/nodes?status=unreachable", headers=read).json()["nodes"]
    assert api.get("/fleet/v1/nodes?status=sleepy", headers=read).status_code == 422


def test_drain_holds_and_undrain_releases(api: TestClient, hub: Hub) -> None:
    api.post("/fleet/v1/join", json={"cluster": "c1", "node": "n1"}, headers=auth(hub, "node-join"))
    admin = auth(hub, "admin")
    r = api.post("/fleet/v1/nodes/c1/n1/drain", json={"reason": "new PSU"}, headers=admin)
    assert (r.json()["status"], r.json()["reasons"]) == ("drained", ["drained: new PSU"])
    assert api.post("/fleet/v1/nodes/c1/n9/drain", json={}, headers=admin).status_code == 404
    r = api.post("/fleet/v1/nodes/c1/n1/undrain", headers=admin)
    assert r.json()["drained"] is False


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"cluster": "c1", "node": "n1", "batch_id": "b", "snapshots": "x"}, "must be a list"),
        ({"cluster": "c1", "node": "bad node!", "batch_id": "b", "snapshots": []}, "node must be"),
        (
            {**_batch("n2", 1), "node": "n1"},
            "is of c1/n2, not of c1/n1: a node sends only its own samples",
        ),
        ({**_batch("n1", 1), "snapshots": [{"ts_s": 1}]}, "snapshots[0].cluster: missing"),
        ({**_batch("n9", 1), "node": "n9"}, "has not joined"),
    ],
)
def test_bad_batches_are_refused_and_nothing_is_stored(
    api: TestClient, hub: Hub, store: Store, body: dict[str, Any], why: str
) -> None:
    node = auth(hub, "node-join")
    api.post("/fleet/v1/join", json={"cluster": "c1", "node": "n1"}, headers=node)
    r = api.post("/fleet/v1/ingest", json=body, headers=node)
    assert 400 <= r.status_code < 500
    assert why in r.json()["detail"]
    assert store.gpu_usage(start_s=0.0, end_s=T0 * 2) == []


def test_tokens_are_created_listed_and_revoked_without_secrets(api: TestClient, hub: Hub) -> None:
    admin = auth(hub, "admin")
    made = api.post(
        "/fleet/v1/tokens", json={"name": "ci", "scopes": ["submit"], "ttl_s": 60}, headers=admin
    )
    assert made.status_code == 201
    text = made.json()["token"]
    listed = api.get("/fleet/v1/tokens", headers=admin).json()["tokens"]
    assert text not in json.dumps(listed)
    assert {t["name"] for t in listed} >= {"ci", "t"}
    assert api.delete(f"/fleet/v1/tokens/{made.json()['id']}", headers=admin).status_code == 200
    r = api.get("/fleet/v1/nodes", headers={"Authorization": f"Bearer {text}"})
    assert (r.status_code, "revoked" in r.json()["detail"]) == (401, True)
    bad = api.post("/fleet/v1/tokens", json={"name": "x", "scopes": ["root"]}, headers=admin)
    assert (bad.status_code, "unknown scope" in bad.json()["detail"]) == (422, True)


def test_a_hub_restart_keeps_nodes_drains_and_tokens(store_target: str, clock: Clock) -> None:
    first = open_store(store_target)
    assert isinstance(first, HubRecords)
    hub = Hub(first, clock=clock)
    text, _ = hub.create_token("agents", ["node-join"])
    api = TestClient(create_hub_app(hub))
    headers = {"Authorization": f"Bearer {text}"}
    api.post("/fleet/v1/join", json={"cluster": "c1", "node": "n1", "pool": "p"}, headers=headers)
    api.post("/fleet/v1/ingest", json=_batch("n1", 2), headers=headers)
    hub.drain("c1", "n1", drained=True, reason="maintenance")
    first.close()
    second = open_store(store_target)
    try:
        assert isinstance(second, HubRecords)
        again = TestClient(create_hub_app(Hub(second, clock=clock)))
        r = again.post("/fleet/v1/ingest", json=_batch("n1", 2), headers=headers)
        assert r.json()["duplicate"] is True  # the batch id survived the restart too
        (n1,) = second.hub_nodes()  # type: ignore[attr-defined]
        assert (n1.pool, n1.drained, n1.drain_reason) == ("p", True, "maintenance")
    finally:
        second.close()


def test_discovered_agents_are_listed_not_joined(api: TestClient, hub: Hub) -> None:
    hub.discovery.heard({"cluster": "c1", "node": "n1", "url": "http://10.0.0.1:8003"}, "mdns")
    hub.discovery.heard({"cluster": "c1", "node": "n2", "url": "http://10.0.0.2:8003"}, "udp")
    api.post("/fleet/v1/join", json={"cluster": "c1", "node": "n1"}, headers=auth(hub, "node-join"))
    assert api.get("/fleet/v1/discovered").status_code == 401
    agents = api.get("/fleet/v1/discovered", headers=auth(hub, "read")).json()["agents"]
    assert [(a["node"], a["source"], a["joined"]) for a in agents] == [
        ("n1", "mdns", True),
        ("n2", "udp", False),
    ]
    # Heard of is not joined: n2 is no node of the hub.
    assert [n.node for n in hub.store.hub_nodes()] == ["n1"]  # type: ignore[attr-defined]
