"""Prometheus import: against a mock of the HTTP API, and against a real Prometheus server
scraping a real gpufleet agent."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from gpufleet.store import Resolution, Store, open_store
from gpufleet.store.importers import ImportFailedError, import_prometheus

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
MIB = 1024 * 1024
URL = "http://prom.test:9090"

GPU_A = {
    "gpu": "0",
    "UUID": "GPU-aaaa",
    "device": "nvidia0",
    "modelName": "NVIDIA A100-SXM4-80GB",
    "Hostname": "node1",
    "pci_bus_id": "00000000:07:00.0",
    "DCGM_FI_DRIVER_VERSION": "550.54.15",
    "instance": "10.0.0.1:9400",
    "job": "dcgm",
}
GPU_B = {**GPU_A, "gpu": "1", "UUID": "GPU-bbbb", "device": "nvidia1"}
POD = {"pod": "train-0", "namespace": "ml", "container": "trainer"}


def util_of(uuid: str, ts: float) -> float:
    return float((int(ts) // 60 + (7 if uuid == "GPU-bbbb" else 0)) % 100)


def fake_series(metric: str, ts: float) -> list[tuple[dict[str, str], float]]:
    """What a dcgm-exporter + gpufleet scrape target would give for ``metric`` at ``ts``."""
    values = {
        "DCGM_FI_DEV_GPU_UTIL": lambda u: util_of(u, ts),
        "DCGM_FI_DEV_FB_USED": lambda u: 1024.0,
        "DCGM_FI_DEV_FB_FREE": lambda u: 80_000.0,
        "DCGM_FI_DEV_GPU_TEMP": lambda u: 41.0,
        "DCGM_FI_DEV_POWER_USAGE": lambda u: 250.5,
        "DCGM_FI_DEV_SM_CLOCK": lambda u: 1410.0,
    }
    if metric in values:
        # GPU B is held by a pod: dcgm-exporter adds the pod labels to its series.
        return [
            ({"__name__": metric, **GPU_A}, values[metric]("GPU-aaaa")),
            ({"__name__": metric, **GPU_B, **POD}, values[metric]("GPU-bbbb")),
        ]
    if metric == "gpufleet_process_gpu_memory_used_bytes":
        labels = {
            "__name__": metric,
            "gpu": "0",
            "UUID": "GPU-aaaa",
            "pid": "4242",
            "process": "python",
            "namespace": "research",
            "user": "alice",
            "workload": "bert",
            "instance": "10.0.0.1:9400",
        }
        return [(labels, 512.0 * MIB)]
    return []


class FakePrometheus:
    """Answers /api/v1/series and /api/v1/query_range like Prometheus, from fake_series."""

    def __init__(self, series: Callable[[str, float], list[tuple[dict[str, str], float]]]):
        self.series = series
        self.ranges: list[tuple[str, float, float, float]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        if request.url.path == "/api/v1/series":
            labels = [labels for labels, _ in self.series(params["match[]"], float(params["end"]))]
            return httpx.Response(200, json={"status": "success", "data": labels})
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
        if (end - start) / step > 11_000:
            return httpx.Response(
                400,
                json={
                    "status": "error",
                    "errorType": "bad_data",
                    "error": "exceeded maximum resolution of 11,000 points per timeseries. "
                    "Try decreasing the query resolution (?step=XX)",
                },
            )
        self.ranges.append((params["query"], start, end, step))
        result: dict[str, dict[str, Any]] = {}
        ts = start
        while ts <= end:
            for labels, value in self.series(params["query"], ts):
                key = json.dumps(labels, sort_keys=True)
                item = result.setdefault(key, {"metric": labels, "values": []})
                item["values"].append([ts, "NaN" if math.isnan(value) else repr(value)])
            ts += step
        body = {
            "status": "success",
            "data": {"resultType": "matrix", "result": list(result.values())},
        }
        return httpx.Response(200, json=body)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "prom.db")
    try:
        yield store
    finally:
        store.close()


def test_dcgm_series_join_into_gpu_samples_with_units_and_attribution(sqlite_store: Store) -> None:
    fake = FakePrometheus(fake_series)
    report = import_prometheus(
        sqlite_store,
        URL,
        start_s=T0,
        end_s=T0 + 600,
        step_s=60,
        cluster="prod",
        transport=httpx.MockTransport(fake),
        clock=lambda: T0 + 3600,
    )
    assert report.entities == 2
    assert report.samples_written == 20
    assert report.snapshots_written == 10
    assert (report.first_ts_s, report.last_ts_s) == (T0, T0 + 540)
    assert report.rows_rejected == 0
    assert report.rows_read == report.rows_imported == 10 * (2 * 6 + 1)
    inventory = sqlite_store.inventory()
    assert [(g.cluster, g.node, g.uuid, g.index, g.name) for g in inventory] == [
        ("prod", "node1", "GPU-aaaa", 0, "NVIDIA A100-SXM4-80GB"),
        ("prod", "node1", "GPU-bbbb", 1, "NVIDIA A100-SXM4-80GB"),
    ]
    assert inventory[0].mem_total_bytes == 81_024 * MIB

    def raw(metric: str, uuid: str) -> list[tuple[float, float | None]]:
        (series,) = sqlite_store.gpu_series(
            metric=metric, start_s=T0, end_s=T0 + 600, resolution=Resolution.RAW, uuid=uuid
        )
        return [(p.ts_s, p.mean) for p in series.points]

    assert raw("util_gpu_pct", "GPU-bbbb") == [
        (T0 + 60 * i, util_of("GPU-bbbb", T0 + 60 * i)) for i in range(10)
    ]
    assert {v for _, v in raw("mem_used_bytes", "GPU-aaaa")} == {1024 * MIB}
    assert {v for _, v in raw("power_w", "GPU-aaaa")} == {250.5}
    assert {v for _, v in raw("clock_sm_mhz", "GPU-aaaa")} == {1410.0}
    usage = sqlite_store.workload_usage(start_s=T0, end_s=T0 + 3600)
    held = {(u.uuid, u.namespace, u.user, u.workload): u.gpu_s for u in usage}
    # GPU A: gpufleet's process series; GPU B: dcgm-exporter's pod labels.
    assert held == {
        ("GPU-aaaa", "research", "alice", "bert"): pytest.approx(600.0),
        ("GPU-bbbb", "ml", "unknown", "train-0"): pytest.approx(600.0),
    }


def test_long_ranges_are_chunked_under_the_points_limit(sqlite_store: Store) -> None:
    def one_gpu(metric: str, ts: float) -> list[tuple[dict[str, str], float]]:
        if metric != "DCGM_FI_DEV_GPU_UTIL":
            return []
        return [({"__name__": metric, **GPU_A}, 50.0)]

    fake = FakePrometheus(one_gpu)
    progress: list[tuple[int, int | None]] = []
    report = import_prometheus(
        sqlite_store,
        URL + "/",
        start_s=T0 + 0.5,  # rounded up to the step grid
        end_s=T0 + 25_001,
        step_s=1,
        transport=httpx.MockTransport(fake),
        progress=lambda d, t: progress.append((d, t)),
        clock=lambda: T0 + 30_000,
    )
    util_ranges = [r for r in fake.ranges if r[0] == "DCGM_FI_DEV_GPU_UTIL"]
    assert [(s - T0, e - T0) for _, s, e, _ in util_ranges] == [
        (1, 10_000),
        (10_001, 20_000),
        (20_001, 25_000),
    ]
    assert progress == [(10_000, 25_000), (20_000, 25_000), (25_000, 25_000)]
    assert report.samples_written == 25_000
    assert report.first_ts_s == T0 + 1
    assert sqlite_store.inventory()[0].cluster == "imported"


def test_non_finite_points_are_rejected_not_stored(sqlite_store: Store) -> None:
    def gaps(metric: str, ts: float) -> list[tuple[dict[str, str], float]]:
        if metric != "DCGM_FI_DEV_GPU_UTIL":
            return []
        return [({"__name__": metric, **GPU_A}, math.nan if ts == T0 + 60 else 10.0)]

    report = import_prometheus(
        sqlite_store,
        URL,
        start_s=T0,
        end_s=T0 + 180,
        transport=httpx.MockTransport(FakePrometheus(gaps)),
        clock=lambda: T0,
    )
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (3, 2, 1)
    example = report.rejections["not_finite"].examples[0]
    assert "DCGM_FI_DEV_GPU_UTIL" in example.source
    assert "GPU-aaaa" in example.source
    assert report.samples_written == 2


def _fail_with(handler: Callable[[httpx.Request], httpx.Response], store: Store) -> str:
    with pytest.raises(ImportFailedError) as err:
        import_prometheus(
            store, URL, start_s=T0, end_s=T0 + 600, transport=httpx.MockTransport(handler)
        )
    return str(err.value)


def test_prometheus_errors_say_what_to_fix(sqlite_store: Store) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    assert "cannot reach Prometheus at http://prom.test:9090" in _fail_with(
        unreachable, sqlite_store
    )

    def refuses(request: httpx.Request) -> httpx.Response:
        body = {"status": "error", "errorType": "bad_data", "error": "invalid parameter 'start'"}
        return httpx.Response(400, json=body)

    message = _fail_with(refuses, sqlite_store)
    assert "HTTP 400, bad_data" in message
    assert "invalid parameter 'start'" in message

    def not_prometheus(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>Grafana</html>")

    assert "server's root" in _fail_with(not_prometheus, sqlite_store)

    def needs_login(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="Unauthorized")

    assert "credentials" in _fail_with(needs_login, sqlite_store)

    def empty(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "success", "data": []})

    assert "no DCGM_FI_DEV_GPU_UTIL series" in _fail_with(empty, sqlite_store)
    assert sqlite_store.inventory() == []


def test_bad_arguments_fail_before_any_request(sqlite_store: Store) -> None:
    with pytest.raises(ImportFailedError, match="must be after the start"):
        import_prometheus(sqlite_store, URL, start_s=T0, end_s=T0)
    with pytest.raises(ImportFailedError, match="positive number"):
        import_prometheus(sqlite_store, URL, start_s=T0, end_s=T0 + 60, step_s=0)
    with pytest.raises(ImportFailedError, match="http://"):
        import_prometheus(sqlite_store, "localhost:9090", start_s=T0, end_s=T0 + 60)


# ---- a real Prometheus scraping a real agent ---------------------------------------------

PROMETHEUS = Path("/usr/bin/prometheus")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_round_trip_through_a_real_prometheus(tmp_path: Path) -> None:
    if not PROMETHEUS.exists() and shutil.which("prometheus") is None:
        pytest.fail(
            "the Prometheus server is missing: run scripts/system-deps.sh (it installs "
            "Debian's prometheus package, which ships /usr/bin/prometheus and promtool)"
        )
    binary = str(PROMETHEUS) if PROMETHEUS.exists() else str(shutil.which("prometheus"))
    agent_port, prom_port = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: gpufleet\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{agent_port}']\n"
    )
    agent = _start(
        [
            sys.executable,
            "-c",
            "from gpufleet.cli.main import main; main()",
            "agent",
            "--source",
            "sim",
            "--sim-gpus",
            "2",
            "--interval",
            "1",
            "--no-store",
            "--port",
            str(agent_port),
        ],
        tmp_path / "agent.log",
    )
    prometheus = _start(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        tmp_path / "prometheus.log",
    )
    url = f"http://127.0.0.1:{prom_port}"
    try:
        _wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{agent_port}/metrics").status_code == 200,
            15,
            "the agent's /metrics",
        )
        _wait_for(lambda: httpx.get(f"{url}/-/ready").status_code == 200, 15, "Prometheus")

        def first_sample() -> float | None:
            body = httpx.get(
                f"{url}/api/v1/query", params={"query": "min(timestamp(DCGM_FI_DEV_GPU_UTIL))"}
            ).json()
            result = body["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        _wait_for(lambda: first_sample() is not None, 15, "the first scrape")
        begin = first_sample()
        assert begin is not None
        _wait_for(lambda: time.time() >= begin + 11, 15, "10 s of data")
        start_s, end_s = math.ceil(begin), math.floor(time.time())

        store = open_store(tmp_path / "imported.db")
        try:
            report = import_prometheus(store, url, start_s=start_s, end_s=end_s, step_s=1)
            inventory = store.inventory()
            imported = {
                s.subject: {p.ts_s: p.mean for p in s.points}
                for s in store.gpu_series(
                    metric="util_gpu_pct",
                    start_s=start_s,
                    end_s=end_s,
                    resolution=Resolution.RAW,
                )
            }
        finally:
            store.close()
        expected = httpx.get(
            f"{url}/api/v1/query_range",
            params={"query": "DCGM_FI_DEV_GPU_UTIL", "start": start_s, "end": end_s - 1, "step": 1},
        ).json()["data"]["result"]
    finally:
        _stop(prometheus)
        _stop(agent)

    assert report.entities == 2
    assert len(inventory) == 2
    uuids = {g.uuid for g in inventory}
    assert uuids == {s["metric"]["UUID"] for s in expected}
    assert all(u.startswith("GPU-") for u in uuids)
    assert {g.name for g in inventory} == {s["metric"]["modelName"] for s in expected}
    for series in expected:
        want = {float(ts): float(v) for ts, v in series["values"]}
        assert len(want) >= 10
        assert imported[series["metric"]["UUID"]] == want
    assert report.samples_written == sum(len(s["values"]) for s in expected)
