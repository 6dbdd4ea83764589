"""The agent's REST API end to end over the sim source and a real SQLite store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gpufleet.agent.context import AgentContext
from gpufleet.agent.live import LiveState
from gpufleet.api.app import create_app
from gpufleet.api.deps import NO_GPU_DETAIL
from gpufleet.collectors.registry import NoGpuSource
from gpufleet.collectors.sim import SimGpuSource
from gpufleet.model import DiskUsage, GpuSourceStatus, NetRate, Snapshot, SystemSample
from gpufleet.settings import Settings
from gpufleet.store import open_store
from gpufleet.store.base import Store

SEED_GPU_KEYS = {
    "gpu_id",
    "gpu_name",
    "gpu_uuid",
    "driver_version",
    "utilization",
    "memory",
    "temperature",
    "power",
    "clocks",
    "processes",
    "performance_state",
    "fan_speed_percent",
}
SEED_COLLECTION_KEYS = {
    "timestamp",
    "instance_id",
    "gpu_count",
    "gpus",
    "total_memory_used_mb",
    "total_memory_total_mb",
    "average_gpu_utilization",
    "average_memory_utilization",
    "average_temperature",
    "total_power_draw_watts",
}


def _system() -> SystemSample:
    return SystemSample(
        cpu_pct=12.5,
        cpu_per_core_pct=(10.0, 15.0),
        cpu_count=2,
        load_1=0.5,
        load_5=0.4,
        load_15=0.3,
        mem_total_bytes=8 * 2**30,
        mem_used_bytes=2 * 2**30,
        mem_available_bytes=6 * 2**30,
        mem_pct=25.0,
        swap_total_bytes=0,
        swap_used_bytes=0,
        swap_pct=0.0,
        disks=(DiskUsage("/", "/dev/sda1", "ext4", 100, 40, 60, 40.0),),
        disk_read_bytes_per_s=1000.0,
        disk_write_bytes_per_s=2000.0,
        disk_read_ops_per_s=1.0,
        disk_write_ops_per_s=2.0,
        net=(NetRate("eth0", 100.0, 50.0, 1.0, 1.0, 10_000, 5_000),),
        boot_time_s=1_700_000_000.0,
    )


def _settings(tmp_path: Path) -> Settings:
    return Settings(cluster="test-cluster", node="node-a", db=str(tmp_path / "t.db"), interval_s=60)


@pytest.fixture
def sim_ctx(tmp_path: Path) -> Iterator[AgentContext]:
    """A context with two hours of sim history in SQLite and a published latest snapshot."""
    settings = _settings(tmp_path)
    source = SimGpuSource(gpus=4, seed=7, node="node-a")
    store: Store = open_store(settings.db)
    live = LiveState(source.status())
    now = time.time()
    snaps = [
        Snapshot(
            ts_s=t,
            cluster="test-cluster",
            node="node-a",
            gpus=source.sample(t),
            system=_system(),
            interval_s=60.0,
        )
        for t in (now - 7200 + 60 * i for i in range(120))
    ]
    store.write_snapshots(snaps)
    for snap in snaps[-5:]:
        live.publish(snap, 0.001)
    yield AgentContext(settings=settings, live=live, store=store)
    store.close()


@pytest.fixture
def client(sim_ctx: AgentContext) -> TestClient:
    return TestClient(create_app(sim_ctx))


def test_root_lists_endpoints(client: TestClient) -> None:
    body = client.get("/").json()
    assert body["instance_id"] == "test-cluster/node-a"
    for path in ("/gpu/metrics", "/system/all", "/alerts", "/metrics", "/health/ready"):
        assert path in body["endpoints"]


def test_gpu_metrics_keep_seed_shape(client: TestClient) -> None:
    body = client.get("/gpu/metrics").json()
    assert body.keys() >= SEED_COLLECTION_KEYS
    assert body["gpu_count"] == 4
    gpu = body["gpus"][0]
    assert gpu.keys() >= SEED_GPU_KEYS
    assert {"gpu_percent", "memory_percent"} <= gpu["utilization"].keys()
    assert {"total_mb", "used_mb", "free_mb", "utilization_percent"} <= gpu["memory"].keys()
    assert gpu["memory"]["total_mb"] == pytest.approx(81559.0, abs=1)
    assert {"power_draw_watts", "power_limit_watts", "power_usage_percent"} <= gpu["power"].keys()
    used = [g["memory"]["used_mb"] for g in body["gpus"]]
    assert body["total_memory_used_mb"] == pytest.approx(sum(used), abs=0.5)


def test_single_gpu_by_index_and_uuid_and_404(client: TestClient) -> None:
    first = client.get("/gpu/metrics/1").json()
    assert first["gpu_id"] == 1
    by_uuid = client.get(f"/gpu/metrics/{first['gpu_uuid']}").json()
    assert by_uuid["gpu_uuid"] == first["gpu_uuid"]
    missing = client.get("/gpu/metrics/99")
    assert missing.status_code == 404
    assert "GPU '99' not found" in missing.json()["detail"]


@pytest.mark.parametrize(
    "path", ["/gpu/utilization", "/gpu/temperature", "/gpu/memory", "/gpu/power"]
)
def test_gpu_summaries(client: TestClient, path: str) -> None:
    body = client.get(path).json()
    assert body["gpu_count"] == 4
    assert all("gpu_uuid" in row for row in body["gpus"])


def test_utilization_counts_allocated(client: TestClient, sim_ctx: AgentContext) -> None:
    body = client.get("/gpu/utilization").json()
    snap = sim_ctx.live.latest
    assert snap is not None
    assert body["allocated_gpus"] == sum(1 for g in snap.gpus if g.allocated)


@pytest.mark.parametrize(
    "path", ["/system/cpu", "/system/memory", "/system/disk", "/system/network", "/system/all"]
)
def test_system_endpoints(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["timestamp"].endswith("Z")


def test_system_values(client: TestClient) -> None:
    assert client.get("/system/cpu").json()["cpu_pct"] == 12.5
    assert client.get("/system/memory").json()["used_pct"] == 25.0
    disk = client.get("/system/disk").json()
    assert disk["partitions"][0]["mount"] == "/"
    assert client.get("/system/network").json()["rx_bytes_per_s"] == 100.0


def test_gpu_history_minute_series(client: TestClient) -> None:
    body = client.get(
        "/gpu/metrics/history", params={"from": "-1h", "resolution": "1m", "gpu": "0"}
    ).json()
    assert body["resolution"] == "1m"
    assert len(body["series"]) == 1
    assert body["series"][0]["gpu_index"] == 0
    assert 55 <= len(body["series"][0]["points"]) <= 61


def test_gpu_history_auto_and_all_gpus(client: TestClient) -> None:
    body = client.get("/gpu/metrics/history", params={"from": "-3h", "metric": "power_w"}).json()
    assert body["resolution"] == "raw"
    assert len(body["series"]) == 4


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"from": "yesterday-ish"}, "cannot read time"),
        ({"from": "-1h", "to": "-2h"}, "must be before"),
        ({"from": "nan"}, "out of range"),
        ({"to": "1e20"}, "out of range"),
        ({"resolution": "5m"}, "unknown resolution"),
        ({"metric": "bogus"}, "unknown GPU metric"),
    ],
)
def test_history_bad_queries_are_422(
    client: TestClient, params: dict[str, str], needle: str
) -> None:
    response = client.get("/gpu/metrics/history", params=params)
    assert response.status_code == 422
    assert needle in response.json()["detail"]


def test_history_unknown_gpu_is_404(client: TestClient) -> None:
    response = client.get("/gpu/metrics/history", params={"gpu": "GPU-nope"})
    assert response.status_code == 404


def test_system_history(client: TestClient) -> None:
    body = client.get(
        "/system/history", params={"from": "-2h", "metric": "cpu_pct", "resolution": "1h"}
    ).json()
    assert body["series"][0]["subject"] == "host"
    assert body["series"][0]["points"][0]["mean"] == pytest.approx(12.5)


def test_health_endpoints(client: TestClient) -> None:
    assert client.get("/health/live").json()["alive"] is True
    assert client.get("/health/ready").status_code == 200
    detailed = client.get("/health/detailed").json()
    assert detailed["components"]["store"]["writable"] is True
    assert detailed["components"]["gpu_source"]["source"] == "sim"


def test_ready_is_503_before_first_sample(tmp_path: Path) -> None:
    ctx = AgentContext(
        settings=_settings(tmp_path), live=LiveState(SimGpuSource(gpus=1).status()), store=None
    )
    client = TestClient(create_app(ctx))
    assert client.get("/health/ready").status_code == 503
    assert client.get("/health").json()["status"] == "degraded"
    assert client.get("/system/cpu").status_code == 503


def test_no_gpu_answers_as_the_seed_says(tmp_path: Path) -> None:
    status = GpuSourceStatus(
        source="none",
        available=False,
        gpu_count=0,
        library_installed=False,
        reason="nvidia-ml-py is not installed",
    )
    live = LiveState(NoGpuSource(status).status())
    live.publish(
        Snapshot(ts_s=time.time(), cluster="c", node="n", gpus=(), system=_system(), interval_s=1)
    )
    client = TestClient(
        create_app(AgentContext(settings=_settings(tmp_path), live=live, store=None))
    )
    info = client.get("/gpu/info").json()
    assert info == {**info, "available": False, "gpu_count": 0, "pynvml_installed": False}
    response = client.get("/gpu/metrics")
    assert response.status_code == 503
    assert response.json()["detail"] == NO_GPU_DETAIL
    assert client.get("/system/all").status_code == 200
    history = client.get("/gpu/metrics/history")
    assert history.status_code == 503
    assert "--no-store" in history.json()["detail"]


def test_metrics_are_dcgm_named(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "DCGM_FI_DEV_GPU_UTIL{" in response.text
    assert 'modelName="NVIDIA H100 80GB HBM3"' in response.text


def test_alerts_endpoint(client: TestClient) -> None:
    body = client.get("/alerts").json()
    assert body["source"] == "store"
    assert body["alerts"] == []
    assert client.get("/alerts", params={"from": "nope"}).status_code == 422


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/gpu/metrics/{gpu_id}" in spec["paths"]
