"""What the client's tests share: an agent app over a real SQLite store with hand-computed
and demo history, a hub with a node that has GPUs, and a real uvicorn server on
127.0.0.1 (port 0) in a thread for the blocking client (``httpx.ASGITransport`` is
async-only; the async tests use it directly)."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from tests.unit.store_samples import GIB, T0, gpu, host, proc, snap

from gpufleet.agent.context import AgentContext
from gpufleet.agent.demo import write_demo
from gpufleet.agent.live import LiveState
from gpufleet.api.app import create_app
from gpufleet.api.hub_app import create_hub_app
from gpufleet.collectors.sim import SimGpuSource
from gpufleet.fleet.hub import Hub
from gpufleet.model import Snapshot
from gpufleet.settings import Settings
from gpufleet.store import open_store
from gpufleet.store.base import Store
from gpufleet.store.task_records import TaskRecords

HAND_HOURS = 4
HAND_WINDOW = (T0, T0 + HAND_HOURS * 3600)
"""The hand-computed window: two H100s at one sample a minute.

GPU-a runs ``team/alice/train`` at 60 % throughout; GPU-b is held by ``team/bob/nb`` at 0 %
for the first two hours and free after. So: 8 GPU-h, mean 30 %, 4 idle GPU-h, 6 allocated,
2 idle-allocated, allocation rate 0.75.
"""
LIVE_GPUS = 4
LIVE_NODE = "node-a"
LIVE_CLUSTER = "c1"
DEMO_INTERVAL_S = 600.0


def write_hand_history(store: Store) -> None:
    snaps = []
    for m in range(HAND_HOURS * 60):
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


@dataclass
class Agent:
    """An agent's app with its context: ``source`` is the simulated GPU source whose
    snapshots are live; history holds the hand window and two demo days up to now."""

    app: FastAPI
    ctx: AgentContext
    source: SimGpuSource
    latest: Snapshot


def build_agent(tmp: Path) -> Agent:
    store = open_store(tmp / "agent.db")
    write_hand_history(store)
    end = math.floor(time.time() / DEMO_INTERVAL_S) * DEMO_INTERVAL_S
    write_demo(store, days=2, nodes=1, gpus=8, seed=0, end_s=end, interval_s=DEMO_INTERVAL_S)
    source = SimGpuSource(gpus=LIVE_GPUS, seed=7, node=LIVE_NODE)
    live = LiveState(source.status())
    now = time.time()
    last: Snapshot | None = None
    for t in (now - 240 + 60 * i for i in range(5)):
        last = Snapshot(
            ts_s=t,
            cluster=LIVE_CLUSTER,
            node=LIVE_NODE,
            gpus=source.sample(t),
            system=host(12.5, rx=(100.0,), disks=(40.0,)),
            interval_s=60.0,
        )
        live.publish(last, 0.001)
    assert last is not None
    settings = Settings(
        cluster=LIVE_CLUSTER, node=LIVE_NODE, db=str(tmp / "agent.db"), interval_s=60
    )
    ctx = AgentContext(settings=settings, live=live, store=store)
    return Agent(create_app(ctx), ctx, source, last)


@dataclass
class HubSetup:
    """A hub over SQLite with node ``c1/n1`` (pool ``train``, 4 GPUs, one sample) joined
    and beating, and the secrets of an admin, a node-join and a user token."""

    app: FastAPI
    hub: Hub
    store: Store
    admin: str
    node: str
    user: str
    user_id: str


def inventory(gpus: int) -> dict[str, Any]:
    """A heartbeat's inventory of ``gpus`` idle H100s (the hub places leases on it)."""
    return {
        "gpus": [
            {
                "uuid": f"GPU-n1-{i}",
                "index": i,
                "name": "NVIDIA H100 80GB HBM3",
                "pci_bus_id": f"0000:{i:02x}:00.0",
                "cuda_capability": "9.0",
                "mem_total_mib": 81559,
                "mem_used_mib": 500,
                "util_pct": 0.0,
                "mem_util_pct": 0.0,
                "processes": 0,
            }
            for i in range(gpus)
        ],
        "cpu_cores": 32,
        "mem_total_mib": 256_000,
        "mem_available_mib": 200_000,
    }


def build_hub(tmp: Path) -> HubSetup:
    store = open_store(tmp / "hub.db")
    assert isinstance(store, TaskRecords)
    hub = Hub(store)
    admin, _ = hub.create_token("root", ["admin"])
    node, _ = hub.create_token("agents", ["node-join"])
    user, record = hub.create_token("alice", ["read", "submit"])
    return HubSetup(
        create_hub_app(hub, sweep_interval_s=0.2), hub, store, admin, node, user, record.id
    )


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", http="h11", ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="client-test-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
