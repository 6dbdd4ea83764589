"""gpufleet recording into an application's own OpenTelemetry MeterProvider (seed 004):
:func:`instrument_live_state` over a given or the global provider, and
:func:`register_resource_metrics` over a callable of named readings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData

from gpufleet.agent.live import LiveState
from gpufleet.exporters.otlp import (
    LIVE_METRICS,
    instrument_live_state,
    register_resource_metrics,
    resource_meter,
)
from gpufleet.exporters.otlp_readings import unit_for
from gpufleet.model import GpuSample, GpuSourceStatus, Snapshot

ROOT = Path(__file__).resolve().parents[2]
STATUS = GpuSourceStatus(source="nvml", available=True, gpu_count=1, library_installed=True)


def _points(
    data: MetricsData | None,
) -> dict[str, tuple[str, list[tuple[dict[str, object], float]]]]:
    assert data is not None
    out: dict[str, tuple[str, list[tuple[dict[str, object], float]]]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "gpufleet"
            for metric in sm.metrics:
                points: list[tuple[dict[str, object], float]] = [
                    (dict(p.attributes or {}), float(getattr(p, "value")))  # noqa: B009
                    for p in metric.data.data_points
                ]
                out[metric.name] = (metric.unit or "", points)
    return out


def test_instruments_record_into_a_given_provider() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    live = LiveState(STATUS)
    instruments = instrument_live_state(live, provider)
    assert len(instruments) == len(LIVE_METRICS)
    try:
        # Before any sample: only what the agent knows of itself.
        before = _points(reader.get_metrics_data())
        assert "hw.gpu.utilization" not in before
        assert before["gpufleet.agent.samples"][1] == [({}, 0)]
        gpu = GpuSample(uuid="GPU-a", index=0, util_gpu_pct=25.0, power_w=80.5)
        live.publish(Snapshot(1.0, "c", "n", (gpu,), None, 2.0))
        after = _points(reader.get_metrics_data())
        unit, util = after["hw.gpu.utilization"]
        assert unit == "1"
        assert util == [
            (
                {
                    "hw.type": "gpu",
                    "hw.id": "GPU-a",
                    "gpu.index": 0,
                    "host.name": "n",
                    "gpufleet.cluster": "c",
                    "hw.gpu.task": "general",
                },
                0.25,
            )
        ]
        assert after["hw.power"][1][0][1] == 80.5
    finally:
        provider.shutdown()


_GLOBAL = """
import json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from gpufleet.agent.live import LiveState
from gpufleet.exporters.otlp import instrument_live_state
from gpufleet.model import GpuSample, GpuSourceStatus, Snapshot

live = LiveState(GpuSourceStatus(source="sim", available=True, gpu_count=1,
                                 library_installed=True))
# gpufleet registers first, against the global provider still unset (a proxy) ...
instrument_live_state(live)
# ... then the application sets its own provider: the instruments follow it.
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
live.publish(Snapshot(1.0, "c", "n", (GpuSample(uuid="GPU-g", index=0, mem_used_bytes=7),),
                      None, 2.0))
out = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            out[m.name] = [p.value for p in m.data.data_points]
print(json.dumps(out))
"""


def test_instruments_follow_the_global_provider_set_later() -> None:
    # A subprocess: the global provider can be set once per process.
    proc = subprocess.run(
        [sys.executable, "-c", _GLOBAL],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    got = json.loads(proc.stdout)
    assert got["hw.gpu.memory.usage"] == [7]
    assert got["gpufleet.agent.samples"] == [1]


def test_readings_become_gauges_read_once_per_export() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    calls: list[int] = []
    readings: dict[str, float | None] = {
        "gpu_mem_used_bytes": 2.0**30,
        "cpu_pct": 37.5,
        "temp_c": None,
        "power_w": 120.0,
    }

    def read() -> dict[str, float | None]:
        calls.append(1)
        return dict(readings)

    try:
        meter = resource_meter(provider)
        gauges = register_resource_metrics(meter, read, attributes={"host.name": "box"})
        assert len(gauges) == 4
        assert len(calls) == 1  # the keys were read off one call
        got = _points(reader.get_metrics_data())
        assert len(calls) == 2  # one export, one read, four gauges
        assert got["gpufleet.resource.gpu_mem_used_bytes"] == (
            "By",
            [({"host.name": "box"}, 2.0**30)],
        )
        assert got["gpufleet.resource.cpu_pct"] == ("%", [({"host.name": "box"}, 37.5)])
        assert got["gpufleet.resource.power_w"][0] == "W"
        # Unknown: no point, never 0.
        assert "gpufleet.resource.temp_c" not in got
        readings["temp_c"] = 61.0
        del readings["power_w"]
        got = _points(reader.get_metrics_data())
        assert len(calls) == 3
        assert got["gpufleet.resource.temp_c"] == ("Cel", [({"host.name": "box"}, 61.0)])
        assert "gpufleet.resource.power_w" not in got
    finally:
        provider.shutdown()


def test_reading_keys_given_and_checked() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    try:
        meter = resource_meter(provider)
        register_resource_metrics(
            meter,
            lambda: {"queue_depth": 3.0},
            keys=["queue_depth"],
            prefix="app.",
            units={"queue_depth": "{request}"},
            descriptions={"queue_depth": "Requests waiting."},
        )
        got = _points(reader.get_metrics_data())
        assert got["app.queue_depth"] == ("{request}", [({}, 3.0)])
        with pytest.raises(ValueError, match="not valid"):
            register_resource_metrics(meter, lambda: {"mem used": 1.0})
        with pytest.raises(TypeError, match="MeterProvider"):
            resource_meter(object())
    finally:
        provider.shutdown()


@pytest.mark.parametrize(
    ("key", "unit"),
    [
        ("mem_used_bytes", "By"),
        ("rx_bytes_per_s", "By/s"),
        ("util_pct", "%"),
        ("power_w", "W"),
        ("temp_c", "Cel"),
        ("clock_sm_mhz", "MHz"),
        ("uptime_s", "s"),
        ("gpu_count", "1"),
    ],
)
def test_units_from_name_suffixes(key: str, unit: str) -> None:
    assert unit_for(key) == unit
