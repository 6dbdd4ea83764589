"""``gpufleet history``: one metric over a time range, from a store or an agent."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from gpufleet.cli.common import console, fail, get_json, guarded, print_json
from gpufleet.settings import default_db_path
from gpufleet.store.base import GPU_METRICS, SYSTEM_METRICS


def _from_db(
    db: str,
    metric: str,
    start: str | None,
    end: str | None,
    gpu: str | None,
    node: str | None,
    resolution: str,
) -> dict[str, Any]:
    from gpufleet.store import open_store
    from gpufleet.store.base import Resolution, pick_resolution
    from gpufleet.timeparse import iso, parse_window

    store = guarded(lambda: open_store(db), f"cannot open {db}")
    try:
        now = time.time()
        start_s, end_s = guarded(
            lambda: parse_window(start, end, now_s=now, default_span_s=3600.0), "bad time range"
        )
        try:
            res = Resolution(resolution)
        except ValueError:
            fail(f"unknown resolution {resolution!r}; use raw, 1m, 1h or auto")
        if res is Resolution.AUTO:
            res = pick_resolution(start_s, end_s, now, store.retention)
        inventory = store.inventory()
        index = {i.uuid: i.index for i in inventory}
        uuid = None
        if gpu is not None:
            matches = [
                i.uuid
                for i in inventory
                if i.uuid == gpu
                or (gpu.isdigit() and i.index == int(gpu) and (node is None or i.node == node))
            ]
            if not matches:
                fail(f"GPU {gpu!r} has no history in {db}")
            uuid = matches[0]
        if metric in SYSTEM_METRICS:
            series = guarded(
                lambda: store.system_series(
                    metric=metric, start_s=start_s, end_s=end_s, resolution=res, node=node
                ),
                "query failed",
            )
        else:
            series = guarded(
                lambda: store.gpu_series(
                    metric=metric,
                    start_s=start_s,
                    end_s=end_s,
                    resolution=res,
                    node=node,
                    uuid=uuid,
                ),
                "query failed",
            )
        return {
            "metric": metric,
            "resolution": res.value,
            "start": iso(start_s),
            "end": iso(end_s),
            "series": [
                {
                    "cluster": s.cluster,
                    "node": s.node,
                    "subject": s.subject,
                    "gpu_index": index.get(s.subject),
                    "points": [
                        {
                            "timestamp": iso(p.ts_s),
                            "mean": p.mean,
                            "min": p.min,
                            "max": p.max,
                            "count": p.count,
                        }
                        for p in s.points
                    ],
                }
                for s in series
            ],
        }
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
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a metric over a time range as a table (or --json)."""
    if metric not in GPU_METRICS and metric not in SYSTEM_METRICS:
        fail(
            f"unknown metric {metric!r}; GPU metrics: {', '.join(GPU_METRICS)}; "
            f"host metrics: {', '.join(SYSTEM_METRICS)}"
        )
    if db is not None and url is not None:
        fail("give either --db or --url, not both")
    if url:
        path = "/system/history" if metric in SYSTEM_METRICS else "/gpu/metrics/history"
        params = {"metric": metric, "from": start, "to": end, "gpu": gpu, "node": node}
        data = get_json(url, path, params | {"resolution": resolution})
    else:
        data = _from_db(db or str(default_db_path()), metric, start, end, gpu, node, resolution)
    if json_out:
        print_json(data)
        return
    table = Table(
        title=f"{data['metric']} ({data['resolution']}) {data['start']} .. {data['end']}",
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
                p["timestamp"],
                s["node"],
                subject,
                *(("n/a" if p[k] is None else f"{p[k]:.2f}") for k in ("mean", "min", "max")),
                str(p["count"]),
            )
            rows += 1
    if rows == 0:
        console.print(f"no {data['metric']} samples between {data['start']} and {data['end']}")
        return
    console.print(table)
