"""``gpufleet hub``: run a hub, manage its tokens, list its nodes.

``gpufleet hub --db postgresql://... [--host] [--port]`` serves the fleet API (loopback
unless ``--allow-remote``); ``gpufleet hub token create|list|revoke --db ...`` works on the
hub's database directly (the operator's first admin token comes from here); ``gpufleet hub
nodes --db ...`` (or ``--url`` with a ``read`` token) lists nodes with their health.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.common import (
    console,
    err_console,
    fail,
    get_json,
    is_empty_file,
    print_json,
    settings_from,
)
from gpufleet.cli.serve import check_port_free
from gpufleet.fleet.discovery import UDP_PORT
from gpufleet.fleet.errors import HubRequestError
from gpufleet.fleet.health import UNREACHABLE_AFTER_S
from gpufleet.fleet.hub import Hub, NodeView
from gpufleet.settings import is_loopback_host
from gpufleet.store.task_records import TaskRecords

hub_app = typer.Typer(
    help="A hub: one view of a fleet's nodes; agents join it with --hub URL --token T.",
    invoke_without_command=True,
)
token_app = typer.Typer(help="The hub's access tokens.", no_args_is_help=True)
hub_app.add_typer(token_app, name="token")

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="The hub's store: postgresql://... for a fleet, or an SQLite path."),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (else $GPUFLEET_CONFIG).")
]
DEFAULT_PORT = 8100


def _open_hub(
    db: str | None,
    config: Path | None,
    unreachable_after_s: float | None = None,
    route_strategy: str = "least_loaded",
    engines: dict[str, Any] | None = None,
    *,
    create: bool = False,
) -> Hub:
    """The hub over the store named by --db (or the settings); only serving a hub or creating
    a token may create a new SQLite store, so a mistyped path is an error, not an empty hub."""
    from gpufleet.store import open_store
    from gpufleet.store.base import StoreError

    settings = settings_from(config, db=db)
    if not create and "://" not in settings.db and not Path(settings.db).exists():
        fail(
            f"no hub store at {settings.db}; pass the --db the hub runs with "
            "(an SQLite path or a postgresql:// URL)"
        )
    if not create and is_empty_file(settings.db):
        fail(
            f"{settings.db} is an empty file, not a gpufleet hub store; pass the --db the hub "
            "runs with (this command leaves the file as it is)"
        )
    try:
        store = open_store(settings.db)
    except StoreError as exc:
        fail(f"cannot open the hub's store: {exc}")
    if not isinstance(store, TaskRecords):
        store.close()
        fail(f"{settings.db}: this store cannot hold a hub's records")
    started_s = None
    if unreachable_after_s is None:
        # A command reading the store offline judges health as the serving hub does: its
        # timeout, and no grace for silence since it started (none if it never served).
        saved = store.hub_setting("unreachable_after_s")
        unreachable_after_s = float(saved) if saved is not None else UNREACHABLE_AFTER_S
        started_s = float(store.hub_setting("started_s") or 0.0)
    try:
        return Hub(
            store,
            unreachable_after_s=unreachable_after_s,
            route_strategy=route_strategy,
            engines=engines,
            started_s=started_s,
        )
    except ValueError as exc:
        store.close()
        fail(str(exc))


@hub_app.callback()
def hub(
    ctx: typer.Context,
    db: DbOpt = None,
    host: Annotated[str, typer.Option(help="Bind address (default 127.0.0.1)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help=f"Port (default {DEFAULT_PORT})")] = DEFAULT_PORT,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback --host.")
    ] = False,
    unreachable_after: Annotated[
        float,
        typer.Option(
            "--unreachable-after",
            help=f"Seconds without a heartbeat before a node is unreachable "
            f"(default {UNREACHABLE_AFTER_S:g})",
        ),
    ] = UNREACHABLE_AFTER_S,
    mdns: Annotated[
        bool, typer.Option("--mdns/--no-mdns", help="Browse _gpufleet._tcp.local. (default on)")
    ] = True,
    udp_port: Annotated[
        int,
        typer.Option(
            "--udp-port", help=f"Listen for UDP announcements (default {UDP_PORT}; 0: off)"
        ),
    ] = UDP_PORT,
    peer: Annotated[
        list[str] | None,
        typer.Option("--peer", help="An agent's URL to look up (static peer list; repeat)"),
    ] = None,
    route_strategy: Annotated[
        str,
        typer.Option(
            "--route-strategy",
            help="How /v1 model requests pick a node: least_loaded, round_robin, weighted, random",
        ),
    ] = "least_loaded",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="A Ray cluster's dashboard (http://head:8265): tasks submitted with "
            "--engine ray run there",
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the hub's API (a subcommand instead: manage tokens, list nodes).

    Discovery (mDNS, UDP, --peer) only lists agents at GET /fleet/v1/discovered; joining
    still needs a node-join token."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"db": db, "config": config}
        return
    if not 1 <= port <= 65535:
        fail(f"--port must be 1-65535, got {port}")
    if not is_loopback_host(host) and not allow_remote:
        fail(
            f"--host {host} would make the hub reachable from the network; add --allow-remote "
            "to confirm (every call still needs a token), or keep the default 127.0.0.1"
        )
    check_port_free(host, port)
    import uvicorn

    from gpufleet.api.hub_app import create_hub_app

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engines: dict[str, Any] = {}
    if ray_address is not None:
        from gpufleet.fleet.scaleout_ray import RayJobs

        try:
            engines["ray"] = RayJobs(ray_address)
        except ValueError as exc:
            fail(str(exc))
    the_hub = _open_hub(db, config, unreachable_after, route_strategy, engines, create=True)
    store: Any = the_hub.store
    the_hub.note_serving()
    if not store.has_tokens():
        err_console.print(
            "[bold yellow]note:[/] the hub has no tokens yet: create one with "
            f"`gpufleet hub token create --db {escape(str(db or '...'))} --name agents "
            "--scope node-join` (and an admin one with --scope admin)"
        )
    console.print(
        escape(
            f"gpufleet hub on http://{host}:{port} (docs: /docs); store "
            f"{store.backend} {store.health().location}; nodes unreachable after "
            f"{unreachable_after:g} s without a heartbeat"
        )
    )
    closers = _start_discovery(the_hub, mdns=mdns, udp_port=udp_port, peers=peer or [])
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(
            create_hub_app(the_hub, settings=settings_from(config, db=db)),
            host=host,
            port=port,
            log_level="warning",
        )
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        for close in closers:
            close()
        store.close()
        console.print("gpufleet hub stopped")


def _start_discovery(
    the_hub: Hub, *, mdns: bool, udp_port: int, peers: list[str]
) -> list[Callable[[], None]]:
    """Start the hub's discovery; the functions that stop it."""
    import httpx

    from gpufleet.fleet.discovery import MdnsBrowser, UdpListener, probe_static_peers

    closers: list[Callable[[], None]] = []
    if mdns:
        try:
            closers.append(MdnsBrowser(the_hub.discovery).close)
        except OSError as exc:
            err_console.print(f"[bold yellow]note:[/] mDNS browsing is off: {escape(str(exc))}")
    if udp_port:
        try:
            closers.append(UdpListener(the_hub.discovery, port=udp_port).close)
        except OSError as exc:
            err_console.print(
                f"[bold yellow]note:[/] not listening for UDP announcements on {udp_port}: "
                f"{escape(str(exc))}"
            )
    bad = [p for p in peers if not p.startswith(("http://", "https://"))]
    if bad:
        fail(f"--peer must be an http:// or https:// URL, got {bad[0]!r}")
    if peers:
        stop = threading.Event()

        def probe() -> None:
            def get(url: str) -> dict[str, Any]:
                answer: dict[str, Any] = httpx.get(url, timeout=5).json()
                return answer

            while not stop.is_set():
                probe_static_peers(the_hub.discovery, peers, get)
                stop.wait(30)

        thread = threading.Thread(target=probe, name="gpufleet-static-peers", daemon=True)
        thread.start()
        closers.append(stop.set)
    return closers


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _db_of(ctx: typer.Context, db: str | None) -> tuple[str | None, Path | None]:
    """``--db`` given to the subcommand, else to ``gpufleet hub`` (click passes ``obj`` down)."""
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    return db or obj.get("db"), obj.get("config")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="What the token is for (agents, ci, ...)")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="read | submit | admin | node-join (repeat for several)"),
    ],
    ttl_days: Annotated[
        float | None, typer.Option("--ttl-days", help="Expire after this many days")
    ] = None,
    db: DbOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the token as JSON.")] = False,
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from gpufleet.fleet.tokens import TokenError, check_scopes

    try:
        check_scopes(scope)  # before the store is opened: a bad call creates no store
    except TokenError as exc:
        fail(str(exc))
    if ttl_days is not None and ttl_days <= 0:
        fail(f"--ttl-days must be positive, got {ttl_days:g}")
    where, config = _db_of(ctx, db)
    the_hub = _open_hub(where, config, create=True)
    try:
        text, record = the_hub.create_token(
            name, scope, ttl_s=None if ttl_days is None else ttl_days * 86_400.0
        )
    except HubRequestError as exc:
        fail(exc.detail)
    finally:
        the_hub.store.close()  # type: ignore[attr-defined]
    if json_out:
        print_json({"token": text, "id": record.id, "name": name, "scopes": list(record.scopes)})
        return
    console.print(text, highlight=False, soft_wrap=True)
    err_console.print(
        f"token {record.id} ({', '.join(record.scopes)}): shown once, store it now; "
        f"revoke with `gpufleet hub token revoke {record.id}`"
    )


