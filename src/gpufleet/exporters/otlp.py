"""Export the agent's metrics over OTLP/HTTP (protobuf) to an OpenTelemetry Collector.

Optional: it needs ``pip install 'gpufleet[otel]'`` (opentelemetry-sdk and
opentelemetry-exporter-otlp-proto-http). This module imports them only inside its functions,
so it, and the agent, import without them; asking for the export without them is one clear
error at start-up.

The agent turns the export on when told to (``--otlp``, ``GPUFLEET_OTLP=1``, ``otlp = true``)
or, when not told either way, when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is set. It uses a meter provider of its own (the
process-global one is left alone), whose periodic reader calls the instruments of
:mod:`.otlp_metrics` at each export. Applications that embed gpufleet and have their own
provider call :func:`instrument_live_state` (or :func:`register_resource_metrics`) instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gpufleet import __version__
from gpufleet.agent.live import LiveState
from gpufleet.exporters.otlp_config import (
    ENDPOINT,
    METRICS_ENDPOINT,
    OtlpConfig,
    OtlpConfigError,
    load_otlp_config,
    otlp_requested,
)
from gpufleet.exporters.otlp_metrics import LIVE_METRICS, instrument_live_state
from gpufleet.exporters.otlp_readings import register_resource_metrics, resource_meter

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter

__all__ = [
    "INSTALL_HINT",
    "LIVE_METRICS",
    "OtlpConfig",
    "OtlpConfigError",
    "OtlpExport",
    "OtlpUnavailableError",
    "instrument_live_state",
    "missing_packages",
    "otlp_export_for",
    "register_resource_metrics",
    "resource_meter",
]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'gpufleet[otel]'"

# Module -> the distribution that provides it, for the install message.
_NEEDED = (
    ("opentelemetry.sdk.metrics", "opentelemetry-sdk"),
    (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "opentelemetry-exporter-otlp-proto-http",
    ),
)
_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.metric_exporter"
_REASON_CHARS = 400


class OtlpUnavailableError(ValueError):
    """OTLP export was asked for, but the OpenTelemetry SDK or exporter is not installed."""


def missing_packages() -> list[str]:
    """Distributions the export needs that cannot be imported (empty when all are there)."""
    missing = []
    for module, distribution in _NEEDED:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package is missing
            found = False
        if not found:
            missing.append(distribution)
    return missing


class _HoldBack(logging.Filter):
    """Holds back the OTLP exporter's own log records while gpufleet's wrapper exports.

    The SDK logs every retry and every failed export; the agent instead logs one line when
    exports start failing and one when they work again. The first held-back message is kept
    as the reason. Records of other threads (or outside an export) pass.
    """

    def __init__(self) -> None:
        super().__init__()
        self._thread: int | None = None
        self.reason: str | None = None

    def begin(self) -> None:
        self._thread = threading.get_ident()
        self.reason = None

    def end(self) -> None:
        self._thread = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self._thread is None or record.thread != self._thread:
            return True
        if self.reason is None:
            self.reason = record.getMessage()[:_REASON_CHARS]
        return False


class OtlpExport:
    """The agent's OTLP export: checked when built, exporting once :meth:`start` ran.

    Args:
        live: Where the sampler publishes snapshots.
        config: Endpoint, headers, intervals (see :func:`load_otlp_config`).
        cluster: The agent's cluster, a resource attribute.
        node: The agent's node, the resource's ``host.name``.

    Raises:
        OtlpUnavailableError: the SDK or the OTLP/HTTP exporter is not installed.
    """

    def __init__(self, live: LiveState, config: OtlpConfig, *, cluster: str, node: str) -> None:
        if missing := missing_packages():
            raise OtlpUnavailableError(_install_message(missing))
        self.config = config
        self._live = live
        self._cluster = cluster
        self._node = node
        self._provider: MeterProvider | None = None
        self._lock = threading.Lock()
        self._failing = False
        self.exports_ok = 0
        """Exports the receiver accepted."""
        self.exports_failed = 0
        """Exports that failed (receiver down, refused, timed out)."""

    @property
    def endpoint(self) -> str:
        """The URL metrics are sent to."""
        return self.config.endpoint

    def start(self) -> None:
        """Build the meter provider and its periodic reader; the first export follows one
        ``export_interval_s`` later. Calling it again does nothing."""
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        with self._lock:
            if self._provider is not None:
                return
            config = self.config
            reader = PeriodicExportingMetricReader(
                _reporting(self, _otlp_exporter(config)),
                export_interval_millis=config.export_interval_s * 1000,
                export_timeout_millis=config.export_timeout_s * 1000,
            )
            attributes = {
                "service.name": "gpufleet",
                "service.version": __version__,
                "service.instance.id": f"{self._cluster}/{self._node}",
                "host.name": self._node,
                "gpufleet.cluster": self._cluster,
                **config.resource_attributes,
            }
            provider = MeterProvider(
                resource=Resource.create(attributes),
                metric_readers=[reader],
                shutdown_on_exit=False,
            )
            instrument_live_state(self._live, provider)
            self._provider = provider

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Collect and export now; False when not started or the export did not finish."""
        provider = self._provider
        return provider is not None and provider.force_flush(timeout_millis=timeout_s * 1000)

    def shutdown(self) -> None:
        """Export the newest readings one last time, then stop (idempotent)."""
        with self._lock:
            provider, self._provider = self._provider, None
        if provider is not None:
            provider.shutdown(timeout_millis=self.config.export_timeout_s * 1000)

    def _exported(self, ok: bool, reason: str | None) -> None:
        """Count an export; log the first failure of an outage and the recovery."""
        if ok:
            self.exports_ok += 1
            if self._failing:
                log.info("OTLP export to %s works again", self.endpoint)
            self._failing = False
            return
        self.exports_failed += 1
        if not self._failing:
            log.warning(
                "OTLP export to %s failed (%s); the agent keeps sampling and tries again at "
                "each export (every %g s); this is logged again only after exports recover",
                self.endpoint,
                reason or "no reason given",
                self.config.export_interval_s,
            )
        self._failing = True


