"""Exporters: gpufleet's readings in other systems' formats.

``prometheus`` serves ``/metrics`` from the latest snapshot, with GPU series under
dcgm-exporter's names and labels (``dcgm_names``) so its dashboards work unchanged.
``otlp`` pushes the same readings over OTLP/HTTP under OpenTelemetry semantic-convention
names (``otlp_metrics``), configured by the ``OTEL_*`` variables (``otlp_config``); it needs
the optional ``gpufleet[otel]`` packages. ``otlp_readings`` turns any callable of named
readings into observable gauges.
"""