@token_app.command("list")
def token_list(
    ctx: typer.Context,
    db: DbOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every token (never its secret)."""
    where, config = _db_of(ctx, db)
    the_hub = _open_hub(where, config)
    store: Any = the_hub.store
    try:
        records = store.tokens()
    finally:
        store.close()
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "scopes": list(t.scopes),
            "expires_s": t.expires_s,
            "revoked_s": t.revoked_s,
        }
        for t in records
    ]
    if json_out:
        print_json({"tokens": rows})
        return
    table = Table("id", "name", "scopes", "state")
    now = the_hub.clock()
    for t in records:
        state = (
            "revoked"
            if t.revoked_s is not None
            else ("expired" if t.expires_s is not None and now >= t.expires_s else "valid")
        )
        table.add_row(t.id, escape(t.name), ", ".join(t.scopes), state)
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (8 hex digits)")],
    db: DbOpt = None,
) -> None:
    """Revoke a token: the hub refuses it from now on."""
    where, config = _db_of(ctx, db)
    the_hub = _open_hub(where, config)
    try:
        the_hub.revoke_token(token_id)
    except HubRequestError as exc:
        fail(exc.detail)
    finally:
        the_hub.store.close()  # type: ignore[attr-defined]
    console.print(f"revoked token {escape(token_id)}")


@hub_app.command("nodes")
def nodes(
    ctx: typer.Context,
    db: DbOpt = None,
    url: Annotated[str | None, typer.Option("--url", help="A running hub's URL")] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="GPUFLEET_HUB_TOKEN", help="A read token")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="healthy | degraded | unreachable | drained")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The hub's nodes and their health now."""
    if url is not None:
        data = get_json(url, "/fleet/v1/nodes", {"status": status}, token=token)
        listed = data["nodes"]
    else:
        where, config = _db_of(ctx, db)
        the_hub = _open_hub(where, config)
        try:
            views: list[NodeView] = the_hub.nodes(status=status)
        finally:
            the_hub.store.close()  # type: ignore[attr-defined]
        listed = [v.wire() for v in views]
    if json_out:
        print_json({"nodes": listed})
        return
    table = Table("cluster", "node", "status", "why", "last heartbeat", "pool", "zone")
    for n in listed:
        table.add_row(
            escape(n["cluster"]),
            escape(n["node"]),
            n["status"],
            escape("; ".join(n["reasons"])),
            n["last_heartbeat"] or "-",
            escape(n["pool"] or "-"),
            escape(n["zone"] or "-"),
        )
    console.print(table)
