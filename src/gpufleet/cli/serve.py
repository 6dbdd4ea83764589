"""Run an agent: start the sampler, serve the API with uvicorn, stop cleanly on Ctrl-C."""

from __future__ import annotations

import errno
import logging
import signal
import socket
from collections.abc import Callable
from types import FrameType

from rich.markup import escape

from gpufleet.agent.context import AgentContext
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
        f"{escape(settings.host)}:{settings.port} (no authentication on the node agent's read "
        "endpoints)"
    )


def check_port_free(host: str, port: int) -> None:
    """Fail with a one-line message when ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            hint = (
                "choose another --port"
                if exc.errno == errno.EADDRINUSE
                else "check --host: it must be an address of this machine"
            )
            fail(f"cannot listen on {host}:{port}: {exc.strerror}; {hint}")


def serve(ctx: AgentContext) -> None:
    """Start sampling and serve until interrupted; the store is flushed and closed on exit."""
    import uvicorn

    from gpufleet.api.app import create_app

    settings = ctx.settings
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per push to a hub would drown the agent's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(ctx)
    status = ctx.live.gpu_status
    gpus = (
        f"{status.gpu_count} GPU(s) via {status.source}"
        if status.available
        else (f"no GPUs ({status.reason})")
    )
    store = (
        "no history kept (--no-store)"
        if ctx.store is None
        else f"history in {ctx.store.backend} {ctx.store.health().location}"
    )
    console.print(
        f"gpufleet agent [bold]{escape(ctx.instance_id)}[/]: {escape(gpus)}; {escape(store)}; "
        f"sampling every {settings.interval_s:g} s"
    )
    console.print(
        escape(f"API on http://{settings.host}:{settings.port}  (docs: /docs, metrics: /metrics)")
    )
    if ctx.sampler is not None:
        ctx.sampler.start()
    if ctx.kvcache is not None:
        ctx.kvcache.start()
        console.print(
            escape(
                f"scraping KV-cache metrics of {len(ctx.kvcache.sources)} vLLM/LMCache "
                f"source(s) every {ctx.kvcache.interval_s:g} s (/lmcache/status)"
            )
        )
    if ctx.otlp is not None:
        ctx.otlp.start()
        console.print(
            escape(
                f"exporting metrics over OTLP/HTTP to {ctx.otlp.endpoint} every "
                f"{ctx.otlp.config.export_interval_s:g} s"
            )
        )
    if ctx.hub_pusher is not None:
        console.print(
            escape(
                f"pushing samples to the hub {ctx.hub_pusher.hub_url} "
                f"(kept on disk in {ctx.hub_pusher.spool.path} while it is away)"
            )
        )
        ctx.hub_pusher.start()
    announcers = _advertise(ctx) if settings.hub.advertise else []
    # uvicorn re-raises the signal that stopped it once it has shut down; with SIGTERM's
    # default action that would kill the process before the store is flushed.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        for close in announcers:
            close()
        ctx.shutdown()
        flushed = "" if ctx.store is None else "; history flushed"
        console.print(f"gpufleet agent stopped{flushed}")


def _advertise(ctx: AgentContext) -> list[Callable[[], None]]:
    """Announce the agent on the LAN (mDNS and UDP broadcast); the functions that stop it."""
    from gpufleet.fleet.discovery import MdnsAdvertiser, UdpAnnouncer

    settings = ctx.settings
    url = settings.hub.advertise_url or f"http://{settings.host}:{settings.port}"
    closers: list[Callable[[], None]] = []
    try:
        closers.append(MdnsAdvertiser(settings.cluster, settings.node, url).close)
    except OSError as exc:
        console.print(f"[bold yellow]note:[/] not advertised over mDNS: {escape(str(exc))}")
    closers.append(UdpAnnouncer(settings.cluster, settings.node, url).close)
    console.print(escape(f"announcing {ctx.instance_id} at {url} on the LAN (mDNS, UDP)"))
    return closers


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)
