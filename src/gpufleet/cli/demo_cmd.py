"""``gpufleet demo``: write weeks of simulated cluster history into a store, then serve it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from gpufleet.cli.common import console, fail, guarded, settings_from
from gpufleet.cli.serve import check_bind, check_port_free, serve

DEMO_CLUSTER = "gpu-cluster-01"
MIN_DEMO_GPUS = 8
"""The planted findings (idle holders in three teams, a team's drop) need this many GPUs."""


def demo(
    db: Annotated[
        str, typer.Option(help="SQLite path or postgresql:// URL to write the demo into")
    ],
    days: Annotated[float, typer.Option(min=0.1, max=400, help="Days of history")] = 30,
    nodes: Annotated[int, typer.Option(min=1, max=500, help="Simulated nodes")] = 4,
    gpus: Annotated[int, typer.Option(min=2, max=16, help="GPUs per node (8 or more in all)")] = 8,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same history)")] = 0,
    interval: Annotated[float, typer.Option(min=1, max=3600, help="Seconds between samples")] = 60,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Write the history and exit.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Bind address when serving")] = None,
    port: Annotated[int | None, typer.Option(help="Port when serving (default 8003)")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
) -> None:
    """Write D days of history for a simulated cluster, then serve it (unless --no-serve)."""
    from gpufleet.agent.demo import write_demo
    from gpufleet.store import open_store

    settings = settings_from(
        config,
        db=db,
        host=host,
        port=port,
        allow_remote=allow_remote or None,
        cluster=DEMO_CLUSTER,
        node="gpu-node-01",
        source="sim",
        sim_gpus=gpus,
        sim_seed=seed,
    )
    if nodes * gpus < MIN_DEMO_GPUS:
        fail(
            f"the demo cluster needs at least {MIN_DEMO_GPUS} GPUs in all "
            f"(--nodes x --gpus), got {nodes} x {gpus}"
        )
    if not no_serve:
        check_bind(settings)
        check_port_free(settings.host, settings.port)
    store = guarded(lambda: open_store(db, retention=settings.retention.to_retention()))
    if any(inv.cluster == DEMO_CLUSTER for inv in guarded(store.inventory)):
        store.close()
        fail(
            f"{db} already holds {DEMO_CLUSTER} history; writing it again would count every "
            "sample twice: choose a new --db"
        )
    total_gpu_samples = int(days * 86_400 / interval) * nodes * gpus
    console.print(
        f"writing {days:g} days of {DEMO_CLUSTER} ({nodes} nodes x {gpus} GPUs, one sample per "
        f"GPU every {interval:g} s: {total_gpu_samples:,} GPU samples) into {escape(db)}"
    )
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("hours written", total=None)

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            summary = guarded(
                lambda: write_demo(
                    store,
                    days=days,
                    nodes=nodes,
                    gpus=gpus,
                    seed=seed,
                    interval_s=interval,
                    progress=report,
                ),
                "demo failed",
            )
    except KeyboardInterrupt:
        store.close()
        fail("interrupted: the hours written so far are complete and kept", code=130)
    store.close()
    console.print(escape(summary.describe()))
    if no_serve:
        return
    from gpufleet.agent.runner import build_agent

    ctx = guarded(lambda: build_agent(settings), "cannot start the agent")
    serve(ctx)
