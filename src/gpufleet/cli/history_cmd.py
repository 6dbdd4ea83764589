"""``gpufleet history``: one metric over a time range, from a store or an agent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.common import console, fail, get_json, guarded, open_for_reading, print_json
from gpufleet.store.base import GPU_METRICS, SYSTEM_METRICS


def _from_db(
    db: str | None,
    config: Path | None,
    *,
    metric: str,
    host: bool,
    start: str | None,
    end: str | None,
    gpu: str | None,
    node: str | None,
    resolution: str,
) -> dict[str, Any]:
    from gpufleet.analysis.history import query_history
    from gpufleet.api.schemas.history import history_out

    store = open_for_reading(db, config)
    try:
        result = guarded(
            lambda: query_history(
                store,
                metric=metric,
                host=host,
                start=start,
                end=end,
                gpu=gpu,
                node=node,
                resolution=resolution,
            )
        )
        return history_out(result).model_dump()
    finally:
        store.close()


def history(
    metric: Annotated[
        str,
        typer.Argument(help=f"GPU: {', '.join(GPU_METRICS)}; host: {', '.join(SYSTEM_METRICS)}"),
    ] = "util_gpu_pct",
    db: Annotated[str | None, typer.Option(help="SQLite path or postgresql:// URL")] = None,
    url: Annotated[
        str | None, typer.Option(help="A running agent, e.g. http://127.0.0.1:8003")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="ISO 8601 or relative (-24h); default -1h")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="ISO 8601 or relative; default now")
    ] = None,
    gpu: Annotated[str | None, typer.Option(help="GPU UUID or index")] = None,
    node: Annotated[str | None, typer.Option(help="Only this node")] = None,
    resolution: Annotated[str, typer.Option(help="raw | 1m | 1h | auto")] = "auto",
    system: Annotated[
        bool,
        typer.Option("--system", help="The host's metric when a name is both (mem_used_bytes)."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
) -> None:
    """Print a metric over a time range as a table (or --json)."""
    if metric not in GPU_METRICS and metric not in SYSTEM_METRICS:
        fail(
            f"unknown metric {metric!r}; GPU metrics: {', '.join(GPU_METRICS)}; "
            f"host metrics: {', '.join(SYSTEM_METRICS)}"
        )
    if system and metric not in SYSTEM_METRICS:
        fail(f"--system: {metric!r} is not a host metric; use one of {', '.join(SYSTEM_METRICS)}")
    # A name in both lists (mem_used_bytes) means the GPU's unless --system says the host's.
    host_metric = system or metric not in GPU_METRICS
    if host_metric and gpu is not None:
        fail(f"--gpu does not apply to the host metric {metric!r}")
    if db is not None and url is not None:
        fail("give either --db or --url, not both")
    if url:
        path = "/system/history" if host_metric else "/gpu/metrics/history"
        params = {"metric": metric, "from": start, "to": end, "gpu": gpu, "node": node}
        data = get_json(url, path, params | {"resolution": resolution})
    else:
        data = _from_db(
            db,
            config,
            metric=metric,
            host=host_metric,
            start=start,
            end=end,
            gpu=gpu,
            node=node,
            resolution=resolution,
        )
    if json_out:
        print_json(data)
        return
    table = Table(
        title=escape(f"{data['metric']} ({data['resolution']}) {data['start']} .. {data['end']}"),
        box=None,
        header_style="bold",
    )
    for col in ("time", "node", "subject", "mean", "min", "max", "n"):
        table.add_column(col, justify="right" if col in ("mean", "min", "max", "n") else "left")
    rows = 0
    for s in data["series"]:
        subject = s["subject"] if s.get("gpu_index") is None else f"gpu {s['gpu_index']}"
        for p in s["points"]:
            table.add_row(
                escape(str(p["timestamp"])),
                escape(str(s["node"])),
                escape(str(subject)),
                *(("n/a" if p[k] is None else f"{p[k]:.2f}") for k in ("mean", "min", "max")),
                str(p["count"]),
            )
            rows += 1
    if rows == 0:
        console.print(
            escape(f"no {data['metric']} samples between {data['start']} and {data['end']}")
        )
        return
    console.print(table)
