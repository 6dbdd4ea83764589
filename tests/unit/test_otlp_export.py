"""OTLP/HTTP export of the agent's metrics, against a real local OTLP receiver.

The receiver is an ``http.server`` on 127.0.0.1 that accepts ``POST /v1/metrics`` and
decodes the body as opentelemetry-proto's ``ExportMetricsServiceRequest``, as an
OpenTelemetry Collector does; the values it receives are compared with the snapshot the
simulator published into ``LiveState``.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from gpufleet.agent.live import LiveState
from gpufleet.agent.runner import build_agent
from gpufleet.collectors.sim import SimGpuSource
from gpufleet.collectors.sim_host import SimSystemSource
from gpufleet.exporters.otlp import (
    INSTALL_HINT,
    LIVE_METRICS,
    OtlpConfigError,
    OtlpExport,
    OtlpUnavailableError,
    missing_packages,
    otlp_export_for,
)
from gpufleet.exporters.otlp_config import DEFAULT_ENDPOINT, load_otlp_config, otlp_requested
from gpufleet.model import (
    Attribution,
    GpuProcess,
    GpuSample,
    GpuSourceStatus,
    Snapshot,
)
from gpufleet.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_765_000_000.0
Attrs = frozenset[tuple[str, object]]


# -- the receiver ---------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    request: ExportMetricsServiceRequest


@dataclass
class Receiver:
    """A local OTLP/HTTP metrics receiver; ``status`` is what it answers."""

    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.requests)} exports arrived, not {count}")
                self.cond.wait(left)
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            request = ExportMetricsServiceRequest()
            request.ParseFromString(body)
            status = state.status
            if status == 200:
                with state.cond:
                    state.requests.append(
                        Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, request
                        )
                    )
                    state.cond.notify_all()
            reply = ExportMetricsServiceResponse().SerializeToString()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _value(any_value: AnyValue) -> object:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


@dataclass
class Decoded:
    """One export, decoded: metric name -> (unit, {attributes: value}), and the resource."""

    resource: dict[str, object]
    metrics: dict[str, tuple[str, dict[Attrs, float]]]

    def value(self, name: str, **attrs: object) -> float | None:
        """The one point of ``name`` whose attributes include ``attrs`` (None: no such)."""
        found = [
            v for a, v in self.metrics.get(name, ("", {}))[1].items() if set(attrs.items()) <= a
        ]
        assert len(found) <= 1, f"{name} {attrs}: {len(found)} points"
        return found[0] if found else None

    def unit(self, name: str) -> str:
        return self.metrics[name][0]


def _decode(request: ExportMetricsServiceRequest) -> Decoded:
    assert len(request.resource_metrics) == 1
    rm = request.resource_metrics[0]
    resource = {kv.key: _value(kv.value) for kv in rm.resource.attributes}
    metrics: dict[str, tuple[str, dict[Attrs, float]]] = {}
    for scope in rm.scope_metrics:
        assert scope.scope.name == "gpufleet"
        for metric in scope.metrics:
            data = getattr(metric, metric.WhichOneof("data"))
            points: dict[Attrs, float] = {}
            for point in data.data_points:
                attrs = frozenset((kv.key, _value(kv.value)) for kv in point.attributes)
                assert attrs not in points, f"{metric.name}: repeated attributes {attrs}"
                points[attrs] = getattr(point, point.WhichOneof("value"))
            metrics[metric.name] = (metric.unit, points)
    return Decoded(resource, metrics)


# -- live state from the simulator ----------------------------------------------------------


def _sim_live(gpus: int = 4) -> LiveState:
    source = SimGpuSource(gpus=gpus, seed=7, node="sim-node-0")
    host = SimSystemSource(source)
    live = LiveState(source.status)
    # Two passes, so the host's rates (disk, network) have an interval to cover.
    for t in (T0, T0 + 2.0):
        live.publish(
            Snapshot(
                ts_s=t,
                cluster="lab",
                node="sim-node-0",
                gpus=source.sample(t),
                system=host.sample(t),
                interval_s=2.0,
            ),
            duration_s=0.004,
        )
    return live


def _export(live: LiveState, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Decoded:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")  # only our flushes export
    export = OtlpExport(live, load_otlp_config(os.environ), cluster="lab", node="sim-node-0")
    export.start()
    try:
        assert export.force_flush()
    finally:
        export.shutdown()
    return _decode(receiver.wait_for(1)[0].request)


# -- what arrives ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_export_carries_the_live_snapshot(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, compression: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20s3cret,x-team=ml")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=lab,team=infra")
    live = _sim_live()
    snap = live.latest
    assert snap is not None
    assert snap.system is not None
    got = _export(live, receiver, monkeypatch)

    first = receiver.requests[0]
    assert first.path == "/v1/metrics"
    assert first.headers["authorization"] == "Bearer s3cret"
    assert first.headers["x-team"] == "ml"
    assert first.headers["content-type"] == "application/x-protobuf"
    if compression == "gzip":
        assert first.headers["content-encoding"] == "gzip"
    assert got.resource["service.name"] == "gpufleet"
    assert got.resource["host.name"] == "sim-node-0"
    assert got.resource["service.instance.id"] == "lab/sim-node-0"
    assert got.resource["deployment.environment.name"] == "lab"
    assert got.resource["team"] == "infra"

    units = {
        "hw.gpu.utilization": "1",
        "hw.gpu.memory.usage": "By",
        "hw.gpu.memory.limit": "By",
        "hw.power": "W",
        "gpufleet.gpu.temperature": "Cel",
        "gpufleet.gpu.clock.frequency": "Hz",
        "gpufleet.gpu.processes": "{process}",
        "system.memory.usage": "By",
        "system.network.io": "By",
        "system.cpu.utilization": "1",
    }
    for name, unit in units.items():
        assert got.unit(name) == unit, name

    assert len(snap.gpus) == 4
    for gpu in snap.gpus:
        ident = {"hw.id": gpu.uuid, "hw.type": "gpu", "gpu.index": gpu.index}
        ident |= {"host.name": "sim-node-0", "gpufleet.cluster": "lab", "hw.model": gpu.name}
        assert gpu.util_gpu_pct is not None
        assert gpu.power_w is not None
        assert got.value("hw.gpu.utilization", **ident, **{"hw.gpu.task": "general"}) == (
            pytest.approx(gpu.util_gpu_pct / 100)
        )
        assert got.value("hw.gpu.memory.usage", **ident) == gpu.mem_used_bytes
        assert got.value("hw.gpu.memory.limit", **ident) == gpu.mem_total_bytes
        assert got.value("hw.power", **ident) == pytest.approx(gpu.power_w)
        assert got.value("gpufleet.gpu.temperature", **ident) == pytest.approx(gpu.temp_c)
        assert gpu.clock_sm_mhz is not None
        assert got.value(
            "gpufleet.gpu.clock.frequency", **ident, **{"gpufleet.gpu.clock": "sm"}
        ) == pytest.approx(gpu.clock_sm_mhz * 1e6)
        pids = {p.pid for p in gpu.processes}
        assert got.value("gpufleet.gpu.processes", **ident) == len(pids)
        assert got.value("gpufleet.gpu.allocated", **ident) == (1 if gpu.allocated else 0)
        for proc in gpu.processes:
            assert got.value(
                "gpufleet.process.gpu.memory.usage",
                **ident,
                **{"process.pid": proc.pid, "gpufleet.workload": proc.attribution.workload},
            ) == (proc.used_memory_bytes)

    system = snap.system
    host = {"host.name": "sim-node-0", "gpufleet.cluster": "lab"}
    assert got.value("system.memory.usage", **host) == system.mem_used_bytes
    assert got.value("system.memory.limit", **host) == system.mem_total_bytes
    assert len(got.metrics["system.cpu.utilization"][1]) == len(system.cpu_per_core_pct)
    assert got.value("system.cpu.utilization", **{"cpu.logical_number": 3}) == pytest.approx(
        system.cpu_per_core_pct[3] / 100
    )
    for disk in system.disks:
        mount = {"system.filesystem.mountpoint": disk.mount}
        assert got.value("system.filesystem.limit", **mount) == disk.total_bytes
        assert (
            got.value("system.filesystem.usage", **mount, **{"system.filesystem.state": "used"})
            == disk.used_bytes
        )
    for nic in system.net:
        rx = {"network.interface.name": nic.iface, "network.io.direction": "receive"}
        assert got.value("system.network.io", **rx) == nic.rx_bytes_total
        assert nic.rx_bytes_per_s is not None
        assert got.value("gpufleet.host.network.throughput", **rx) == pytest.approx(
            nic.rx_bytes_per_s
        )
    assert got.value("gpufleet.agent.samples") == 2
    assert got.value("gpufleet.gpu.source.available", **{"gpufleet.gpu.source": "sim"}) == 1


def _hand_built_live() -> LiveState:
    """Two GPUs: one reading with no fan, encoder, power or clocks; one lost."""
    partial = GpuSample(
        uuid="GPU-partial",
        index=0,
        name="NVIDIA A10",
        util_gpu_pct=42.0,
        mem_total_bytes=24 * 2**30,
        mem_used_bytes=2**30,
        mem_free_bytes=23 * 2**30,
        temp_c=50.0,
        processes=(
            GpuProcess(pid=11, name="python", used_memory_bytes=None, kind="compute"),
            # The same process again with a graphics context: counted once.
            GpuProcess(pid=11, name="python", used_memory_bytes=None, kind="graphics"),
            GpuProcess(
                pid=12,
                name="infer",
                used_memory_bytes=512 * 2**20,
                attribution=Attribution(namespace="ml", user="bob", workload="infer"),
            ),
        ),
    )
    lost = GpuSample(uuid="GPU-lost", index=1, lost=True, error="fell off the bus")
    live = LiveState(
        GpuSourceStatus(source="nvml", available=True, gpu_count=2, library_installed=True)
    )
    live.publish(
        Snapshot(ts_s=T0, cluster="c", node="n", gpus=(partial, lost), system=None, interval_s=2.0)
    )
    return live


def test_none_readings_are_left_out_never_zero(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    got = _export(_hand_built_live(), receiver, monkeypatch)
    partial = {"hw.id": "GPU-partial"}
    assert got.value("hw.gpu.utilization", **partial, **{"hw.gpu.task": "general"}) == 0.42
    assert got.value("hw.gpu.utilization", **partial, **{"hw.gpu.task": "encoder"}) is None
    # Readings no GPU reports make no instrument in the export at all.
    for name in ("hw.power", "gpufleet.gpu.fan.speed_ratio", "gpufleet.gpu.clock.frequency"):
        assert name not in got.metrics
    assert "hw.errors" not in got.metrics
    # No host reading (system None): no host metric.
    assert not [n for n in got.metrics if n.startswith("system.")]
    assert got.value("gpufleet.gpu.processes", **partial) == 2
    assert got.value("gpufleet.process.gpu.memory.usage", **{"process.pid": 11}) is None
    assert got.value("gpufleet.process.gpu.memory.usage", **{"process.pid": 12}) == 512 * 2**20
    # The lost GPU says so, and nothing else about it.
    assert got.value("gpufleet.gpu.lost", **{"hw.id": "GPU-lost"}) == 1
    assert got.value("gpufleet.gpu.lost", **partial) == 0
    for name, (_, points) in got.metrics.items():
        if name != "gpufleet.gpu.lost":
            assert not [a for a in points if ("hw.id", "GPU-lost") in a], name
    assert got.value("gpufleet.agent.sample.duration") is None


def test_xids_between_exports_are_counted(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    live = LiveState(
        GpuSourceStatus(source="nvml", available=True, gpu_count=1, library_installed=True)
    )
    export = OtlpExport(live, load_otlp_config(os.environ), cluster="c", node="n")
    export.start()
    try:
        for t, xids in ((T0, (79,)), (T0 + 2, ()), (T0 + 4, (48, 13))):
            gpu = GpuSample(uuid="GPU-x", index=0, util_gpu_pct=1.0, xid_errors=xids)
            live.publish(Snapshot(t, "c", "n", (gpu,), None, 2.0))
        assert export.force_flush()
        live.publish(Snapshot(T0 + 6, "c", "n", (GpuSample(uuid="GPU-x", index=0),), None, 2.0))
        assert export.force_flush()
    finally:
        export.shutdown()
    first, second = (_decode(r.request) for r in receiver.wait_for(2)[:2])
    assert first.value("gpufleet.gpu.xid.errors") == 3
    assert first.value("gpufleet.gpu.xid.last") == 13
    # Nothing new since: the count stays (a cumulative counter), the last code too.
    assert second.value("gpufleet.gpu.xid.errors") == 3
    assert second.value("gpufleet.gpu.xid.last") == 13


def test_periodic_export_without_flush(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"{receiver.url}/custom/path")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    export = OtlpExport(_sim_live(1), load_otlp_config(os.environ), cluster="lab", node="n")
    export.start()
    try:
        got = receiver.wait_for(2, timeout_s=10)
    finally:
        export.shutdown()
    assert {r.path for r in got} == {"/custom/path"}
    assert export.exports_ok >= 2


def test_shutdown_exports_the_last_readings(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    live = _hand_built_live()
    export = OtlpExport(live, load_otlp_config(os.environ), cluster="c", node="n")
    export.start()
    assert receiver.requests == []
    export.shutdown()
    got = _decode(receiver.wait_for(1)[0].request)
    assert got.value("hw.gpu.memory.usage", **{"hw.id": "GPU-partial"}) == 2**30
    export.shutdown()  # a second shutdown is harmless
    assert len(receiver.requests) == 1


def test_receiver_down_does_not_crash_and_logs_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    # Milliseconds: room for one retry after the SDK's first 1 s back-off.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1600")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    export = OtlpExport(_sim_live(1), load_otlp_config(os.environ), cluster="c", node="n")
    caplog.set_level(logging.DEBUG)
    export.start()
    try:
        for _ in range(2):
            export.force_flush(timeout_s=5)
    finally:
        export.shutdown()
    assert export.exports_failed == 3  # two flushes and the final export at shutdown
    assert export.exports_ok == 0
    ours = [r for r in caplog.records if r.name == "gpufleet.exporters.otlp"]
    assert len(ours) == 1
    assert ours[0].levelno == logging.WARNING
    assert f"127.0.0.1:{port}/v1/metrics" in ours[0].getMessage()
    assert "refused" in ours[0].getMessage().lower()
    sdk = [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert sdk == []


def test_failure_then_recovery_is_logged_once_each(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")
    export = OtlpExport(_sim_live(1), load_otlp_config(os.environ), cluster="c", node="n")
    caplog.set_level(logging.INFO, logger="gpufleet.exporters.otlp")
    export.start()
    try:
        receiver.status = 400  # refused: not retried
        export.force_flush()
        export.force_flush()
        receiver.status = 200
        export.force_flush()
        export.force_flush()
    finally:
        export.shutdown()
    messages = [r.getMessage() for r in caplog.records if r.name == "gpufleet.exporters.otlp"]
    assert len(messages) == 2
    assert "failed" in messages[0]
    assert "400" in messages[0]
    assert "works again" in messages[1]
    assert (export.exports_failed, export.exports_ok) == (2, 3)


# -- the agent ------------------------------------------------------------------------------


def test_agent_exports_when_the_endpoint_variable_is_set(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gpu-box-agent")
    settings = Settings(
        source="sim",
        sim_gpus=2,
        interval_s=0.1,
        db=str(tmp_path / "agent.db"),
        cluster="lab",
        node="box-1",
    )
    ctx = build_agent(settings)
    assert ctx.otlp is not None
    assert ctx.otlp.endpoint == f"{receiver.url}/v1/metrics"
    assert ctx.sampler is not None
    ctx.sampler.start()
    ctx.otlp.start()
    try:
        # The first export may come before the first sample; wait for one with the GPUs.
        count = 1
        while True:
            exported = _decode(receiver.wait_for(count)[count - 1].request)
            if "hw.gpu.utilization" in exported.metrics:
                break
            count += 1
    finally:
        ctx.shutdown()
    assert exported.resource["service.name"] == "gpu-box-agent"
    assert exported.resource["host.name"] == "box-1"
    hw_ids = {dict(a)["hw.id"] for a in exported.metrics["hw.gpu.utilization"][1]}
    assert len(hw_ids) == 2
    # Shut down: the final export carries the last snapshot the sampler published.
    last = _decode(receiver.requests[-1].request)
    assert last.value("gpufleet.agent.samples") == ctx.live.samples_taken


def test_agent_without_otlp_settings_exports_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    ctx = build_agent(
        Settings(source="sim", sim_gpus=1, db=str(tmp_path / "a.db"), cluster="c", node="n")
    )
    try:
        assert ctx.otlp is None
    finally:
        ctx.shutdown()


def test_agent_refuses_a_bad_interval_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "ten seconds")
    settings = Settings(
        source="sim", sim_gpus=1, db=str(tmp_path / "a.db"), cluster="c", node="n", otlp=True
    )
    with pytest.raises(OtlpConfigError, match="OTEL_METRIC_EXPORT_INTERVAL='ten seconds'"):
        build_agent(settings)


def test_cli_agent_says_what_is_wrong(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT / "src"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from gpufleet.cli.main import main; main()",
            "agent",
            "--source",
            "sim",
            "--no-store",
            "--port",
            str(_free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "cannot start the agent" in out
    assert "OTEL_EXPORTER_OTLP_ENDPOINT='collector:4318' is not an http:// or https:// URL" in out


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "env", "expected"),
    [
        (None, {}, False),
        (True, {}, True),
        (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True),
        (None, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"}, True),
        (False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        (
            None,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"},
            False,
        ),
        (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_METRICS_EXPORTER": "none"}, False),
        (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_METRICS_EXPORTER": "otlp"}, True),
    ],
)
def test_when_the_export_is_on(setting: bool | None, env: dict[str, str], expected: bool) -> None:
    assert otlp_requested(setting, env) is expected


def test_config_defaults_and_units() -> None:
    config = load_otlp_config({})
    assert config.endpoint == DEFAULT_ENDPOINT == "http://localhost:4318/v1/metrics"
    assert (config.timeout_s, config.export_interval_s, config.export_timeout_s) == (10, 60, 30)
    config = load_otlp_config(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example:4318/base/",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_METRIC_EXPORT_INTERVAL": "15000",
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%2Cb , X-Scope=team",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "",
            "OTEL_SERVICE_NAME": "agent-7",
        }
    )
    assert config.endpoint == "https://otel.example:4318/base/v1/metrics"
    assert config.timeout_s == 2.5
    assert config.export_interval_s == 15
    assert config.headers == {"api-key": "a,b", "x-scope": "team"}
    assert config.resource_attributes == {"service.name": "agent-7"}
    # The per-signal variable wins, and its endpoint is taken as it is.
    config = load_otlp_config(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://b:9999/otlp",
            "OTEL_EXPORTER_OTLP_HEADERS": "x=1",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS": "y=2",
            "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "100",
            "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION": "gzip",
        }
    )
    assert config.endpoint == "http://b:9999/otlp"
    assert config.headers == {"y": "2"}
    assert config.timeout_s == 0.1
    assert config.compression == "gzip"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OTEL_METRIC_EXPORT_INTERVAL": "abc"},
            "OTEL_METRIC_EXPORT_INTERVAL='abc' is not a number",
        ),
        (
            {"OTEL_METRIC_EXPORT_INTERVAL": "0"},
            "OTEL_METRIC_EXPORT_INTERVAL='0' must be a positive",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TIMEOUT": "-5"},
            "OTEL_EXPORTER_OTLP_TIMEOUT='-5' must be a positive",
        ),
        ({"OTEL_METRIC_EXPORT_TIMEOUT": "nan"}, "OTEL_METRIC_EXPORT_TIMEOUT='nan' must be"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
        ({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "http/json"}, "METRICS_PROTOCOL='http/json'"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://x"}, "not an http:// or https:// URL"),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://x:port"}, "invalid port"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "authorization"}, "not a name=value pair"),
        ({"OTEL_EXPORTER_OTLP_HEADERS": "bad name=1"}, "not a valid HTTP header name"),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "use gzip or none"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "team"}, "OTEL_RESOURCE_ATTRIBUTES: 'team' is not a key"),
    ],
)
def test_bad_variables_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(OtlpConfigError) as caught:
        load_otlp_config(env)
    assert message in str(caught.value)


# -- without the optional packages ---------------------------------------------------------


def test_missing_packages_explicit_request_is_an_error() -> None:
    live = LiveState(
        GpuSourceStatus(source="none", available=False, gpu_count=0, library_installed=False)
    )
    with pytest.raises(OtlpUnavailableError) as caught:
        otlp_export_for(
            True, live, cluster="c", node="n", environ={}, probe=lambda: ["opentelemetry-sdk"]
        )
    assert str(caught.value) == (
        f"OTLP export needs opentelemetry-sdk, which is not installed: {INSTALL_HINT}"
    )
    assert INSTALL_HINT == "pip install 'gpufleet[otel]'"


def test_missing_packages_env_only_warns_once_and_runs_without(
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = LiveState(
        GpuSourceStatus(source="none", available=False, gpu_count=0, library_installed=False)
    )
    caplog.set_level(logging.WARNING, logger="gpufleet.exporters.otlp")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    missing = ["opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"]
    assert (
        otlp_export_for(None, live, cluster="c", node="n", environ=env, probe=lambda: missing)
        is None
    )
    [record] = caplog.records
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is set" in record.getMessage()
    assert INSTALL_HINT in record.getMessage()


def test_installed_packages_are_found() -> None:
    assert missing_packages() == []


_WITHOUT_SDK = """
import importlib.abc, json, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
import gpufleet.agent.runner, gpufleet.exporters.otlp as otlp
print(json.dumps(otlp.missing_packages()))
"""


def test_the_agent_imports_without_the_sdk() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SDK],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "src")},
        check=True,
    )
    assert json.loads(proc.stdout) == [
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
    ]


# -- the docs list every instrument ---------------------------------------------------------


def test_docs_list_every_instrument() -> None:
    doc = (ROOT / "docs" / "OPENTELEMETRY.md").read_text()
    for spec in LIVE_METRICS:
        assert f"`{spec.name}`" in doc, spec.name
        assert f"`{spec.unit}`" in doc, spec.unit
