"""``gpufleet status``: a table of GPUs and their processes, like nvidia-smi / gpustat."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.common import console, get_json, guarded, print_json, settings_from


def _fmt(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}" if isinstance(value, float | int) else f"{value}{unit}"


def _from_url(url: str) -> dict[str, Any]:
    info = get_json(url, "/gpu/info")
    gpus = get_json(url, "/gpu/metrics") if info["available"] else None
    system = get_json(url, "/system/all")
    return {"gpu_info": info, "gpu_metrics": gpus, "system": system}


def _from_local(config: Path | None, source: str | None) -> dict[str, Any]:
    from gpufleet.agent.runner import sample_local
    from gpufleet.api.schemas.gpu import GpuInfo, GpuMetricsCollection
    from gpufleet.api.schemas.system import SystemAllOut

    settings = settings_from(config, source=source)
    live, snap = guarded(lambda: sample_local(settings), "cannot read this machine")
    info = GpuInfo.from_status(live.gpu_status).model_dump()
    gpus = (
        GpuMetricsCollection.from_snapshot(snap, f"{snap.cluster}/{snap.node}").model_dump()
        if live.gpu_status.available
        else None
    )
    system = (
        None if snap.system is None else SystemAllOut.from_snapshot(snap, snap.system).model_dump()
    )
    return {"gpu_info": info, "gpu_metrics": gpus, "system": system}


def _render(data: dict[str, Any]) -> None:
    system = data["system"]
    info = data["gpu_info"]
    gpus = data["gpu_metrics"]
    if system:
        mem = system["memory"]
        console.print(
            f"[bold]{escape(system['node'])}[/] ({escape(system['cluster'])})  "
            f"{escape(str(system['timestamp']))}  "
            f"CPU {_fmt(system['cpu']['cpu_pct'], ' %')}  "
            f"load {_fmt(system['cpu']['load_average']['load_1'], '', 2)}  "
            f"RAM {mem['used_bytes'] / 2**30:.1f} / {mem['total_bytes'] / 2**30:.1f} GiB",
            highlight=False,
        )
    if not info["available"]:
        reason = info.get("reason") or "no NVIDIA GPU visible"
        console.print(f"No GPUs: {escape(reason)}", highlight=False)
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("GPU", "Name", "Temp", "Util", "Memory (MiB)", "Power (W)", "Processes"):
        table.add_column(col, no_wrap=col != "Processes")
    for g in gpus["gpus"]:
        if g["lost"]:
            table.add_row(
                str(g["gpu_id"]),
                escape(g["gpu_name"] or "?"),
                "",
                "",
                "",
                "",
                f"[red]LOST: {escape(str(g['error']))}[/]",
            )
            continue
        procs = ", ".join(
            f"{p['user']}/{p['workload']} ({_fmt(p['used_memory_mb'], ' MiB')})"
            if p["workload"] != "unknown"
            else f"{p['process_name'] or p['pid']} ({_fmt(p['used_memory_mb'], ' MiB')})"
            for p in g["processes"]
        )
        m = g["memory"]
        table.add_row(
            str(g["gpu_id"]),
            escape(g["gpu_name"] or "?"),
            _fmt(g["temperature"]["current_celsius"], "°C"),
            _fmt(g["utilization"]["gpu_percent"], " %"),
            f"{_fmt(m['used_mb'])} / {_fmt(m['total_mb'])}",
            f"{_fmt(g['power']['power_draw_watts'])} / {_fmt(g['power']['power_limit_watts'])}",
            escape(procs) or "-",
        )
    console.print(table)


def status(
    url: Annotated[
        str | None, typer.Option(help="Read a running agent, e.g. http://127.0.0.1:8003")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a table.")
    ] = False,
    source: Annotated[
        str | None, typer.Option(help="auto | nvml | sim, when reading locally")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
) -> None:
    """Show GPUs, their processes and the host, from this machine or an agent (--url)."""
    data = _from_url(url) if url else _from_local(config, source)
    if json_out:
        print_json(data)
    else:
        _render(data)
