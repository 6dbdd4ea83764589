"""Allocation decisions per second on 1,000 simulated nodes (issue 5's target: >= 5,000/s).

Builds a seeded inventory of 1,000 nodes (8 GPUs each, three models, CPU and memory) and a
stream of requests drawn like the openb trace's mix (most ask for one GPU, some for a
fraction, some for 2/4/8 whole GPUs, a few CPU-only), then replays the stream with every
strategy, nothing departing, and reports the decisions per second (fit check plus strategy,
timed by :func:`gpufleet.fleet.replay.replay`), placed / failed and the allocated share at the
first failure. Repeated ``--repeat`` times; medians are reported.

    python bench/allocation_bench.py [--nodes 1000] [--requests 20000] [--write]
"""

from __future__ import annotations

import argparse
import random

from _report import median, write_section

from gpufleet.fleet.placement import NodeSpec, Request
from gpufleet.fleet.replay import ReplayResult, replay
from gpufleet.fleet.strategies import STRATEGIES, make_strategy

TARGET_PER_S = 5_000.0
MODELS = ("A100", "V100M32", "T4")


def inventory(n: int, seed: int = 0) -> list[NodeSpec]:
    rng = random.Random(seed)
    return [
        NodeSpec(
            f"node-{i:04d}",
            8,
            model=MODELS[i % len(MODELS)],
            cpu_milli=96_000,
            memory_mib=786_432,
            zone=f"zone-{i % 4}",
            weight=rng.choice((1.0, 1.0, 2.0)),
        )
        for i in range(n)
    ]


def stream(n: int, seed: int = 1) -> list[Request]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        roll = rng.random()
        cpu = rng.choice((2000, 4000, 8000, 16000))
        mem = rng.choice((8192, 16384, 32768))
        spec = (rng.choice(MODELS),) if rng.random() < 0.3 else ()
        zone = f"zone-{rng.randrange(4)}"
        if roll < 0.05:
            r = Request(f"p{k}", num_gpu=0, gpu_milli=0, cpu_milli=cpu, memory_mib=mem)
        elif roll < 0.30:
            milli = rng.choice((100, 250, 500, 700))
            r = Request(f"p{k}", gpu_milli=milli, cpu_milli=cpu, memory_mib=mem, zone=zone)
        elif roll < 0.85:
            r = Request(f"p{k}", gpu_spec=spec, cpu_milli=cpu, memory_mib=mem, zone=zone)
        else:
            r = Request(f"p{k}", num_gpu=rng.choice((2, 4, 8)), gpu_spec=spec, cpu_milli=cpu)
        out.append(r)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md")
    args = parser.parse_args()
    nodes = inventory(args.nodes)
    requests = stream(args.requests)
    rows = []
    for name in STRATEGIES:
        runs: list[ReplayResult] = [
            replay(nodes, requests, make_strategy(name)) for _ in range(args.repeat)
        ]
        rate = median([r.decisions_per_s for r in runs])
        last = runs[-1]
        first = last.allocated_gpu_fraction_at_first_failure
        rows.append(
            f"| {name} | {rate:,.0f} | {last.placed} | {last.failed} | "
            f"{'-' if first is None else f'{100 * first:.1f} %'} | "
            f"{100 * last.allocated_gpu_fraction_final:.1f} % | {100 * last.fragmentation:.1f} % |"
        )
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    body = f"""
{args.nodes} nodes x 8 GPUs (three models, four zones), {args.requests} requests (5 % CPU-only,
25 % a fraction of a GPU, 55 % one GPU, 15 % 2/4/8 GPUs; 30 % of GPU requests name a model),
placed in order with nothing departing; median of {args.repeat} replays. Target: at least
{TARGET_PER_S:,.0f} decisions/s for every strategy.

| strategy | decisions/s | placed | failed | alloc. at 1st failure | alloc. at end | frag. |
|---|---:|---:|---:|---:|---:|---:|
{table}

Decisions/s counts the fit check (every node the request could go on) and the strategy's
choice, not building the stream. Machine: 2 cores shared with other jobs.
"""
    if args.write:
        write_section(
            "allocation",
            "Allocation decisions per second (1,000 simulated nodes)",
            f"python bench/allocation_bench.py --nodes {args.nodes} --requests {args.requests} "
            "--write",
            body,
        )


if __name__ == "__main__":
    main()
