"""``gpufleet alerts``: alerts from a store or a running agent."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.common import console, fail, get_json, guarded, open_for_reading, print_json


def _from_db(
    db: str | None,
    config: Path | None,
    start: str | None,
    end: str | None,
    active: bool,
    limit: int,
) -> dict[str, Any]:
    from gpufleet.api.schemas.alerts import AlertList, AlertOut
    from gpufleet.timeparse import iso, parse_window

    store = open_for_reading(db, config)
    try:
        start_s, end_s = guarded(
            lambda: parse_window(start, end, now_s=time.time(), default_span_s=7 * 86_400.0)
        )
        items = guarded(
            lambda: store.alerts(start_s=start_s, end_s=end_s, active_only=active, limit=limit)
        )
        firing = guarded(
            lambda: store.alerts(start_s=0.0, end_s=end_s, active_only=True, limit=10_000)
        )
        return AlertList(
            start=iso(start_s),
            end=iso(end_s),
            source="store",
            active_count=len(firing),
            count=len(items),
            alerts=[AlertOut.from_alert(a) for a in items],
        ).model_dump()
    finally:
        store.close()


def alerts(
    db: Annotated[str | None, typer.Option(help="SQLite path or postgresql:// URL")] = None,
    url: Annotated[
        str | None, typer.Option(help="A running agent, e.g. http://127.0.0.1:8003")
    ] = None,
    active: Annotated[bool, typer.Option("--active", help="Only alerts still firing.")] = False,
    start: Annotated[str | None, typer.Option("--from", help="default -7d")] = None,
    end: Annotated[str | None, typer.Option("--to", help="default now")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
) -> None:
    """List alerts, newest first."""
    if db is not None and url is not None:
        fail("give either --db or --url, not both")
    if url:
        params = {"active": str(active).lower(), "from": start, "to": end, "limit": limit}
        data = get_json(url, "/alerts", params)
    else:
        data = _from_db(db, config, start, end, active, limit)
    if json_out:
        print_json(data)
        return
    if not data["alerts"]:
        console.print(escape(f"no alerts between {data['start']} and {data['end']}"))
        return
    table = Table(box=None, header_style="bold")
    for col in ("fired", "state", "severity", "rule", "node", "message"):
        table.add_column(col, no_wrap=col != "message")
    for a in data["alerts"]:
        table.add_row(
            *(escape(str(a[k])) for k in ("fired", "state", "severity", "rule", "node", "message"))
        )
    console.print(table)
