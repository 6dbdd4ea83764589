"""The agent's side of leases: the on-disk ledger, and a pusher that reports its inventory
and leases to a real hub app and keeps what the hub answers, so a hub that lost its
records still never hands a leased GPU out twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from tests.unit.store_samples import T0, gpu, proc, snap

from gpufleet.agent.hub_push import HubPusher
from gpufleet.agent.hub_spool import HubSpool
from gpufleet.agent.lease_ledger import LeaseLedger
from gpufleet.api.hub_app import create_hub_app
from gpufleet.fleet.hub import Hub
from gpufleet.fleet.inventory import inventory_of
from gpufleet.store import open_store
from gpufleet.store.task_records import TaskRecords


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_the_ledger_keeps_unknown_leases_until_their_expiry(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "leases.json"
    ledger = LeaseLedger(path, clock=clock)
    ledger.update([{"id": "a", "gpus": ["GPU-1"], "expires_s": T0 + 100}], [])
    ledger.update([], [])  # the hub no longer lists it (it lost its records): kept
    assert [x["id"] for x in ledger.current()] == ["a"]
    assert ledger.gpus_leased() == {"GPU-1": "a"}
    reopened = LeaseLedger(path, clock=clock)
    assert [x["id"] for x in reopened.current()] == ["a"]
    reopened.update([], ["a"])  # the hub says it ended
    assert reopened.current() == []
    reopened.update([{"id": "b", "gpus": ["GPU-2"], "expires_s": T0 + 10}], [])
    clock.now += 11
    assert reopened.current() == []  # past its own expiry


def test_inventory_of_a_snapshot() -> None:
    s = snap(
        T0,
        gpu("GPU-a", 40.0, mem_used=2 * 1024**3, procs=[proc(7, "x")]),
        gpu("GPU-b", 0.0, index=1),
    )
    inv = inventory_of(s)
    assert [(g["uuid"], g["index"], g["processes"]) for g in inv["gpus"]] == [
        ("GPU-a", 0, 1),
        ("GPU-b", 1, 0),
    ]
    assert inv["gpus"][0]["mem_used_mib"] == 2048
    assert inventory_of(None) == {"gpus": []}


def _pusher(client: TestClient, token: str, tmp: Path, clock: Clock) -> HubPusher:
    def health() -> dict[str, Any]:
        s = snap(clock.now, gpu("GPU-a", 0.0), gpu("GPU-b", 0.0, index=1))
        return {"inventory": inventory_of(s)}

    spool = HubSpool(str(tmp / "spool.db"))
    spool.append(snap(clock.now, gpu("GPU-a", 0.0), gpu("GPU-b", 0.0, index=1)))
    return HubPusher(
        "http://testserver",
        token,
        spool,
        {"cluster": "c1", "node": "n1"},
        health=health,
        client=client,
        ledger=LeaseLedger(tmp / "leases.json", clock=clock),
    )


def test_a_hub_that_lost_its_records_respects_the_agents_leases(tmp_path: Path) -> None:
    clock = Clock()
    first = open_store(str(tmp_path / "hub1.db"))
    assert isinstance(first, TaskRecords)
    hub = Hub(first, clock=clock)
    join, _ = hub.create_token("agents", ["node-join"])
    user, _ = hub.create_token("alice", ["submit"])
    client = TestClient(create_hub_app(hub))
    pusher = _pusher(client, join, tmp_path, clock)
    assert pusher.push_once()
    r = client.post(
        "/fleet/v1/leases", json={"gpus": 1}, headers={"Authorization": f"Bearer {user}"}
    )
    assert r.status_code == 201, r.text
    leased = r.json()["gpus"]
    assert pusher.push_once()
    assert pusher.ledger is not None
    assert pusher.ledger.gpus_leased() == {leased[0]: r.json()["id"]}

    # A new hub over an empty database (a restore gone wrong): the agent joins again and
    # reports its lease; the hub does not hand that GPU out.
    second = open_store(str(tmp_path / "hub2.db"))
    assert isinstance(second, TaskRecords)
    hub2 = Hub(second, clock=clock)
    hub2.store.save_token(hub.store.token(join.split("_")[1]))  # type: ignore[arg-type]
    hub2.store.save_token(hub.store.token(user.split("_")[1]))  # type: ignore[arg-type]
    client2 = TestClient(create_hub_app(hub2))
    pusher._client = client2
    pusher.spool.append(snap(clock.now, gpu("GPU-a", 0.0), gpu("GPU-b", 0.0, index=1)))
    assert not pusher.push_once()  # 404: the hub does not know the node; joins next round
    assert pusher.push_once()
    headers = {"Authorization": f"Bearer {user}"}
    other = client2.post("/fleet/v1/leases", json={"gpus": 1}, headers=headers)
    assert other.status_code == 201, other.text
    assert other.json()["gpus"] != leased
    assert client2.post("/fleet/v1/leases", json={"gpus": 1}, headers=headers).status_code == 409
    first.close()
    second.close()
