"""The resource manager's monitor thread, handlers, hard mode, saving and seed 004's examples."""

from __future__ import annotations

import csv
import json
import logging
import threading
import time

import pytest
from tests.unit.resources_script import ScriptedReader

import gpufleet
from gpufleet import (
    LimitViolation,
    ResourceLimitExceeded,
    ResourceLimits,
    ResourceManager,
    ResourceMetrics,
    create_resource_manager,
)


class LiveReader(ScriptedReader):
    """Scripted values stamped with the real clock (for the monitor thread's freshness rule)."""

    def read(self) -> ResourceMetrics:
        m = super().read()
        return ResourceMetrics(**{**m.__dict__, "timestamp_s": time.time()})


def _wait_for(predicate, timeout_s=10.0):
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_the_monitor_thread_calls_back_every_interval_and_stops_cleanly():
    got: list[ResourceMetrics] = []
    reader = LiveReader([{"memory_used_mb": 10.0}])
    m = ResourceManager(callback=got.append, monitoring_interval=0.05, reader=reader)
    m.start_monitoring()
    m.start_monitoring()  # a second start does nothing
    _wait_for(lambda: len(got) >= 4)
    assert m.is_monitoring
    m.stop_monitoring()
    assert not m.is_monitoring
    n = len(got)
    time.sleep(0.15)
    assert len(got) == n
    assert all(x.memory_used_mb == 10.0 for x in got)
    assert [t.name for t in threading.enumerate() if t.name == "gpufleet-resource-monitor"] == []


def test_violation_handlers_hear_what_how_much_and_how_long(caplog):
    reports: list[LimitViolation] = []
    reader = LiveReader([{"memory_used_mb": 1500.0}])
    m = create_resource_manager(
        max_memory_mb=1000, monitoring_interval=0.02, reader=reader, on_violation=reports.append
    )
    extra: list[LimitViolation] = []
    m.add_violation_handler(extra.append)
    with caplog.at_level(logging.WARNING, logger="gpufleet.resources"), m:
        _wait_for(lambda: reports)
    assert reports[0].kind == "exceeded"
    assert (reports[0].value, reports[0].threshold, reports[0].excess) == (1500, 1000, 500)
    assert extra == reports
    assert "memory_used_mb 1500.0 MB is over max_memory_mb 1000.0 MB by 500.0 MB" in caplog.text
    assert reader.closed is False  # an injected reader belongs to the caller


def test_a_failing_callback_is_logged_once_and_monitoring_goes_on(caplog):
    calls = []

    def broken(metrics):
        calls.append(metrics)
        raise RuntimeError("boom")

    m = ResourceManager(callback=broken, monitoring_interval=0.02, reader=LiveReader([{}]))
    with caplog.at_level(logging.ERROR, logger="gpufleet.resources"), m:
        _wait_for(lambda: len(calls) >= 3)
    assert caplog.text.count("broken raised RuntimeError") == 1


def test_hard_mode_raises_in_the_monitored_thread():
    reader = LiveReader([{"memory_used_mb": 10.0}] * 3 + [{"memory_used_mb": 5000.0}])
    limits = ResourceLimits(max_memory_mb=1000)
    manager = ResourceManager(limits, monitoring_interval=0.02, hard=True, reader=reader)
    with pytest.raises(ResourceLimitExceeded) as caught, manager:  # noqa: PT012 - async raise
        end = time.monotonic() + 10
        while time.monotonic() < end:
            sum(range(100))  # the program's own work
    violation = caught.value.violation
    assert violation is not None
    assert (violation.kind, violation.limit, violation.value) == ("exceeded", "max_memory_mb", 5000)
    assert "5000.0 MB is over max_memory_mb" in str(caught.value)


def test_hard_mode_check_raises_at_a_point_the_program_chooses():
    reader = ScriptedReader([{"cpu_percent": 99.0}])
    m = ResourceManager(ResourceLimits(max_cpu_percent=50), hard=True, reader=reader)
    m.check_once()  # driven from this thread: nothing is raised asynchronously
    with pytest.raises(ResourceLimitExceeded, match=r"cpu_percent 99\.0 %"):
        m.check()
    m.check()  # raised once


def test_nothing_is_raised_after_the_block_ends():
    reader = LiveReader([{"memory_used_mb": 5000.0}])
    m = ResourceManager(
        ResourceLimits(max_memory_mb=1000), monitoring_interval=5, hard=False, reader=reader
    )
    with m:
        pass
    time.sleep(0.05)
    assert not m.is_monitoring


