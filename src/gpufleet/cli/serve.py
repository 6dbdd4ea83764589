"""Run an agent: start the sampler, serve the API with uvicorn, stop cleanly on Ctrl-C."""

from __future__ import annotations

import logging
import socket

import uvicorn

from gpufleet.agent.context import AgentContext
from gpufleet.api.app import create_app
from gpufleet.cli.common import console, fail
from gpufleet.settings import Settings


def check_bind(settings: Settings) -> None:
    """Refuse a non-loopback bind unless --allow-remote was given; say so when it was."""
    if settings.is_loopback:
        return
    if not settings.allow_remote:
        fail(
            f"--host {settings.host} would make the API reachable from the network; "
            "add --allow-remote to confirm, or keep the default 127.0.0.1"
        )
    console.print(
        f"[bold yellow]warning:[/] the API is reachable from the network on "
        f"{settings.host}:{settings.port} (no authentication on the node agent's read endpoints)"
    )


def check_port_free(host: str, port: int) -> None:
    """Fail with a one-line message when ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror}; choose another --port")


def serve(ctx: AgentContext) -> None:
    """Start sampling and serve until interrupted; the store is flushed and closed on exit."""
    settings = ctx.settings
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(ctx)
    status = ctx.live.gpu_status
    gpus = (
        f"{status.gpu_count} GPU(s) via {status.source}"
        if status.available
        else (f"no GPUs ({status.reason})")
    )
    store = (
        "no store" if ctx.store is None else f"{ctx.store.backend} {ctx.store.health().location}"
    )
    console.print(
        f"gpufleet agent [bold]{ctx.instance_id}[/]: {gpus}; history in {store}; "
        f"sampling every {settings.interval_s:g} s"
    )
    console.print(
        f"API on http://{settings.host}:{settings.port}  (docs: /docs, metrics: /metrics)"
    )
    if ctx.sampler is not None:
        ctx.sampler.start()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        ctx.shutdown()
        console.print("gpufleet agent stopped; history flushed")
