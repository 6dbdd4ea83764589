"""Exporters: gpufleet's readings in other systems' formats.

``prometheus`` serves ``/metrics`` from the latest snapshot, with GPU series under
dcgm-exporter's names and labels (``dcgm_names``) so its dashboards work unchanged.
"""
