"""Assemble a running agent from settings: sources, store, sampler, alerts (no HTTP here)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from gpufleet.agent.alerts import AlertEngine
from gpufleet.agent.context import AgentContext
from gpufleet.agent.hub_push import HubPusher
from gpufleet.agent.hub_spool import HubSpool
from gpufleet.agent.lease_ledger import LeaseLedger
from gpufleet.agent.live import LiveState
from gpufleet.agent.model_probe import ModelProbe
from gpufleet.agent.sampler import Sampler
from gpufleet.agent.task_runner import TaskRunner
from gpufleet.agent.webhook import WebhookNotifier
from gpufleet.collectors.base import GpuSource, SystemSource
from gpufleet.collectors.procs import ProcessAttributor
from gpufleet.collectors.registry import open_gpu_source
from gpufleet.collectors.system import PsutilSystemSource
from gpufleet.exporters.otlp import otlp_export_for
from gpufleet.fleet.inventory import inventory_of
from gpufleet.kvcache.poller import monitor_for
from gpufleet.model import Snapshot
from gpufleet.settings import Settings, default_db_path
from gpufleet.store import open_store
from gpufleet.store.base import Store

log = logging.getLogger(__name__)


def open_sources(settings: Settings) -> tuple[GpuSource, SystemSource]:
    """The GPU source named in settings and the host source.

    Raises:
        SourceUnavailableError: ``nvml`` was asked for and cannot run.
        ValueError: unknown source or simulated model.
    """
    gpu = open_gpu_source(
        settings.source,
        node=settings.node,
        sim_gpus=settings.sim_gpus,
        sim_model=settings.sim_model,
        sim_seed=settings.sim_seed,
    )
    return gpu, PsutilSystemSource()


def build_agent(settings: Settings, *, with_store: bool = True) -> AgentContext:
    """Everything an agent needs, not yet started.

    Raises:
        StoreError: the database cannot be opened (the message says why).
        SourceUnavailableError: see :func:`open_sources`.
        OtlpConfigError: an ``OTEL_*`` variable is malformed (OTLP export on).
        OtlpUnavailableError: ``--otlp`` without the ``gpufleet[otel]`` packages.
    """
    gpu, system = open_sources(settings)
    store: Store | None = None
    if with_store:
        try:
            store = open_store(
                settings.db,
                retention=settings.retention.to_retention(),
                idle_threshold_pct=settings.idle_threshold_pct,
            )
        except BaseException:
            gpu.close()
            raise
    live = LiveState(gpu.status)
    try:
        # Checked now so that a malformed OTEL_* variable stops the start, naming it.
        otlp = otlp_export_for(settings.otlp, live, cluster=settings.cluster, node=settings.node)
    except ValueError:
        gpu.close()
        if store is not None:
            store.close()
        raise
    notify = None
    if settings.alerts.webhook_url:
        notify = WebhookNotifier(
            settings.alerts.webhook_url, timeout_s=settings.alerts.webhook_timeout_s
        )
    alerts = (
        AlertEngine(
            settings.alerts,
            idle_threshold_pct=settings.idle_threshold_pct,
            store=store,
            notify=notify,
            cluster=settings.cluster,
            node=settings.node,
        )
        if settings.alerts.enabled
        else None
    )
    attributor = ProcessAttributor(settings.proc_root, team_map=settings.team_map)
    # Simulated processes carry their own attribution; /proc knows nothing of them.
    enrich = None if gpu.name == "sim" else attributor.enrich
    pusher = _hub_pusher(settings, live) if settings.hub.url else None
    kvcache = monitor_for(
        settings.kvcache, store, retention_s=settings.retention.to_retention().raw_s
    )
    sampler = Sampler(
        gpu,
        system,
        live,
        cluster=settings.cluster,
        node=settings.node,
        interval_s=settings.interval_s,
        store=store,
        flush_interval_s=settings.flush_interval_s,
        enrich=enrich,
        alerts=alerts,
        tap=None if pusher is None else pusher.append,
    )
    return AgentContext(
        settings=settings,
        live=live,
        store=store,
        sampler=sampler,
        alerts=alerts,
        notifier=notify,
        gpu_source=gpu,
        hub_pusher=pusher,
        kvcache=kvcache,
        otlp=otlp,
    )


def _hub_pusher(settings: Settings, live: LiveState) -> HubPusher:
    """The pusher of ``settings.hub`` with its disk spool (beside the database by default)."""
    hub = settings.hub
    if hub.url is None or hub.token is None:
        raise ValueError("a hub pusher needs the hub's url and a token")
    spool_path = hub.spool or str(
        (Path(settings.db).parent if "://" not in settings.db else default_db_path().parent)
        / f"hub-spool-{settings.cluster}-{settings.node}.db"
    )
    spool = HubSpool(spool_path, max_snapshots=hub.spool_max_snapshots)
    ledger = LeaseLedger(
        Path(spool_path).with_name(f"hub-leases-{settings.cluster}-{settings.node}.json")
    )
    identity = {
        "cluster": settings.cluster,
        "node": settings.node,
        "url": hub.advertise_url or f"http://{settings.host}:{settings.port}",
        "labels": dict(hub.labels),
        "zone": hub.zone,
        "pool": hub.pool,
    }

    probe = ModelProbe(hub.model_servers) if hub.model_servers else None

    def inventory(snap: Snapshot | None) -> dict[str, Any]:
        inv = inventory_of(snap)
        if probe is not None:
            inv["models"] = probe.models()
        return inv

    def health() -> dict[str, Any]:
        snap = live.latest
        if snap is None:
            return {"health_check": {"samples": 0}, "inventory": inventory(None)}
        system = snap.system
        return {
            "gpus_lost": sum(1 for g in snap.gpus if g.lost),
            "gpu_errors": sum(
                len(g.xid_errors) + int(bool(g.ecc_uncorrected_total)) for g in snap.gpus
            ),
            "health_check": {
                "gpus": len(snap.gpus),
                "cpu_pct": None if system is None else system.cpu_pct,
                "mem_pct": None if system is None else system.mem_pct,
                "allocated_gpus": sum(1 for g in snap.gpus if g.allocated),
                "last_sample_ts_s": snap.ts_s,
            },
            "inventory": inventory(snap),
        }

    return HubPusher(
        hub.url,
        hub.token,
        spool,
        identity,
        health=health,
        interval_s=hub.push_interval_s,
        ledger=ledger,
        tasks=TaskRunner(hub.task_dir or Path(spool_path).with_name("hub-tasks"))
        if hub.run_tasks
        else None,
    )


def sample_local(settings: Settings, settle_s: float = 0.3) -> tuple[LiveState, Snapshot]:
    """Read this machine once (for ``gpufleet status`` without ``--url``).

    Two passes ``settle_s`` apart so CPU and rate readings cover a real interval.
    """
    gpu, system = open_sources(settings)
    try:
        live = LiveState(gpu.status)
        attributor = ProcessAttributor(settings.proc_root, team_map=settings.team_map)
        sampler = Sampler(
            gpu,
            system,
            live,
            cluster=settings.cluster,
            node=settings.node,
            interval_s=max(settle_s, 0.01),
            enrich=None if gpu.name == "sim" else attributor.enrich,
        )
        sampler.sample_once()
        time.sleep(settle_s)
        return live, sampler.sample_once()
    finally:
        gpu.close()
