"""``gpufleet allocate gpus | leases | renew | release``, ``submit`` / ``tasks`` and
``gpufleet hub group | pool``
against a hub served over real HTTP (uvicorn in a thread, SQLite store)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from tests.unit.store_samples import gpu, snap
from typer.testing import CliRunner

from gpufleet.agent.hub_push import HubPusher
from gpufleet.agent.hub_spool import HubSpool
from gpufleet.agent.lease_ledger import LeaseLedger
from gpufleet.agent.task_runner import TaskRunner
from gpufleet.api.hub_app import create_hub_app
from gpufleet.cli.main import app
from gpufleet.fleet.hub import Hub
from gpufleet.fleet.inventory import inventory_of
from gpufleet.model_wire import snapshot_to_wire
from gpufleet.store import open_store
from gpufleet.store.task_records import TaskRecords

runner = CliRunner()


class LiveHub:
    def __init__(self, tmp: Path) -> None:
        store = open_store(str(tmp / "hub.db"))
        assert isinstance(store, TaskRecords)
        self.hub = Hub(store)
        self.admin, _ = self.hub.create_token("ops", ["admin"])
        self.user, self.user_record = self.hub.create_token("alice", ["submit"])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(create_hub_app(self.hub), port=port, log_level="error")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the hub did not start"
            time.sleep(0.05)
        self._node()

    def _node(self) -> None:
        join, _ = self.hub.create_token("agents", ["node-join"])
        from gpufleet.store.hub_records import TokenRecord

        record: TokenRecord = self.hub.authorize(f"Bearer {join}", "node-join")
        self.hub.join({"cluster": "lab", "node": "n1"}, record)
        now = time.time()
        s = snap(now, gpu("GPU-a", 0.0), gpu("GPU-b", 0.0, index=1), node="n1", cluster="lab")
        self.hub.ingest(
            {"cluster": "lab", "node": "n1", "batch_id": "b1", "snapshots": [snapshot_to_wire(s)]}
        )
        inventory = {
            "gpus": [
                {"uuid": u, "index": i, "name": "H100", "mem_total_mib": 81559, "mem_used_mib": 0}
                for i, u in enumerate(("GPU-a", "GPU-b"))
            ]
        }
        self.hub.heartbeat({"cluster": "lab", "node": "n1", "inventory": inventory})

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.hub.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveHub]:
    h = LiveHub(tmp_path)
    try:
        yield h
    finally:
        h.close()


def _run(live: LiveHub, *args: str, token: str | None = None) -> Any:
    opts = ["--url", live.url, "--token", token or live.user]
    if "--" in args:
        cut = args.index("--")
        return runner.invoke(app, [*args[:cut], *opts, *args[cut:]])
    return runner.invoke(app, [*args, *opts])


def test_allocate_list_renew_and_release(live: LiveHub) -> None:
    r = _run(live, "allocate", "gpus", "--gpus", "1", "--env")
    assert r.exit_code == 0, r.output
    assert "export CUDA_VISIBLE_DEVICES=GPU-a" in r.output
    assert "export CUDA_DEVICE_ORDER=PCI_BUS_ID" in r.output
    lease_id = next(
        line.split("=")[1] for line in r.output.splitlines() if "GPUFLEET_LEASE_ID" in line
    )
    listed = _run(live, "allocate", "leases")
    assert lease_id in listed.output
    assert _run(live, "allocate", "renew", lease_id, "--ttl", "600").exit_code == 0
    too_many = _run(live, "allocate", "gpus", "--gpus", "2")
    assert too_many.exit_code == 1  # nothing fits now: 1, as its help says
    assert "409" in too_many.output
    assert "the most on one node is 1" in too_many.output
    done = _run(live, "allocate", "release", lease_id)
    assert f"released {lease_id}" in done.output
    again = _run(live, "allocate", "release", lease_id)
    assert "had ended already (released)" in again.output
    bad = _run(live, "allocate", "gpus", "--gpus", "1", "--label", "rack")
    assert bad.exit_code != 0
    assert "key=value" in bad.output


def test_without_a_token_the_cli_says_so(live: LiveHub) -> None:
    r = runner.invoke(app, ["allocate", "gpus", "--url", live.url], env={"GPUFLEET_HUB_TOKEN": ""})
    assert r.exit_code == 2
    assert "needs a hub token" in r.output


def test_groups_and_pools(live: LiveHub) -> None:
    create = ("hub", "group", "create", "ml", "--max-members", "2", "--pool", "train")
    no_pool = _run(live, *create, "--max-gpus", "1", token=live.admin)
    assert no_pool.exit_code == 2
    assert "no pool train" in no_pool.output
    pool = _run(live, "hub", "pool", "set", "train", "--node", "lab/n1", token=live.admin)
    assert "lab/n1" in pool.output
    assert "train" in _run(live, "hub", "pool", "list", token=live.admin).output
    made = _run(live, *create, "--max-gpus", "1", token=live.admin)
    assert made.exit_code == 0, made.output
    assert "0/2 members" in made.output
    added = _run(live, "hub", "group", "add", "ml", live.user_record.id, token=live.admin)
    assert "1/2 members" in added.output
    never = _run(live, "allocate", "gpus", "--gpus", "2")
    assert never.exit_code == 2  # more than the group may ever hold: change the request
    assert "may ever hold" in never.output
    assert _run(live, "allocate", "gpus", "--gpus", "1").exit_code == 0
    over = _run(live, "allocate", "gpus", "--gpus", "1")
    assert over.exit_code == 1  # the quota is used up now: waiting may help
    assert "quota" in over.output
    listed = _run(live, "hub", "group", "list", token=live.admin)
    assert "ml" in listed.output
    not_admin = _run(live, "hub", "group", "create", "x")
    assert not_admin.exit_code == 2
    assert "403" in not_admin.output


@pytest.fixture
def worker(live: LiveHub, tmp_path: Path) -> Iterator[HubPusher]:
    """An agent's pusher for lab/n1 that runs tasks, pushing every 0.2 s over real HTTP."""
    join, _ = live.hub.create_token("worker", ["node-join"])

    def snapshot() -> Any:
        return snap(
            time.time(), gpu("GPU-a", 0.0), gpu("GPU-b", 0.0, index=1), node="n1", cluster="lab"
        )

    spool = HubSpool(str(tmp_path / "spool.db"))
    spool.append(snapshot())
    pusher = HubPusher(
        live.url,
        join,
        spool,
        {"cluster": "lab", "node": "n1"},
        health=lambda: {"inventory": inventory_of(snapshot())},
        interval_s=0.2,
        ledger=LeaseLedger(tmp_path / "leases.json"),
        tasks=TaskRunner(tmp_path / "tasks"),
    )
    pusher.start()
    try:
        yield pusher
    finally:
        pusher.stop()


