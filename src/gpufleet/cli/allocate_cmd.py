"""``gpufleet allocate replay``: place a recorded request stream onto a node inventory.

A thin wrapper over :mod:`gpufleet.fleet.replay`: reads both CSVs, shows progress on stderr
for long streams, and prints the figures as a table or, with ``--json``, one JSON object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gpufleet.cli.common import console, err_console, fail, print_json

allocate_app = typer.Typer(
    help="GPU leases from a hub (gpus, leases, renew, release) and the allocation engine "
    "offline (replay a request stream onto a node inventory).",
    no_args_is_help=True,
)

_STRATEGY_HELP = (
    "best_fit (default: packs, keeps whole nodes free), least_loaded, round_robin, weighted "
    "(node weight column), geographic (request zone first), random (seeded)."
)


@allocate_app.command("replay")
def replay_cmd(
    nodes: Annotated[
        Path,
        typer.Option(
            "--nodes", help="Node CSV: name (or sn), gpu, model [, cpu_milli, memory_mib, zone]."
        ),
    ],
    requests: Annotated[
        Path,
        typer.Option(
            "--requests",
            help="Request CSV: name, num_gpu, gpu_milli [, gpu_spec, cpu_milli, memory_mib, "
            "creation_time, deletion_time].",
        ),
    ],
    strategy: Annotated[str, typer.Option("--strategy", help=_STRATEGY_HELP)] = "best_fit",
    departures: Annotated[
        bool,
        typer.Option(
            "--departures",
            help="Give capacity back at each request's deletion_time (default: nothing "
            "leaves, the cluster fills until requests fail).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random strategy.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Place every request of REQUESTS onto NODES in creation order and report placed,
    failed, the allocated GPU share at the first failure and at the end, fragmentation and
    decisions per second."""
    from gpufleet.fleet.placement import PlacementError
    from gpufleet.fleet.replay import ReplayInputError, load, replay
    from gpufleet.fleet.strategies import make_strategy

    try:
        chosen = make_strategy(strategy, seed=seed)
        node_list, request_list = load(nodes, requests)
    except (ReplayInputError, PlacementError) as exc:
        fail(str(exc))
    show = not as_json and len(request_list) >= 5000 and err_console.is_terminal
    with Progress(
        TextColumn("placing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task("placing", total=len(request_list))
        try:
            result = replay(
                node_list,
                request_list,
                chosen,
                departures=departures,
                progress=lambda n: bar.update(task, completed=n),
            )
        except ReplayInputError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted; nothing was written", code=130)
    if as_json:
        print_json(result.wire())
        return
    first = result.allocated_gpu_fraction_at_first_failure
    lines = [
        f"strategy        {result.strategy}",
        f"inventory       {result.nodes} nodes, {result.gpus} GPUs",
        f"requests        {result.requests}: {result.placed} placed, {result.failed} failed",
        "first failure   "
        + (
            "none"
            if first is None
            else f"{escape(result.first_failure or '')} at {100 * first:.1f} % of GPUs allocated"
        ),
        f"allocated       {100 * result.allocated_gpu_fraction_final:.1f} % of GPUs at the end",
        f"fragmentation   {100 * result.fragmentation:.1f} % of free GPU capacity on partly "
        "used GPUs",
        f"speed           {result.decisions_per_s:,.0f} decisions/s",
    ]
    for reason, count in result.failed_by_reason.items():
        lines.append(f"  failed: {count} x {escape(reason)}")
    console.print("\n".join(lines), highlight=False)
    if result.failed and not result.placed:
        raise typer.Exit(1)