def test_get_current_metrics_reads_now_when_not_monitoring():
    reader = ScriptedReader([{"memory_used_mb": 1.0}, {"memory_used_mb": 2.0}])
    m = ResourceManager(reader=reader)
    assert m.get_current_metrics().memory_used_mb == 1.0
    assert m.get_current_metrics().memory_used_mb == 2.0
    assert len(m.get_metrics_history()) == 2


def test_usage_hook_replaces_readings_and_unknown_names_are_refused():
    m = ResourceManager(reader=ScriptedReader([{}]), usage=lambda: {"gpu_memory_mb": 42.0})
    assert m.get_current_metrics().gpu_memory_mb == 42.0
    bad = ResourceManager(reader=ScriptedReader([{}]), usage=lambda: {"vram": 1.0})
    with pytest.raises(ValueError, match="unknown readings vram"):
        bad.get_current_metrics()


def test_save_metrics_writes_json_and_csv(tmp_path):
    limits = ResourceLimits(max_memory_mb=150)
    reader = ScriptedReader([{"memory_used_mb": v} for v in (100.0, 200.0, 120.0)])
    m = ResourceManager(limits, reader=reader)
    for _ in range(3):
        m.check_once()
    report = json.loads(m.save_metrics(tmp_path / "m.json").read_text())
    assert report["strategy"] == "dynamic"
    assert report["limits"]["max_memory_mb"] == 150
    assert [s["memory_used_mb"] for s in report["samples"]] == [100, 200, 120]
    assert report["samples"][0]["time"].endswith("Z")
    assert report["summary"]["memory_used_mb"] == {
        "min": 100,
        "mean": 140,
        "max": 200,
        "last": 120,
    }
    assert [v["kind"] for v in report["violations"]] == ["exceeded", "recovered"]
    with m.save_metrics(tmp_path / "m.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["memory_used_mb"] for r in rows] == ["100.0", "200.0", "120.0"]
    assert rows[0]["gpu_memory_mb"] == "0.0"
    assert rows[0]["power_watts"] == ""  # None stays empty, not 0
    # Written under a temporary name and renamed: nothing else is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "m.json"]


def test_save_metrics_to_a_missing_directory_says_where(tmp_path):
    m = ResourceManager(reader=ScriptedReader([{}]))
    with pytest.raises(OSError, match=r"cannot save metrics to .*nowhere/m\.json"):
        m.save_metrics(tmp_path / "nowhere" / "m.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_memory_mb": -1}, "max_memory_mb must be a positive number"),
        ({"max_cpu_percent": "80"}, "max_cpu_percent must be a number"),
        ({"max_memory_percent": 120}, "at most 100"),
        ({"sustain_s": -1}, "sustain_s"),
        ({"monitoring_interval": 0}, "monitoring_interval must be a positive"),
        ({"scope": "cluster"}, "scope must be one of process, machine"),
        ({"strategy": "fastest"}, "unknown strategy 'fastest'"),
    ],
)
def test_bad_settings_say_what_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_resource_manager(reader=ScriptedReader([{}]), **kwargs)


def test_an_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="max_vram_mb"):
        create_resource_manager(max_vram_mb=10)