def test_submit_wait_tasks_show_and_cancel(live: LiveHub, worker: HubPusher) -> None:
    code = (
        "print('hello from', __import__('os').environ['CUDA_VISIBLE_DEVICES']); raise SystemExit(3)"
    )
    r = _run(live, "submit", "--gpus", "1", "--wait", "--", sys.executable, "-c", code)
    assert r.exit_code == 3, r.output
    assert "hello from GPU-a" in r.output
    listed = _run(live, "tasks")
    assert "failed" in listed.output
    long = _run(
        live,
        "submit",
        "--gpus",
        "2",
        "--name",
        "sleeper",
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(60)",
    )
    assert long.exit_code == 0, long.output
    task_id = long.output.split()[1]
    shown = _run(live, "tasks", "show", task_id)
    assert "sleeper" in shown.output
    deadline = time.monotonic() + 20
    while "running" not in _run(live, "tasks", "show", task_id).output:
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.2)
    assert "cancelled" in _run(live, "tasks", "cancel", task_id).output
    assert worker.tasks is not None
    while worker.tasks.running():
        assert time.monotonic() < deadline + 20, "the agent did not stop the task"
        time.sleep(0.2)
    bad = _run(live, "submit", "--env", "X", "--", "ls")
    assert bad.exit_code == 2
    assert "--env must be key=value" in bad.output


def test_ask_a_hub_with_a_token(live: LiveHub) -> None:
    read, _ = live.hub.create_token("viewer", ["read"])
    r = runner.invoke(
        app, ["ask", "--url", live.url, "--token", read, "--json", "which clusters are there?"]
    )
    assert r.exit_code == 0, r.output
    assert "lab" in r.output
    denied = runner.invoke(
        app, ["ask", "--url", live.url, "which clusters are there?"], env={"GPUFLEET_HUB_TOKEN": ""}
    )
    assert denied.exit_code == 2
    assert "401" in denied.output


def test_an_agent_with_a_wrong_token_says_so_and_keeps_its_samples(
    live: LiveHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = HubSpool(str(tmp_path / "spool.db"))
    spool.append(snap(time.time(), gpu("GPU-a", 0.0), node="n9", cluster="lab"))
    for bad in ("gf_not-a-token", live.user):  # unknown; a submit token, not node-join
        pusher = HubPusher(live.url, bad, spool, {"cluster": "lab", "node": "n9"})
        with caplog.at_level("ERROR", logger="gpufleet.agent.hub_push"):
            assert pusher.push_once() is False
            pusher.stop()
        assert "the hub refuses this agent's token" in caplog.text
        assert len(spool) == 1  # nothing dropped: sent once the token is fixed
        caplog.clear()
