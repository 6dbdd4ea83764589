"""A hub and three agents as separate processes on loopback (sim GPUs): join, health, a
node killed going unreachable within the timeout, a hub outage and restart with every
sample backfilled, and tokens refused over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

GPUFLEET = [sys.executable, "-c", "from gpufleet.cli.main import main; main()"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src, "GPUFLEET_HUB__PUSH_INTERVAL_S": "0.5"}


def _wait(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Fleet:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.hub_db = str(tmp / "hub.db")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.hub: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Any] = []
        self.admin = self.token("ops", "admin")
        self.join = self.token("agents", "node-join")

    def token(self, name: str, scope: str) -> str:
        out = subprocess.run(
            [
                *GPUFLEET,
                "hub",
                "token",
                "create",
                "--db",
                self.hub_db,
                "--name",
                name,
                "--scope",
                scope,
            ],
            env=_env(),
            capture_output=True,
            check=True,
            timeout=60,
        )
        return out.stdout.decode().strip()

    def start_hub(self) -> None:
        log = open(self.tmp / "hub.log", "ab")  # noqa: SIM115 - closed in close()
        self.logs.append(log)
        self.hub = subprocess.Popen(
            [
                *GPUFLEET,
                "hub",
                "--db",
                self.hub_db,
                "--port",
                str(self.port),
                "--unreachable-after",
                "3",
            ],
            env=_env(),
            stdout=log,
            stderr=log,
        )
        _wait(lambda: httpx.get(self.url + "/docs", timeout=1).status_code == 200, 30, "the hub")

    def stop_hub(self) -> None:
        assert self.hub is not None
        self.hub.send_signal(signal.SIGTERM)
        self.hub.wait(20)
        self.hub = None

    def start_agent(self, node: str) -> None:
        log = open(self.tmp / f"{node}.log", "ab")  # noqa: SIM115 - closed in close()
        self.logs.append(log)
        self.agents[node] = subprocess.Popen(
            [
                *GPUFLEET,
                "agent",
                "--source",
                "sim",
                "--sim-gpus",
                "2",
                "--interval",
                "0.5",
                "--db",
                str(self.tmp / f"{node}.db"),
                "--port",
                str(_free_port()),
                "--cluster",
                "lab",
                "--node",
                node,
                "--hub",
                self.url,
                "--token",
                self.join,
                "--label",
                f"rack={node[-1]}",
                "--run-tasks",
                "--advertise",
            ],
            env=_env(),
            stdout=log,
            stderr=log,
        )

    def nodes(self) -> dict[str, dict[str, Any]]:
        r = httpx.get(
            self.url + "/fleet/v1/nodes",
            headers={"Authorization": f"Bearer {self.admin}"},
            timeout=5,
        )
        r.raise_for_status()
        return {n["node"]: n for n in r.json()["nodes"]}

    def close(self) -> None:
        for p in [*self.agents.values(), self.hub]:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
        for log in self.logs:
            log.close()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path)
    try:
        yield f
    finally:
        f.close()


def _raw_counts(db: str) -> dict[str, int]:
    with sqlite3.connect(db) as c:
        return {
            str(n): int(k) for n, k in c.execute("SELECT node, COUNT(*) FROM gpu_raw GROUP BY node")
        }


def test_a_fleet_of_processes(fleet: Fleet) -> None:
    fleet.start_hub()
    for node in ("n1", "n2", "n3"):
        fleet.start_agent(node)
    _wait(
        lambda: (
            {n: v["status"] for n, v in fleet.nodes().items()}
            == {"n1": "healthy", "n2": "healthy", "n3": "healthy"}
        ),
        60,
        "three healthy nodes",
    )
    assert fleet.nodes()["n2"]["labels"] == {"rack": "2"}

    # Discovery: the agents announce themselves (mDNS and UDP); the hub lists them as heard
    # of and joined. Discovery alone grants nothing: joining took the node-join token.
    def discovered() -> dict[str, Any]:
        r = httpx.get(
            fleet.url + "/fleet/v1/discovered",
            headers={"Authorization": f"Bearer {fleet.admin}"},
            timeout=5,
        )
        return {a["node"]: a for a in r.json()["agents"]}

    _wait(lambda: {"n1", "n2", "n3"} <= set(discovered()), 30, "the agents discovered")
    assert all(a["joined"] for a in discovered().values())

    # Tokens over real HTTP: none, a wrong one, and too small a scope change nothing.
    for headers in ({}, {"Authorization": "Bearer gf_00000000_" + "x" * 43}):
        r = httpx.post(
            fleet.url + "/fleet/v1/join", json={"cluster": "lab", "node": "evil"}, headers=headers
        )
        assert r.status_code == 401
    r = httpx.post(
        fleet.url + "/fleet/v1/nodes/lab/n1/drain",
        json={},
        headers={"Authorization": f"Bearer {fleet.join}"},
    )
    assert r.status_code == 403
    assert "evil" not in fleet.nodes()

    # Leases: one on n3 (by its label), held by n3's agent too.
    submit = fleet.token("alice", "submit")
    auth = {"Authorization": f"Bearer {submit}"}
    r = httpx.post(
        fleet.url + "/fleet/v1/leases",
        json={"gpus": 1, "labels": {"rack": "3"}, "include_busy": True},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    on_n3 = r.json()
    assert on_n3["node"] == "n3"
    assert on_n3["env"]["CUDA_VISIBLE_DEVICES"].startswith("GPU-")
    ledger = fleet.tmp / "hub-leases-lab-n3.json"
    _wait(
        lambda: on_n3["id"] in ledger.read_text() if ledger.exists() else False, 15, "n3's ledger"
    )

    # Tasks: a short one runs on an agent and its output comes back.
    def task(task_id: str) -> dict[str, Any]:
        got = httpx.get(f"{fleet.url}/fleet/v1/tasks/{task_id}", headers=auth)
        return dict(got.json())

    short = httpx.post(
        fleet.url + "/fleet/v1/tasks",
        json={
            "command": [sys.executable, "-c", "import os; print(os.environ['GPUFLEET_TASK_ID'])"],
            "gpus": 1,
            "include_busy": True,
        },
        headers=auth,
    ).json()
    _wait(lambda: task(short["id"])["state"] == "succeeded", 30, "the short task")
    assert task(short["id"])["parts"][0]["output"].strip() == short["id"]
    # A long one lands on n3 (best_fit: the fullest node) and is running when n3 dies.
    long = httpx.post(
        fleet.url + "/fleet/v1/tasks",
        json={
            "command": [sys.executable, "-c", "import time; time.sleep(120)"],
            "gpus": 1,
            "include_busy": True,
        },
        headers=auth,
    ).json()
    assert long["parts"][0]["node"] == "lab/n3", long
    _wait(lambda: task(long["id"])["state"] == "running", 30, "the long task running on n3")

    # A node killed: unreachable within the timeout (3 s), the others stay healthy.
    fleet.agents["n3"].kill()
    fleet.agents["n3"].wait(10)
    killed_at = time.monotonic()
    _wait(lambda: fleet.nodes()["n3"]["status"] == "unreachable", 15, "n3 unreachable")
    assert time.monotonic() - killed_at < 3 + 5  # timeout plus a push interval or two of slack
    assert fleet.nodes()["n1"]["status"] == "healthy"
    # Its lease is reclaimed by the hub's sweeper, and the work goes to a node that answers.
    _wait(
        lambda: (
            httpx.get(f"{fleet.url}/fleet/v1/leases/{on_n3['id']}", headers=auth).json()["state"]
            == "reclaimed"
        ),
        10,
        "n3's lease reclaimed",
    )
    # n3's task part is placed again on a node that answers, and runs there.
    _wait(
        lambda: task(long["id"])["parts"][0]["node"] in ("lab/n1", "lab/n2"),
        15,
        "the long task placed elsewhere",
    )
    _wait(lambda: task(long["id"])["state"] == "running", 30, "the long task running again")
    assert task(long["id"])["parts"][0]["attempts"] == 2
    again = httpx.post(
        fleet.url + "/fleet/v1/leases", json={"gpus": 2, "include_busy": True}, headers=auth
    )
    assert again.status_code == 201, again.text
    assert again.json()["node"] in ("n1", "n2")
    cancelled = httpx.post(f"{fleet.url}/fleet/v1/tasks/{long['id']}/cancel", headers=auth)
    assert cancelled.json()["state"] == "cancelled"

    # A hub outage: the agents keep sampling into their spools; after the restart every
    # sample reaches the hub, nothing twice.
    fleet.stop_hub()
    time.sleep(3)
    fleet.start_hub()
    _wait(lambda: fleet.nodes()["n1"]["status"] == "healthy", 30, "n1 back")
    kept = httpx.get(f"{fleet.url}/fleet/v1/leases/{again.json()['id']}", headers=auth).json()
    assert kept["state"] == "active"  # the restart lost no lease
    for node in ("n1", "n2"):
        fleet.agents[node].send_signal(signal.SIGINT)
        fleet.agents[node].wait(30)
    fleet.stop_hub()
    hub = _raw_counts(fleet.hub_db)
    for node in ("n1", "n2"):
        own = _raw_counts(str(fleet.tmp / f"{node}.db"))[node]
        assert hub[node] == own, (node, hub[node], own)
        assert own > 20
    # The killed node's samples up to its last push are there too.
    assert hub["n3"] > 0
