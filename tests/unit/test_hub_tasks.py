"""The hub's task queue over its API and a real store (both backends): only opt-in nodes get
parts, priority with aging, the starvation guard, split tasks and their aggregated result,
agents' reports, cancel, quotas, a lost node's parts placed elsewhere, and a real agent-side
runner executing a command with the lease's environment."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.hub_fixtures import Clock, auth
from tests.unit.store_samples import gpu, snap

from gpufleet.agent.hub_push import HubPusher
from gpufleet.agent.hub_spool import HubSpool
from gpufleet.agent.lease_ledger import LeaseLedger
from gpufleet.agent.task_runner import TaskRunner
from gpufleet.api.hub_app import create_hub_app
from gpufleet.fleet.hub import Hub
from gpufleet.fleet.inventory import inventory_of
from gpufleet.fleet.scaleout import EngineStatus
from gpufleet.model_wire import snapshot_to_wire
from gpufleet.store.base import Store
from gpufleet.store.task_records import TaskRecords


class Agents:
    """Nodes that beat by hand (what a real agent sends), two GPUs each."""

    def __init__(self, api: TestClient, hub: Hub, clock: Clock) -> None:
        self.api, self.hub, self.clock = api, hub, clock
        self.auth = auth(hub, "node-join", name="agents")
        self.running: dict[str, list[str]] = {}

    def join(self, node: str, *, runs_tasks: bool = True) -> dict[str, Any]:
        self.api.post("/fleet/v1/join", json={"cluster": "c1", "node": node}, headers=self.auth)
        self.running[node] = []
        return self.beat(node, runs_tasks=runs_tasks)

    def beat(self, node: str, *, runs_tasks: bool = True) -> dict[str, Any]:
        s = snap(self.clock.now - 1, gpu(f"GPU-{node}-0", 0.0), node=node)
        self.api.post(
            "/fleet/v1/ingest",
            json={
                "cluster": "c1",
                "node": node,
                "batch_id": f"{node}:{self.clock.now}",
                "snapshots": [snapshot_to_wire(s)],
            },
            headers=self.auth,
        )
        inv = {
            "gpus": [
                {"uuid": f"GPU-{node}-{i}", "index": i, "name": "H100", "mem_total_mib": 81559}
                for i in range(2)
            ]
        }
        r = self.api.post(
            "/fleet/v1/heartbeat",
            json={
                "cluster": "c1",
                "node": node,
                "inventory": inv,
                "health_check": {"runs_tasks": runs_tasks},
                "running_tasks": self.running[node],
            },
            headers=self.auth,
        )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def report(self, task_id: str, part: int, node: str, state: str, **extra: Any) -> Any:
        return self.api.post(
            f"/fleet/v1/tasks/{task_id}/parts/{part}/report",
            json={"cluster": "c1", "node": node, "state": state, **extra},
            headers=self.auth,
        )


@pytest.fixture
def agents(api: TestClient, hub: Hub, clock: Clock) -> Agents:
    return Agents(api, hub, clock)


def _submit(api: TestClient, auth: dict[str, str], **body: Any) -> Any:
    body.setdefault("command", ["python", "-c", "print(1)"])
    return api.post("/fleet/v1/tasks", json=body, headers=auth)


def test_a_task_runs_on_an_opt_in_node_and_reports(
    agents: Agents, api: TestClient, hub: Hub
) -> None:
    agents.join("quiet", runs_tasks=False)
    agents.join("worker")
    user = auth(hub, "submit", name="alice")
    r = _submit(api, user, gpus=2, name="train", env={"EPOCHS": "3"})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["state"] == "placed"
    assert task["parts"][0]["node"] == "c1/worker"  # the node without --run-tasks gets none
    work = agents.beat("worker")
    (start,) = work["tasks"]
    assert start["command"] == ["python", "-c", "print(1)"]
    assert start["env"]["CUDA_VISIBLE_DEVICES"] == "GPU-worker-0,GPU-worker-1"
    assert start["env"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert start["env"]["EPOCHS"] == "3"
    assert start["env"]["GPUFLEET_TASK_PARTS"] == "1"
    assert start["lease_id"] in {x["id"] for x in work["leases"]}
    assert agents.report(task["id"], 0, "worker", "running").json() == {"state": "running"}
    done = agents.report(task["id"], 0, "worker", "succeeded", exit_code=0, output="1\n")
    assert done.json() == {"state": "succeeded"}
    got = api.get(f"/fleet/v1/tasks/{task['id']}", headers=user).json()
    assert got["state"] == "succeeded"
    assert got["exit_codes"] == [0]
    assert got["parts"][0]["output"] == "1\n"
    lease = api.get(f"/fleet/v1/leases/{start['lease_id']}", headers=user).json()
    assert lease["state"] == "released"
    # Another node cannot report on it; a finished part takes no report.
    assert agents.report(task["id"], 0, "quiet", "failed").status_code == 409
    assert agents.report(task["id"], 0, "worker", "failed").status_code == 409


def test_priority_aging_and_the_starvation_guard(
    agents: Agents, api: TestClient, hub: Hub, clock: Clock
) -> None:
    agents.join("w1")
    user = auth(hub, "submit")
    big = _submit(api, user, gpus=2, priority=0).json()  # takes both GPUs
    low = _submit(api, user, gpus=1, priority=0).json()
    high = _submit(api, user, gpus=1, priority=5).json()
    assert (low["state"], high["state"]) == ("queued", "queued")
    agents.report(big["id"], 0, "w1", "succeeded", exit_code=0)
    hub.tasks.schedule()
    states = {t["id"]: t["state"] for t in api.get("/fleet/v1/tasks", headers=user).json()["tasks"]}
    assert states[high["id"]] == "placed"  # higher priority first
    assert states[low["id"]] == "placed"  # and the other GPU backfills
    # Aging: a task waiting 200 s at priority 0 (0 + 200/60) goes before a new one at 3.
    for t in (low, high):
        part = api.get(f"/fleet/v1/tasks/{t['id']}", headers=user).json()["parts"][0]
        agents.report(t["id"], 0, part["node"].split("/")[1], "succeeded", exit_code=0)
    blocker = _submit(api, user, gpus=2).json()
    old = _submit(api, user, gpus=2, priority=0).json()
    clock.now += 200
    agents.beat("w1")
    new = _submit(api, user, gpus=2, priority=3).json()
    agents.report(blocker["id"], 0, "w1", "succeeded", exit_code=0)
    assert api.get(f"/fleet/v1/tasks/{old['id']}", headers=user).json()["state"] == "placed"
    assert api.get(f"/fleet/v1/tasks/{new['id']}", headers=user).json()["state"] == "queued"


def test_a_starving_task_is_not_passed_over(
    agents: Agents, api: TestClient, hub: Hub, clock: Clock
) -> None:
    agents.join("w1")
    user = auth(hub, "submit")
    one = _submit(api, user, gpus=1).json()
    wide = _submit(api, user, gpus=2).json()  # waits for both GPUs
    clock.now += 301
    agents.beat("w1")
    small = _submit(api, user, gpus=1).json()
    assert small["state"] == "queued"  # would fit, but the starving wide task goes first
    agents.report(one["id"], 0, "w1", "succeeded", exit_code=0)
    hub.tasks.schedule()
    assert api.get(f"/fleet/v1/tasks/{wide['id']}", headers=user).json()["state"] == "placed"


def test_a_split_task_aggregates_its_parts(agents: Agents, api: TestClient, hub: Hub) -> None:
    for n in ("w1", "w2", "w3"):
        agents.join(n)
    user = auth(hub, "submit")
    task = _submit(api, user, gpus=1, parts=3).json()
    nodes = [p["node"] for p in task["parts"]]
    assert sorted(nodes) == ["c1/w1", "c1/w2", "c1/w3"]  # one part per node
    for i, node in enumerate(nodes):
        code = 0 if i < 2 else 3
        state = "succeeded" if code == 0 else "failed"
        agents.report(task["id"], i, node.split("/")[1], state, exit_code=code, output=f"p{i}")
    got = api.get(f"/fleet/v1/tasks/{task['id']}", headers=user).json()
    assert got["state"] == "failed"
    assert got["exit_codes"] == [0, 0, 3]
    assert got["succeeded_parts"] == 2
    assert [p["output"] for p in got["parts"]] == ["p0", "p1", "p2"]


def test_a_lost_node_s_parts_are_placed_elsewhere(
    agents: Agents, api: TestClient, hub: Hub, clock: Clock
) -> None:
    agents.join("w1")
    user = auth(hub, "submit")
    task = _submit(api, user, gpus=2).json()
    first = task["parts"][0]["node"]
    assert first == "c1/w1"
    agents.report(task["id"], 0, "w1", "running")
    agents.join("w2")
    clock.now += 31  # w1 falls silent
    agents.beat("w2")
    hub.leases.sweep()
    hub.tasks.schedule()
    got = api.get(f"/fleet/v1/tasks/{task['id']}", headers=user).json()
    part = got["parts"][0]
    assert part["node"] == "c1/w2"
    assert part["attempts"] == 2
    assert "w1 was lost" in part["error"]
    # w1 comes back and still thinks it runs the part: it is told to stop it.
    agents.running["w1"] = [f"{task['id']}:0"]
    assert agents.beat("w1")["cancel"] == [f"{task['id']}:0"]
    assert agents.report(task["id"], 0, "w1", "failed").status_code == 409


def test_cancel_quotas_and_bad_tasks(agents: Agents, api: TestClient, hub: Hub) -> None:
    agents.join("w1")
    admin = auth(hub, "admin")
    text, record = hub.create_token("bob", ["submit"])
    bob = {"Authorization": f"Bearer {text}"}
    api.post("/fleet/v1/groups", json={"name": "ml", "max_queued": 1}, headers=admin)
    api.post("/fleet/v1/groups/ml/members", json={"token_id": record.id}, headers=admin)
    running = _submit(api, bob, gpus=2).json()
    assert running["group"] == "ml"
    waiting = _submit(api, bob, gpus=2).json()
    assert waiting["state"] == "queued"
    over = _submit(api, bob, gpus=1)
    assert over.status_code == 409
    assert "max_queued" in over.json()["detail"]
    other = auth(hub, "submit", name="eve")
    assert api.post(f"/fleet/v1/tasks/{running['id']}/cancel", headers=other).status_code == 403
    cancelled = api.post(f"/fleet/v1/tasks/{running['id']}/cancel", headers=bob).json()
    assert cancelled["state"] == "cancelled"
    agents.running["w1"] = [f"{running['id']}:0"]
    work = agents.beat("w1")
    assert work["cancel"] == [f"{running['id']}:0"]
    # Its GPUs went to the waiting task.
    assert api.get(f"/fleet/v1/tasks/{waiting['id']}", headers=bob).json()["state"] == "placed"
    for body, needle in (
        ({"command": []}, "command must be"),
        ({"command": "ls"}, "command must be"),
        ({"command": ["ls"], "parts": 0}, "parts must be"),
        ({"command": ["ls"], "env": {"CUDA_VISIBLE_DEVICES": "0"}}, "the lease sets them"),
        ({"command": ["ls"], "gpus": "two"}, "gpus must be"),
        ({"command": ["ls"], "colour": "red"}, "unknown field"),
    ):
        r = api.post("/fleet/v1/tasks", json=body, headers=bob)
        assert r.status_code == 422, (body, r.text)
        assert needle in r.json()["detail"]
    assert api.post("/fleet/v1/tasks", json={"command": ["ls"]}).status_code == 401
    read = auth(hub, "read")
    assert api.post("/fleet/v1/tasks", json={"command": ["ls"]}, headers=read).status_code == 403
    assert (
        api.post(f"/fleet/v1/tasks/{waiting['id']}/parts/0/report", json={}, headers=bob)
    ).status_code == 403


def test_tasks_that_can_never_start_are_refused_and_waiting_ones_say_why(
    agents: Agents, api: TestClient, hub: Hub
) -> None:
    agents.join("w1")
    admin = auth(hub, "admin")
    text, record = hub.create_token("carol", ["submit"])
    carol = {"Authorization": f"Bearer {text}"}
    assert api.put("/fleet/v1/pools/train", json={"nodes": ["c1/w1"]}, headers=admin).is_success
    api.put("/fleet/v1/pools/infer", json={}, headers=admin)
    unknown = api.post("/fleet/v1/groups", json={"name": "x", "pools": ["trian"]}, headers=admin)
    assert unknown.status_code == 404
    assert "no pool trian; pools: infer, train" in unknown.json()["detail"]
    group = {"name": "ml", "pools": ["train"], "max_gpus": 2, "max_queued": 5}
    assert api.post("/fleet/v1/groups", json=group, headers=admin).status_code == 201
    api.post("/fleet/v1/groups/ml/members", json={"token_id": record.id}, headers=admin)
    before = len(hub.store.tasks())  # type: ignore[attr-defined]
    for body, status, needle in (
        ({"pool": "trian"}, 404, "no pool 'trian'; pools: infer, train"),
        ({"pool": "infer"}, 403, "may not allocate from pool infer"),
        ({"gpus": 3}, 422, "more than the token's groups may ever hold"),
    ):
        r = _submit(api, carol, **body)
        assert r.status_code == status, (body, r.text)
        assert needle in r.json()["detail"]
    assert len(hub.store.tasks()) == before  # type: ignore[attr-defined]  # nothing queued
    # One that can start later waits, and says why.
    first = _submit(api, carol, gpus=2).json()
    assert first["state"] == "placed"
    second = _submit(api, carol, gpus=2).json()
    assert second["state"] == "queued"
    assert "waiting: the token's groups have no GPUs left" in second["parts"][0]["error"]
    api.post(f"/fleet/v1/tasks/{first['id']}/cancel", headers=carol)
    hub.tasks.schedule()
    placed = api.get(f"/fleet/v1/tasks/{second['id']}", headers=carol).json()
    assert placed["state"] == "placed"
    assert placed["parts"][0]["error"] is None  # placing it ended the wait


class HeldJobs:
    """An engine that keeps its jobs in memory (the Engine protocol; the Ray one is tested
    against a real Ray head in test_scaleout_ray)."""

    name, where = "held", "memory"

    def __init__(self) -> None:
        self.jobs: dict[str, EngineStatus] = {}

    def submit(self, job_id: str, command: Any, **_: Any) -> str:
        self.jobs[job_id] = EngineStatus("running")
        return job_id

    def status(self, engine_id: str) -> EngineStatus:
        return self.jobs[engine_id]

    def logs(self, engine_id: str) -> str:
        return ""

    def stop(self, engine_id: str) -> None:
        self.jobs[engine_id] = EngineStatus("cancelled")


def test_engine_jobs_count_against_a_group_s_max_gpus(store: Store, clock: Clock) -> None:
    assert isinstance(store, TaskRecords)
    engine = HeldJobs()
    hub = Hub(store, clock=clock, engines={"held": engine})
    api = TestClient(create_hub_app(hub))
    Agents(api, hub, clock).join("w1")
    admin = auth(hub, "admin")
    text, record = hub.create_token("dan", ["submit"])
    dan = {"Authorization": f"Bearer {text}"}
    api.post("/fleet/v1/groups", json={"name": "ml", "max_gpus": 2}, headers=admin)
    api.post("/fleet/v1/groups/ml/members", json={"token_id": record.id}, headers=admin)
    far = _submit(api, dan, gpus=2, engine="held").json()
    assert far["parts"][0]["state"] == "placed"
    groups = api.get("/fleet/v1/groups", headers=admin).json()["groups"]
    assert groups[0]["gpus_in_use"] == 2.0
    # The group's quota is used by the engine's job: neither a lease nor another job fits.
    lease = api.post("/fleet/v1/leases", json={"gpus": 1}, headers=dan)
    assert lease.status_code == 409
    assert "ml: 2 of 2" in lease.json()["detail"]
    second = _submit(api, dan, gpus=1, engine="held").json()
    assert second["state"] == "queued"
    assert "group ml holds 2 of its max_gpus 2" in second["parts"][0]["error"]
    assert len(engine.jobs) == 1
    engine.jobs[far["parts"][0]["engine_id"]] = EngineStatus("succeeded", exit_code=0)
    hub.tasks.schedule()
    assert api.get(f"/fleet/v1/tasks/{far['id']}", headers=dan).json()["state"] == "succeeded"
    hub.tasks.schedule()
    assert api.get(f"/fleet/v1/tasks/{second['id']}", headers=dan).json()["state"] in (
        "placed",
        "running",
    )


def test_the_agent_runs_a_part_with_its_lease_environment(tmp_path: Path, store: Store) -> None:
    assert isinstance(store, TaskRecords)
    hub = Hub(store)
    join, _ = hub.create_token("agents", ["node-join"])
    user = auth(hub, "submit")
    client = TestClient(create_hub_app(hub))

    def health() -> dict[str, Any]:
        s = snap(time.time(), gpu("GPU-a", 0.0), gpu("GPU-b", 0.0, index=1))
        return {"inventory": inventory_of(s)}

    spool = HubSpool(str(tmp_path / "spool.db"))
    spool.append(snap(time.time(), gpu("GPU-a", 0.0), gpu("GPU-b", 0.0, index=1)))
    pusher = HubPusher(
        "http://testserver",
        join,
        spool,
        {"cluster": "c1", "node": "n1"},
        health=health,
        client=client,
        ledger=LeaseLedger(tmp_path / "leases.json"),
        tasks=TaskRunner(tmp_path / "tasks"),
    )
    assert pusher.push_once()
    script = (
        "import os, sys; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['CUDA_DEVICE_ORDER'],"
        " os.getcwd().endswith('-0')); sys.exit(4)"
    )
    task = client.post(
        "/fleet/v1/tasks", json={"command": [sys.executable, "-c", script], "gpus": 1}, headers=user
    ).json()
    assert task["state"] == "placed"
    deadline = time.monotonic() + 30
    got: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert pusher.push_once()
        got = client.get(f"/fleet/v1/tasks/{task['id']}", headers=user).json()
        if got["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.1)
    assert got["state"] == "failed"
    assert got["exit_codes"] == [4]
    assert got["parts"][0]["output"] == "GPU-a PCI_BUS_ID True\n"

    # A command that cannot start fails with 127 and the reason.
    missing = client.post(
        "/fleet/v1/tasks", json={"command": ["/no/such/program"], "gpus": 1}, headers=user
    ).json()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert pusher.push_once()
        got = client.get(f"/fleet/v1/tasks/{missing['id']}", headers=user).json()
        if got["state"] == "failed":
            break
        time.sleep(0.1)
    assert got["exit_codes"] == [127]
    assert "cannot start '/no/such/program'" in got["parts"][0]["error"]
