"""Live lease allocation on a hub: what one ``POST /fleet/v1/leases`` costs with N nodes.

The offline engine (``allocation_bench.py``) places a stream on one ClusterState; a hub
instead builds the state per request from the agents' last heartbeats and the active
leases in its store, sweeps expired leases and writes the lease. This measures both halves
on a SQLite hub with N nodes of 8 GPUs (a quarter of them busy with leases):

* ``plan``: :func:`gpufleet.fleet.allocator.plan_lease` alone (build, filter, choose);
* ``allocate + release``: :meth:`LeaseDesk.allocate` and :meth:`LeaseDesk.release`, store
  included (what the API does, without HTTP).

Medians of ``--repeat`` runs of ``--requests`` requests each.

    python bench/lease_bench.py [--nodes 100 500 1000] [--requests 50] [--write]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _report import median, write_section

from gpufleet.fleet.allocator import Holding, LiveNode, plan_lease
from gpufleet.fleet.hub import Hub
from gpufleet.fleet.inventory import inventory_from_wire
from gpufleet.fleet.lease_request import LeaseRequest
from gpufleet.fleet.strategies import make_strategy
from gpufleet.store import open_store
from gpufleet.store.task_records import TaskRecords


def _inventory(i: int) -> dict[str, object]:
    return {
        "gpus": [
            {
                "uuid": f"GPU-{i}-{g}",
                "index": g,
                "name": "NVIDIA H100 80GB HBM3",
                "cuda_capability": "9.0",
                "mem_total_mib": 81559,
                "mem_used_mib": 400,
                "util_pct": 0.0,
                "processes": 0,
            }
            for g in range(8)
        ],
        "cpu_cores": 96,
        "mem_total_mib": 786_432,
    }


def bench_plan(nodes: int, requests: int) -> float:
    live = [
        LiveNode("c", f"n{i:04d}", inventory_from_wire(_inventory(i)), zone=f"z{i % 4}")
        for i in range(nodes)
    ]
    held = [Holding("c", f"n{i:04d}", (f"GPU-{i}-0", f"GPU-{i}-1")) for i in range(0, nodes, 4)]
    strategy = make_strategy("best_fit")
    asks = [LeaseRequest(gpus=1 + k % 4, gpu_model=("H100",) if k % 2 else ()) for k in range(8)]
    started = time.perf_counter()
    for k in range(requests):
        plan_lease(asks[k % len(asks)], live, held, strategy)
    return (time.perf_counter() - started) / requests


def bench_hub(nodes: int, requests: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "hub.db"))
        assert isinstance(store, TaskRecords)
        hub = Hub(store)
        _, user = hub.create_token("bench", ["submit"])
        now = time.time()
        for i in range(nodes):
            store.join_node(cluster="c", node=f"n{i:04d}", now_s=now)
            store.record_heartbeat(
                "c",
                f"n{i:04d}",
                now_s=now,
                gpus_lost=0,
                gpu_errors=0,
                health_check={},
                inventory=_inventory(i),
            )
        # The agents keep beating and sending samples while the bench runs: healthy nodes.
        with store._writing() as tx:
            tx.execute(
                "UPDATE hub_nodes SET last_sample = ?, last_heartbeat = ?",
                (now + 3600, now + 3600),
            )
        for _ in range(0, nodes, 4):
            hub.leases.allocate({"gpus": 2}, user)
        started = time.perf_counter()
        for k in range(requests):
            lease, _ = hub.leases.allocate({"gpus": 1 + k % 4}, user)
            hub.leases.release(lease.id, user)
        took = (time.perf_counter() - started) / requests
        store.close()
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md")
    args = parser.parse_args()
    rows = []
    for n in args.nodes:
        plan = median([bench_plan(n, args.requests) for _ in range(args.repeat)])
        full = median([bench_hub(n, args.requests) for _ in range(args.repeat)])
        rows.append((n, plan, full))
        print(f"{n:5d} nodes: plan {plan * 1e3:6.2f} ms, allocate+release {full * 1e3:6.2f} ms")
    if args.write:
        table = "\n".join(
            f"| {n:,} | {plan * 1e3:.1f} ms | {1 / plan:,.0f}/s | {full * 1e3:.1f} ms "
            f"| {1 / full:,.0f}/s |"
            for n, plan, full in rows
        )
        write_section(
            "leases",
            "Live lease allocation on a hub (SQLite)",
            "python bench/lease_bench.py --write",
            f"""
Nodes of 8 H100s each, a quarter of them with 2 GPUs leased; requests for 1-4 GPUs, half
naming a model; best_fit. `plan` is placing one request (state built from the nodes'
inventories and the leases, filters, strategy); `allocate + release` is the lease desk's
whole path with the store (sweep, reads, the lease written and then released), without
HTTP. Medians of {args.repeat} runs of {args.requests} requests.

| nodes | plan | plans/s | allocate + release | leases/s |
|---:|---:|---:|---:|---:|
{table}

A hub serializes allocations in one process, so these are its ceiling; the offline
engine's figures above (one state, updated in place) are the bound for a stream.
""",
        )


if __name__ == "__main__":
    main()
