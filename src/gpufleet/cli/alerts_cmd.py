"""``gpufleet alerts``: alerts from a store or a running agent."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table

from gpufleet.cli.common import console, fail, get_json, guarded, print_json
from gpufleet.settings import default_db_path


def _from_db(
    db: str, start: str | None, end: str | None, active: bool, limit: int
) -> dict[str, Any]:
    from gpufleet.store import open_store
    from gpufleet.timeparse import iso, parse_window

    store = guarded(lambda: open_store(db), f"cannot open {db}")
    try:
        start_s, end_s = guarded(
            lambda: parse_window(start, end, now_s=time.time(), default_span_s=7 * 86_400.0),
            "bad time range",
        )
        items = store.alerts(start_s=start_s, end_s=end_s, active_only=active, limit=limit)
        return {
            "from": iso(start_s),
            "to": iso(end_s),
            "source": "store",
            "count": len(items),
            "alerts": [
                {
                    "id": a.id,
                    "rule": a.rule,
                    "severity": a.severity,
                    "state": "resolved" if a.resolved_s is not None else "firing",
                    "node": a.node,
                    "subject": a.subject,
                    "message": a.message,
                    "fired": iso(a.fired_s),
                    "resolved": None if a.resolved_s is None else iso(a.resolved_s),
                }
                for a in items
            ],
        }
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
) -> None:
    """List alerts, newest first."""
    if db is not None and url is not None:
        fail("give either --db or --url, not both")
    if url:
        params = {"active": str(active).lower(), "from": start, "to": end, "limit": limit}
        data = get_json(url, "/alerts", params)
    else:
        data = _from_db(db or str(default_db_path()), start, end, active, limit)
    if json_out:
        print_json(data)
        return
    if not data["alerts"]:
        console.print(f"no alerts between {data['from']} and {data['to']}")
        return
    table = Table(box=None, header_style="bold")
    for col in ("fired", "state", "severity", "rule", "node", "message"):
        table.add_column(col, no_wrap=col != "message")
    for a in data["alerts"]:
        table.add_row(a["fired"], a["state"], a["severity"], a["rule"], a["node"], a["message"])
    console.print(table)
