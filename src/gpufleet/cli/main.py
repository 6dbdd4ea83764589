"""``gpufleet`` command line: thin wrappers over the agent, store and API layers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from gpufleet import __version__
from gpufleet.cli import (
    alerts_cmd,
    allocate_cmd,
    analyze_cmd,
    ask_cmd,
    demo_cmd,
    history_cmd,
    hub_cmd,
    hub_groups_cmd,
    import_cmd,
    kvcache_cmd,
    lease_cmd,
    mcp_cmd,
    optimize_cmd,
    status_cmd,
    task_cmd,
)
from gpufleet.cli.common import console, fail, guarded, settings_from
from gpufleet.cli.serve import check_bind, check_port_free, serve
from gpufleet.settings import HubSettings, KvCacheSettings

app = typer.Typer(
    name="gpufleet",
    help="Watch GPUs and the machines around them, keep their history, explain their use.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (else $GPUFLEET_CONFIG).")
]


def _version(value: bool) -> None:
    if value:
        console.print(f"gpufleet {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """gpufleet."""


@app.command()
def agent(
    source: Annotated[str | None, typer.Option(help="auto | nvml | sim (default auto)")] = None,
    sim_gpus: Annotated[int | None, typer.Option(help="GPUs of the sim source (default 8)")] = None,
    sim_model: Annotated[str | None, typer.Option(help="GPU model of the sim source")] = None,
    interval: Annotated[
        float | None, typer.Option(help="Seconds between samples (default 2)")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help="SQLite path or postgresql:// URL (default ~/.local/share/gpufleet/gpufleet.db)"
        ),
    ] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Keep no history.")] = False,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8003)")] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback --host.")
    ] = False,
    cluster: Annotated[str | None, typer.Option(help="Cluster name (default: host name)")] = None,
    node: Annotated[str | None, typer.Option(help="Node name (default: host name)")] = None,
    idle_threshold: Annotated[
        float | None,
        typer.Option(
            "--idle-threshold",
            help="Idle below this utilization % (idle_threshold_pct; default 5): alerts, and "
            "the default of the API's analyses",
        ),
    ] = None,
    hub: Annotated[
        str | None, typer.Option("--hub", help="Push samples to this hub (http://hub:8100)")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="The hub's node-join token (or $GPUFLEET_HUB__TOKEN)"),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="key=value label for the hub (repeat for several)"),
    ] = None,
    zone: Annotated[str | None, typer.Option(help="This node's zone, for the hub")] = None,
    pool: Annotated[str | None, typer.Option(help="The hub pool this node joins")] = None,
    advertise: Annotated[
        bool,
        typer.Option(
            "--advertise", help="Announce this agent on the LAN (mDNS and UDP) for hubs to list"
        ),
    ] = False,
    model_server: Annotated[
        list[str] | None,
        typer.Option(
            "--model-server",
            help="A model server on this node (http://node:11434) whose models the hub "
            "routes to (repeatable)",
        ),
    ] = None,
    run_tasks: Annotated[
        bool,
        typer.Option(
            "--run-tasks",
            help="Run the task parts the hub places on this node (commands of any submit "
            "token, as this agent's user)",
        ),
    ] = False,
    otlp: Annotated[
        bool | None,
        typer.Option(
            "--otlp/--no-otlp",
            help="Export metrics over OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT (default "
            "http://localhost:4318; needs gpufleet[otel]). Default: on when that variable is set",
        ),
    ] = None,
    vllm_url: Annotated[
        list[str] | None,
        typer.Option(
            "--vllm-url",
            help="Scrape this vLLM server's KV-cache metrics (/lmcache/*; repeatable)",
        ),
    ] = None,
    lmcache_url: Annotated[
        list[str] | None,
        typer.Option("--lmcache-url", help="Scrape this LMCache MP server's /metrics (repeatable)"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Sample this machine's GPUs and host, keep history, raise alerts, serve the API; with
    --hub, also push the samples to a hub (buffered on disk while it is away) and, with
    --run-tasks, run the hub's tasks."""
    labels = None
    if label:
        labels = {}
        for item in label:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                fail(f"--label must be key=value, got {item!r}")
            labels[key.strip()] = value.strip()
    hub_flags = {
        "url": hub,
        "token": token,
        "labels": labels,
        "zone": zone,
        "pool": pool,
        "advertise": advertise or None,
        "run_tasks": run_tasks or None,
        "model_servers": model_server or None,
    }
    hub_given = {k: v for k, v in hub_flags.items() if v is not None}
    settings = settings_from(
        config,
        source=source,
        sim_gpus=sim_gpus,
        sim_model=sim_model,
        interval_s=interval,
        db=db,
        host=host,
        port=port,
        allow_remote=allow_remote or None,
        cluster=cluster,
        node=node,
        idle_threshold_pct=idle_threshold,
        otlp=otlp,
    )
    if hub_given:
        merged = {**settings.hub.model_dump(), **hub_given}
        try:
            settings = settings.model_copy(update={"hub": HubSettings(**merged)})
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"invalid hub setting {'.'.join(str(x) for x in first['loc'])}: {first['msg']}")
    if vllm_url or lmcache_url:
        kv = {**settings.kvcache.model_dump()}
        kv.update({k: v for k, v in (("vllm_urls", vllm_url), ("lmcache_urls", lmcache_url)) if v})
        try:
            settings = settings.model_copy(update={"kvcache": KvCacheSettings(**kv)})
        except ValidationError as exc:
            fail(f"invalid kvcache setting: {exc.errors()[0]['msg']}")
    check_bind(settings)
    check_port_free(settings.host, settings.port)
    from gpufleet.agent.runner import build_agent

    ctx = guarded(lambda: build_agent(settings, with_store=not no_store), "cannot start the agent")
    serve(ctx)


app.command(name="status")(status_cmd.status)
app.command(name="history")(history_cmd.history)
app.command(name="alerts")(alerts_cmd.alerts)
app.command(name="demo")(demo_cmd.demo)
app.add_typer(analyze_cmd.analyze_app, name="analyze")
app.command(name="recommend")(optimize_cmd.recommend)
app.command(name="execute")(optimize_cmd.execute)
app.command(name="executions")(optimize_cmd.executions)
app.add_typer(import_cmd.import_app, name="import")
app.command(name="ask")(ask_cmd.ask)
app.command(name="chat")(ask_cmd.chat)
app.add_typer(ask_cmd.sessions_app, name="sessions")
app.command(name="mcp")(mcp_cmd.mcp)
app.add_typer(allocate_cmd.allocate_app, name="allocate")
app.add_typer(hub_cmd.hub_app, name="hub")
hub_cmd.hub_app.add_typer(hub_groups_cmd.group_app, name="group")
hub_cmd.hub_app.add_typer(hub_groups_cmd.pool_app, name="pool")
del lease_cmd  # its commands join the allocate group when it is imported
app.command(name="submit")(task_cmd.submit)
app.add_typer(task_cmd.tasks_app, name="tasks")
app.add_typer(kvcache_cmd.kvcache_app, name="kvcache")


def main() -> None:
    """Console-script entry point."""
    app()
