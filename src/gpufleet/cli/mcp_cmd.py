"""``gpufleet mcp``: the analyst's tools for MCP clients, over stdio or streamable HTTP."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from gpufleet.cli.common import fail, open_for_reading, settings_from


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mcp(
    db: Annotated[
        str | None,
        typer.Option("--db", help="SQLite path or postgresql:// URL (default: settings)"),
    ] = None,
    transport: Annotated[
        str, typer.Option("--transport", help="stdio (for a client that starts us) or http")
    ] = "stdio",
    host: Annotated[str, typer.Option("--host", help="HTTP: address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="HTTP: port")] = 8765,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="HTTP: confirm a non-loopback --host")
    ] = False,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
) -> None:
    """Serve the analyst's tools to MCP clients: query_gpu_usage_trend,
    analyze_workload_history, get_latest_snapshot, get_workload_metadata,
    get_available_clusters/namespaces/dimension_keys, get_gpu_waste, get_recommendations,
    get_alerts and ask. HTTP serves streamable HTTP at http://HOST:PORT/mcp."""
    if transport not in ("stdio", "http"):
        fail(f"--transport must be stdio or http, not {transport!r}")
    if transport == "http" and not _loopback(host) and not allow_remote:
        fail(
            f"--host {host} would serve the fleet's history beyond this machine; "
            "add --allow-remote to confirm (remote access is off by default)"
        )
    from gpufleet.analyst.llm import client_from
    from gpufleet.analyst.mcp_server import build_mcp_server

    settings = settings_from(config, db=db)
    store = open_for_reading(db, config)
    try:
        server = build_mcp_server(
            store,
            idle_threshold_pct=settings.idle_threshold_pct,
            prices=settings.prices.to_table(),
            llm=client_from(settings.llm),
        )
        if transport == "stdio":
            server.run("stdio")
        else:
            server.run("streamable-http", host=host, port=port, streamable_http_path="/mcp")
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
