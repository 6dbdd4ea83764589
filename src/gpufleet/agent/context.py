"""What a running agent shares with its API: settings, live state, store, sampler, alerts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpufleet.agent.live import LiveState
from gpufleet.collectors.base import GpuSource
from gpufleet.settings import Settings
from gpufleet.store.base import Store

if TYPE_CHECKING:
    from gpufleet.agent.alerts import AlertEngine
    from gpufleet.agent.hub_push import HubPusher
    from gpufleet.agent.sampler import Sampler
    from gpufleet.agent.webhook import WebhookNotifier
    from gpufleet.exporters.otlp import OtlpExport
    from gpufleet.kvcache.poller import KvCacheMonitor


@dataclass
class AgentContext:
    """Injected into the API app factory; the CLI builds it."""

    settings: Settings
    live: LiveState
    store: Store | None
    sampler: Sampler | None = None
    alerts: AlertEngine | None = None
    notifier: WebhookNotifier | None = None
    gpu_source: GpuSource | None = None
    hub_pusher: HubPusher | None = None
    """Pushes samples to a hub (``--hub``); None for a standalone agent."""
    otlp: OtlpExport | None = None
    """Exports metrics over OTLP (``--otlp``, or an OTEL_EXPORTER_OTLP_* endpoint); None: off."""
    kvcache: KvCacheMonitor | None = None
    """Scrapes vLLM / LMCache metrics (``[kvcache]`` URLs); None when none are configured."""
    started_s: float = field(default_factory=time.time)

    @property
    def instance_id(self) -> str:
        """``cluster/node``: names this agent in responses (seed 002's instance_id)."""
        return f"{self.settings.cluster}/{self.settings.node}"

    def shutdown(self) -> None:
        """Stop sampling, flush history, release NVML, deliver queued alerts, close the store."""
        if self.sampler is not None:
            self.sampler.stop()
        if self.otlp is not None:
            # After the sampler: the last export carries the last snapshot.
            self.otlp.shutdown()
        if self.hub_pusher is not None:
            self.hub_pusher.stop()
            self.hub_pusher.spool.close()
        if self.alerts is not None:
            self.alerts.close()
        if self.kvcache is not None:
            self.kvcache.stop()
        if self.gpu_source is not None:
            self.gpu_source.close()
        if self.notifier is not None:
            self.notifier.close()
        if self.store is not None:
            self.store.close()