def _otlp_exporter(config: OtlpConfig) -> MetricExporter:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(
        endpoint=config.endpoint,
        certificate_file=config.certificate_file,
        client_key_file=config.client_key_file,
        client_certificate_file=config.client_certificate_file,
        headers=dict(config.headers),
        timeout=config.timeout_s,
        compression=Compression(config.compression),
    )


def _reporting(owner: OtlpExport, inner: MetricExporter) -> MetricExporter:
    """``inner`` wrapped so that each export is counted and an outage is logged once."""
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    hold_back = _HoldBack()

    class ReportingExporter(MetricExporter):
        def __init__(self) -> None:
            # The reader asks the exporter for its temporality and aggregation preferences;
            # these must be the OTLP exporter's own (which honour
            # OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE).
            super().__init__(
                preferred_temporality=inner._preferred_temporality,
                preferred_aggregation=inner._preferred_aggregation,
            )
            logging.getLogger(_EXPORTER_LOGGER).addFilter(hold_back)

        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            hold_back.begin()
            try:
                result = inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            except Exception as exc:  # the reader would log a traceback per export
                hold_back.reason = hold_back.reason or f"{type(exc).__name__}: {exc}"
                result = MetricExportResult.FAILURE
            finally:
                hold_back.end()
            owner._exported(result is MetricExportResult.SUCCESS, hold_back.reason)
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return inner.force_flush(timeout_millis=timeout_millis)

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            try:
                inner.shutdown(timeout_millis=timeout_millis, **kwargs)
            finally:
                logging.getLogger(_EXPORTER_LOGGER).removeFilter(hold_back)

    return ReportingExporter()


def _install_message(missing: list[str]) -> str:
    return (
        f"OTLP export needs {' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'}"
        f" not installed: {INSTALL_HINT}"
    )


def otlp_export_for(
    setting: bool | None,
    live: LiveState,
    *,
    cluster: str,
    node: str,
    environ: Mapping[str, str] | None = None,
    probe: Callable[[], list[str]] = missing_packages,
) -> OtlpExport | None:
    """The agent's OTLP export as settings and environment ask, not started; None when off.

    Args:
        setting: ``Settings.otlp``: True/False when the user said so, None to decide from
            the environment (on when an OTLP endpoint variable is set).
        live: Where the sampler publishes snapshots.
        cluster: The agent's cluster.
        node: The agent's node.
        environ: The environment (default ``os.environ``).
        probe: Lists the missing packages (injected by tests).

    Raises:
        OtlpConfigError: an ``OTEL_*`` variable is malformed (the message names it).
        OtlpUnavailableError: the export was asked for explicitly and the packages are
            missing. When only the environment asked, one warning is logged instead and
            the agent runs without the export.
    """
    env = os.environ if environ is None else environ
    if not otlp_requested(setting, env):
        return None
    config = load_otlp_config(env)
    if missing := probe():
        message = _install_message(missing)
        if setting:
            raise OtlpUnavailableError(message)
        var = METRICS_ENDPOINT if env.get(METRICS_ENDPOINT, "").strip() else ENDPOINT
        log.warning("%s is set, but %s; the agent runs without OTLP export", var, message)
        return None
    return OtlpExport(live, config, cluster=cluster, node=node)
