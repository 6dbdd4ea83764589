"""GPU leases over the hub's API and a real store (both backends): placement by strategy,
filters, fractions, idempotent retries, renew / release / expiry, reclaim when a node goes
unreachable, agent-enforced leases after a hub loses its records, groups' pools and quotas,
pools, and tokens enforced."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.hub_fixtures import Clock, auth
from tests.unit.store_samples import gpu, snap

from gpufleet.api.hub_app import create_hub_app
from gpufleet.fleet.hub import Hub
from gpufleet.model_wire import snapshot_to_wire
from gpufleet.store.base import Store
from gpufleet.store.task_records import TaskRecords


def _uuid(node: str, i: int) -> str:
    return f"GPU-{node}-{i}"


def _inventory(node: str, gpus: int, **over: Any) -> dict[str, Any]:
    busy = over.pop("busy", ())
    util = over.pop("util", {})
    return {
        "gpus": [
            {
                "uuid": _uuid(node, i),
                "index": i,
                "name": over.get("name", "NVIDIA H100 80GB HBM3"),
                "pci_bus_id": f"0000:{i:02x}:00.0",
                "cuda_capability": over.get("cc", "9.0"),
                "mem_total_mib": 81559,
                "mem_used_mib": 30000 if i in busy else 500,
                "util_pct": util.get(i, 0.0),
                "mem_util_pct": 0.0,
                "processes": 1 if i in busy else 0,
            }
            for i in range(gpus)
        ],
        "cpu_cores": 32,
        "mem_total_mib": 256_000,
        "mem_available_mib": 200_000,
    }


class Fleet:
    def __init__(self, api: TestClient, hub: Hub, clock: Clock) -> None:
        self.api, self.hub, self.clock = api, hub, clock
        self.node_auth = auth(hub, "node-join", name="agents")

    def join(self, node: str, gpus: int, *, pool: str | None = None, **inv: Any) -> None:
        body: dict[str, Any] = {"cluster": "c1", "node": node}
        if pool:
            body["pool"] = pool
        assert self.api.post("/fleet/v1/join", json=body, headers=self.node_auth).status_code == 200
        self.beat(node, _inventory(node, gpus, **inv))

    def beat(
        self, node: str, inventory: dict[str, Any], leases: list[Any] | None = None
    ) -> dict[str, Any]:
        s = snap(self.clock.now - 1.0, gpu(_uuid(node, 0), 0.0), node=node)
        batch = {
            "cluster": "c1",
            "node": node,
            "batch_id": f"{node}:{self.clock.now}",
            "snapshots": [snapshot_to_wire(s)],
        }
        assert self.api.post("/fleet/v1/ingest", json=batch, headers=self.node_auth).is_success
        r = self.api.post(
            "/fleet/v1/heartbeat",
            json={"cluster": "c1", "node": node, "inventory": inventory, "leases": leases or []},
            headers=self.node_auth,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
def fleet(api: TestClient, hub: Hub, clock: Clock) -> Fleet:
    return Fleet(api, hub, clock)


def _lease(api: TestClient, auth: dict[str, str], **body: Any) -> Any:
    return api.post("/fleet/v1/leases", json=body, headers=auth)


def test_best_fit_packs_and_the_lease_carries_its_environment(
    fleet: Fleet, api: TestClient, hub: Hub
) -> None:
    fleet.join("n1", 4)
    fleet.join("n2", 2)
    user = auth(hub, "submit", name="alice")
    r = _lease(api, user, gpus=2)
    assert r.status_code == 201, r.text
    first = r.json()
    # best_fit: the node left with the fewest free GPUs, so n1 stays whole for bigger asks.
    assert (first["node"], first["gpus"]) == ("n2", [_uuid("n2", 0), _uuid("n2", 1)])
    assert first["env"]["CUDA_VISIBLE_DEVICES"] == f"{_uuid('n2', 0)},{_uuid('n2', 1)}"
    assert first["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert first["holder"] == "alice"
    assert first["state"] == "active"
    assert _lease(api, user, gpus=4).json()["node"] == "n1"
    full = _lease(api, user, gpus=1)
    assert full.status_code == 409
    assert "no node has 1 free matching GPU" in full.json()["detail"]
    assert "6 held by leases" in full.json()["detail"]
    # Each GPU is counted once, under the first reason it is left out.
    other = _lease(api, user, gpus=1, gpu_model="A100").json()["detail"]
    assert "Of the 6 GPU(s) on those nodes, left out: 6 of another model" in other
    assert "held by leases" not in other


def test_release_renew_expire_and_idempotent_retries(
    fleet: Fleet, api: TestClient, hub: Hub, clock: Clock
) -> None:
    fleet.join("n1", 2)
    user = auth(hub, "submit")
    a = _lease(api, user, gpus=2, request_id="job-7", ttl_s=60)
    again = _lease(api, user, gpus=2, request_id="job-7", ttl_s=60)
    assert (a.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == a.json()["id"]
    lease_id = a.json()["id"]

    clock.now += 50
    fleet.beat("n1", _inventory("n1", 2))
    renewed = api.post(f"/fleet/v1/leases/{lease_id}/renew", json={"ttl_s": 100}, headers=user)
    assert renewed.json()["expires_s"] == pytest.approx(clock.now + 100)
    assert renewed.json()["renewals"] == 1
    clock.now += 101
    fleet.beat("n1", _inventory("n1", 2))
    listed = api.get("/fleet/v1/leases", headers=user).json()["leases"]
    assert [(x["id"], x["state"]) for x in listed] == [(lease_id, "expired")]
    late = api.post(f"/fleet/v1/leases/{lease_id}/renew", json={}, headers=user)
    assert late.status_code == 409
    assert "allocate again" in late.json()["detail"]

    b = _lease(api, user, gpus=2).json()  # the expired lease's GPUs are free again
    released = api.delete(f"/fleet/v1/leases/{b['id']}", headers=user).json()
    assert (released["state"], released["released_now"]) == ("released", True)
    twice = api.delete(f"/fleet/v1/leases/{b['id']}", headers=user).json()
    assert (twice["state"], twice["released_now"]) == ("released", False)
    assert api.delete("/fleet/v1/leases/ls_nope", headers=user).status_code == 404


def test_a_node_gone_unreachable_has_its_leases_reclaimed(
    fleet: Fleet, api: TestClient, hub: Hub, clock: Clock
) -> None:
    fleet.join("n1", 2)
    fleet.join("n2", 2)
    user = auth(hub, "submit")
    on_n2 = _lease(api, user, gpus=2).json()
    assert on_n2["node"] == "n1" or on_n2["node"] == "n2"
    silent = on_n2["node"]
    alive = "n1" if silent == "n2" else "n2"
    clock.now += 31
    fleet.beat(alive, _inventory(alive, 2))
    done = hub.leases.sweep()
    assert done.reclaimed == (on_n2["id"],)
    got = api.get(f"/fleet/v1/leases/{on_n2['id']}", headers=user).json()
    assert got["state"] == "reclaimed"
    assert "unreachable" in got["end_reason"]
    # New leases go to the node that answers.
    assert _lease(api, user, gpus=2).json()["node"] == alive
    nothing = _lease(api, user, gpus=1)
    assert nothing.status_code == 409
    assert "1 unreachable" in nothing.json()["detail"]


def test_filters_models_and_busy_gpus(fleet: Fleet, api: TestClient, hub: Hub) -> None:
    fleet.join("n1", 4, busy=(0, 1), util={2: 80.0})
    fleet.join("a1", 2, name="NVIDIA A100-SXM4-40GB", cc="8.0")
    user = auth(hub, "submit")
    # GPUs 0 and 1 of n1 run processes the hub did not hand out: not given out.
    r = _lease(api, user, gpus=3, gpu_model="H100")
    assert r.status_code == 409
    assert "2 busy with processes the hub did not hand out" in r.json()["detail"]
    assert "2 of another model" in r.json()["detail"]
    low_util = _lease(api, user, gpus=1, gpu_model="h100", max_gpu_utilization=50).json()
    assert low_util["gpus"] == [_uuid("n1", 3)]
    assert _lease(api, user, gpus=1, min_compute_capability="9.0").json()["gpus"] == [
        _uuid("n1", 2)
    ]
    busy_ok = _lease(api, user, gpus=2, gpu_model=["H100"], include_busy=True).json()
    assert busy_ok["gpus"] == [_uuid("n1", 0), _uuid("n1", 1)]
    a100 = _lease(api, user, gpus=1, min_compute_capability="8.0", gpu_memory_mib=40000)
    assert a100.json()["node"] == "a1"
    bad = _lease(api, user, gpus=1, min_compute_capability="eight")
    assert bad.status_code == 422
    assert "min_compute_capability" in bad.json()["detail"]
    assert _lease(api, user, gpus=-1).status_code == 422
    assert "unknown field" in _lease(api, user, gpu=1).json()["detail"]
    assert _lease(api, user, gpus=2, gpu_fraction=0.5).status_code == 422


def test_fractions_share_a_gpu_by_budget(fleet: Fleet, api: TestClient, hub: Hub) -> None:
    fleet.join("n1", 2)
    user = auth(hub, "submit")
    a = _lease(api, user, gpu_fraction=0.5, gpu_memory_mib=30000).json()
    b = _lease(api, user, gpu_fraction=0.5, gpu_memory_mib=30000).json()
    assert a["gpus"] == b["gpus"]  # packed onto one GPU, the other stays whole
    assert a["env"]["GPUFLEET_GPU_MEMORY_BUDGET_MIB"] == "30000"
    assert a["gpu_fraction"] == 0.5
    whole = _lease(api, user, gpus=1).json()
    assert whole["gpus"] != a["gpus"]
    # 60000 of 81559 MiB budgeted on the shared GPU: a 30000 MiB budget no longer fits.
    r = _lease(api, user, gpu_fraction=0.25, gpu_memory_mib=30000)
    assert r.status_code == 409


def test_agents_keep_leases_a_hub_has_no_record_of(fleet: Fleet, api: TestClient, hub: Hub) -> None:
    fleet.join("n1", 2)
    user = auth(hub, "submit")
    mine = _lease(api, user, gpus=1).json()
    answer = fleet.beat(
        "n1",
        _inventory("n1", 2),
        leases=[
            {"id": mine["id"], "gpus": mine["gpus"], "expires_s": mine["expires_s"]},
            {"id": "ls_from_an_older_hub", "gpus": [_uuid("n1", 1)], "expires_s": 1e12},
        ],
    )
    assert [x["id"] for x in answer["leases"]] == [mine["id"]]
    assert answer["ended_leases"] == []
    # Both GPUs are held: one by the hub's lease, one by the lease only the agent knows.
    assert _lease(api, user, gpus=1).status_code == 409
    api.delete(f"/fleet/v1/leases/{mine['id']}", headers=user)
    answer = fleet.beat(
        "n1",
        _inventory("n1", 2),
        leases=[{"id": mine["id"], "gpus": mine["gpus"], "expires_s": mine["expires_s"]}],
    )
    assert answer["ended_leases"] == [mine["id"]]


def test_a_hub_restart_keeps_its_leases(fleet: Fleet, store: Store, clock: Clock) -> None:
    fleet.join("n1", 2)
    user = auth(fleet.hub, "submit")
    lease = _lease(fleet.api, user, gpus=2).json()
    assert isinstance(store, TaskRecords)
    restarted = TestClient(create_hub_app(Hub(store, clock=clock)))
    assert restarted.get(f"/fleet/v1/leases/{lease['id']}", headers=user).json()["state"] == (
        "active"
    )
    assert _lease(restarted, user, gpus=1).status_code == 409


def test_a_hub_down_longer_than_the_timeout_does_not_reclaim_on_restart(
    fleet: Fleet, store: Store, clock: Clock
) -> None:
    fleet.join("n1", 2)
    user = auth(fleet.hub, "submit")
    lease = _lease(fleet.api, user, gpus=1).json()
    clock.now += 120  # the hub was down two minutes; the node could not reach it
    assert isinstance(store, TaskRecords)
    restarted = Hub(store, clock=clock)
    assert restarted.leases.sweep().reclaimed == ()
    (view,) = restarted.nodes()
    assert view.status != "unreachable"
    clock.now += 31  # still silent a whole timeout after the restart: now it is
    assert restarted.leases.sweep().reclaimed == (lease["id"],)


def test_groups_decide_pools_and_quotas(fleet: Fleet, api: TestClient, hub: Hub) -> None:
    fleet.join("n1", 4, pool="train")
    fleet.join("n2", 4, pool="infer")
    admin = auth(hub, "admin", name="ops")
    text, record = hub.create_token("bob", ["submit"])
    bob = {"Authorization": f"Bearer {text}"}
    r = api.post(
        "/fleet/v1/groups",
        json={"name": "ml", "max_members": 1, "pools": ["train"], "max_gpus": 3},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    joined = api.post("/fleet/v1/groups/ml/members", json={"token_id": record.id}, headers=admin)
    assert joined.json()["members"] == [record.id]
    _, other = hub.create_token("carol", ["submit"])
    full = api.post("/fleet/v1/groups/ml/members", json={"token_id": other.id}, headers=admin)
    assert full.status_code == 409
    assert "is full" in full.json()["detail"]
    # A member cannot put itself in another group.
    assert (
        api.post("/fleet/v1/groups/ml/members", json={"token_id": "x"}, headers=bob).status_code
        == 403
    )

    denied = _lease(api, bob, gpus=1, pool="infer")
    assert denied.status_code == 403
    assert "pool infer" in denied.json()["detail"]
    first = _lease(api, bob, gpus=2).json()
    assert (first["pool"], first["group"]) == ("train", "ml")
    over = _lease(api, bob, gpus=2)
    assert over.status_code == 409
    assert "ml: 2 of 3" in over.json()["detail"]
    assert _lease(api, bob, gpus=1).status_code == 201
    groups = api.get("/fleet/v1/groups", headers=bob).json()["groups"]
    assert groups[0]["gpus_in_use"] == 3.0
    # Leaving by itself: then the token allocates anywhere again (no group limits it).
    left = api.delete(f"/fleet/v1/groups/ml/members/{record.id}", headers=bob)
    assert left.json()["members"] == []
    assert _lease(api, bob, gpus=1, pool="infer").status_code == 201


def test_pools_are_listed_and_set_by_admins(fleet: Fleet, api: TestClient, hub: Hub) -> None:
    fleet.join("n1", 2)
    fleet.join("n2", 2, pool="infer")
    admin = auth(hub, "admin")
    r = api.put(
        "/fleet/v1/pools/train",
        json={"description": "training boxes", "nodes": ["c1/n1"]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["nodes"] == ["c1/n1"]
    assert r.json()["gpus"] == 2
    pools = api.get("/fleet/v1/pools", headers=admin).json()["pools"]
    assert [(p["name"], p["created"], p["nodes"]) for p in pools] == [
        ("infer", False, ["c1/n2"]),
        ("train", True, ["c1/n1"]),
    ]
    # The agent joining again without --pool keeps what the operator set.
    fleet.join("n1", 2)
    assert hub.store.hub_node("c1", "n1").pool == "train"  # type: ignore[union-attr]
    assert api.put("/fleet/v1/pools/x", json={"nodes": ["c1/zz"]}, headers=admin).status_code == 404
    assert api.put("/fleet/v1/pools/x", json={"size": 3}, headers=admin).status_code == 422
    user = auth(hub, "submit")
    assert _lease(api, user, gpus=2, pool="train").json()["node"] == "n1"


LEASE_CALLS = [
    ("post", "/fleet/v1/leases", {"gpus": 1}),
    ("post", "/fleet/v1/leases/ls_x/renew", {}),
    ("delete", "/fleet/v1/leases/ls_x", None),
    ("post", "/fleet/v1/groups", {"name": "g"}),
    ("patch", "/fleet/v1/groups/g", {"max_gpus": 1}),
    ("delete", "/fleet/v1/groups/g", None),
    ("post", "/fleet/v1/groups/g/members", {"token_id": "x"}),
    ("put", "/fleet/v1/pools/p", {}),
    ("delete", "/fleet/v1/pools/p", None),
]


@pytest.mark.parametrize(("method", "path", "body"), LEASE_CALLS)
def test_allocation_calls_need_the_right_token(
    fleet: Fleet, api: TestClient, hub: Hub, store: Store, method: str, path: str, body: Any
) -> None:
    fleet.join("n1", 2)
    assert isinstance(store, TaskRecords)
    before = (store.leases(), store.groups(), store.pools())
    for headers, status in (({}, 401), (auth(hub, "read"), 403)):
        r = api.request(method, path, json=body, headers=headers)
        assert r.status_code == status, (path, r.text)
        assert r.json()["detail"]
    assert (store.leases(), store.groups(), store.pools()) == before


def test_only_the_holder_or_an_admin_ends_a_lease(fleet: Fleet, api: TestClient, hub: Hub) -> None:
    fleet.join("n1", 2)
    alice, bob = auth(hub, "submit", name="alice"), auth(hub, "submit", name="bob")
    lease = _lease(api, alice, gpus=1).json()
    r = api.delete(f"/fleet/v1/leases/{lease['id']}", headers=bob)
    assert r.status_code == 403
    assert api.get(f"/fleet/v1/leases/{lease['id']}", headers=bob).json()["state"] == "active"
    admin = auth(hub, "admin")
    assert api.delete(f"/fleet/v1/leases/{lease['id']}", headers=admin).json()["released_now"]


def test_only_nodes_serving_a_model(fleet: Fleet, api: TestClient, hub: Hub) -> None:
    fleet.join("n1", 2)
    fleet.join("n2", 2)
    with_model = _inventory("n2", 2)
    with_model["models"] = [{"name": "llama3", "url": "http://n2:11434", "api": "ollama"}]
    fleet.beat("n2", with_model)
    user = auth(hub, "submit")
    lease = _lease(api, user, gpus=1, serves_model="llama3").json()
    assert lease["node"] == "n2"
    missing = _lease(api, user, gpus=1, serves_model="qwen")
    assert missing.status_code == 409
    assert "serves model 'qwen'" in missing.json()["detail"]