def test_public_api():
    assert set(gpufleet.resources.__all__) >= {
        "ResourceManager",
        "ResourceLimits",
        "ResourceMetrics",
        "LimitViolation",
        "ResourceLimitExceeded",
        "create_resource_manager",
    }
    for name in gpufleet.__all__:
        assert getattr(gpufleet, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = gpufleet.Nope  # type: ignore[attr-defined]


# --- seed 004's examples, unchanged but for the import ----------------------------------


def test_seed_basic_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manager = create_resource_manager(
        max_memory_mb=1000,
        max_cpu_percent=80,
        max_gpu_memory_mb=1000,
        max_power_watts=100,
        max_temp_celsius=80,
        strategy="adaptive",
    )
    manager.start_monitoring()
    time.sleep(0.3)
    manager.stop_monitoring()
    manager.save_metrics("resource_metrics.json")
    saved = json.loads((tmp_path / "resource_metrics.json").read_text())
    assert saved["samples"]
    assert saved["samples"][0]["memory_used_mb"] > 0
    manager.close()


def test_seed_context_manager_example(capsys):
    limits = ResourceLimits(max_memory_mb=1000, max_cpu_percent=80)
    with ResourceManager(limits=limits) as manager:
        metrics = manager.get_current_metrics()
        print(f"Memory usage: {metrics.memory_used_mb:.1f} MB")
    assert capsys.readouterr().out.startswith("Memory usage: ")
    assert metrics.cpu_percent is not None


@pytest.mark.parametrize("strategy", ["dynamic", "predictive", "adaptive", "cooperative"])
def test_seed_strategy_examples(strategy):
    manager = create_resource_manager(strategy=strategy, max_gpu_memory_mb=1000)
    metrics = manager.get_current_metrics()
    print(f"Memory used: {metrics.memory_used_mb:.1f} MB")
    print(f"Memory percentage: {metrics.memory_percent:.1f}%")
    assert manager.strategy.name == strategy
    manager.close()


def test_the_demo_script_reports_a_limit_under_simulated_load(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "examples" / "resource_management_demo.py"
    out = subprocess.run(
        [
            sys.executable,
            str(demo),
            "--simulate-load",
            "--duration",
            "3",
            "--interval",
            "0.5",
            "--max-memory-mb",
            "5",
            "--output",
            str(tmp_path / "out.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "! exceeded: memory_used_mb" in out.stdout
    assert json.loads((tmp_path / "out.json").read_text())["samples"]
    bad = subprocess.run(
        [sys.executable, str(demo), "--max-cpu-percent", "-3"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "max_cpu_percent must be a positive number" in bad.stderr


def test_readings_reach_an_opentelemetry_meter_provider():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    otel_reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[otel_reader])
    scripted = LiveReader([{"memory_used_mb": 321.0, "gpu_memory_mb": None}])
    m = ResourceManager(monitoring_interval=0.02, reader=scripted, opentelemetry=False)
    gauges = m.instrument(provider)
    assert m.instrument(provider) is gauges  # registered once
    with m:
        _wait_for(m.get_metrics_history)
        data = otel_reader.get_metrics_data()
    points = {
        metric.name: (metric.unit, [p.value for p in metric.data.data_points])
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert points["gpufleet.resource.memory_used_mb"] == ("MiBy", [321.0])
    assert points["gpufleet.resource.cpu_percent"] == ("%", [10.0])
    # None (no GPU) gives no data point rather than a 0.
    assert points.get("gpufleet.resource.gpu_memory_mb", ("MiBy", []))[1] == []
    provider.shutdown()


def test_seed_opentelemetry_example_exports_once_a_global_provider_is_set():
    # Seed 004 sets the global MeterProvider and then creates the manager; a subprocess keeps
    # that global out of the other tests.
    import subprocess
    import sys

    code = (
        "import time\n"
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "from gpufleet import create_resource_manager\n"
        "reader = InMemoryMetricReader()\n"
        "metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))\n"
        "meter = metrics.get_meter('resource_management')\n"
        "manager = create_resource_manager()\n"
        "manager.start_monitoring()\n"
        "time.sleep(0.5)\n"
        "data = reader.get_metrics_data()\n"
        "manager.stop_monitoring()\n"
        "names = {m.name for r in data.resource_metrics for s in r.scope_metrics "
        "for m in s.metrics if m.data.data_points}\n"
        "print(sorted(names))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "gpufleet.resource.memory_used_mb" in out.stdout
    assert "gpufleet.resource.cpu_percent" in out.stdout


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"pid": "1"}, ValueError, "pid must be a positive integer, not '1'"),
        ({"pid": 1, "scope": "machine"}, ValueError, "use it with scope='process'"),
        ({"limits": {"max_memory_mb": 10}}, TypeError, "limits must be a ResourceLimits"),
        ({"callback": 5}, TypeError, "callback must be callable, not int"),
        ({"on_violation": "x"}, TypeError, "on_violation must be callable, not str"),
        ({"strategy": None}, ValueError, "strategy must be a name"),
    ],
)
def test_bad_manager_arguments_are_refused_when_built(kwargs, error, message):
    with pytest.raises(error, match=message):
        ResourceManager(reader=ScriptedReader([{}]), **kwargs)
    with pytest.raises(TypeError, match="must be callable"):
        ResourceManager(reader=ScriptedReader([{}])).add_violation_handler(3)  # type: ignore[arg-type]
