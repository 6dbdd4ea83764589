"""``gpufleet import prometheus`` as a user meets it, against a tiny Prometheus range-query
server on 127.0.0.1 (the CLI has no way to take an httpx mock transport).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.unit.cli_import_support import (
    T0,
    invoke,
    iso,
    one_line_error,
    stored_db,
    util_points,
)

from gpufleet.store import Resolution, open_store

# ---- Prometheus ---------------------------------------------------------------------

GPU_LABELS = {
    "gpu": "0",
    "UUID": "GPU-prom-a",
    "device": "nvidia0",
    "modelName": "NVIDIA H100 80GB HBM3",
    "Hostname": "gpu-node-1",
    "DCGM_FI_DRIVER_VERSION": "550.54.15",
    "instance": "10.0.0.7:9400",
    "job": "dcgm",
}
GPU_LABELS_B = {**GPU_LABELS, "gpu": "1", "UUID": "GPU-prom-b", "device": "nvidia1"}
POD = {"pod": "train-0", "namespace": "ml", "container": "trainer"}


def canned(metric: str, ts: float) -> list[tuple[dict[str, str], float]]:
    """dcgm-exporter's answer for ``metric`` at ``ts``: two GPUs, one of them a pod's."""
    values = {
        "DCGM_FI_DEV_GPU_UTIL": (25.0, 75.0),
        "DCGM_FI_DEV_FB_USED": (1024.0, 40_000.0),
        "DCGM_FI_DEV_FB_FREE": (80_000.0, 41_024.0),
        "DCGM_FI_DEV_GPU_TEMP": (40.0, 66.0),
    }
    if metric not in values:
        return []
    a, b = values[metric]
    return [
        ({"__name__": metric, **GPU_LABELS}, a),
        ({"__name__": metric, **GPU_LABELS_B, **POD}, b),
    ]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body: dict[str, Any]
        if parts.path == "/api/v1/series":
            found = [lab for lab, _ in canned(params["match[]"], float(params["end"]))]
            body = {"status": "success", "data": found}
        elif parts.path == "/api/v1/query_range":
            start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
            result: dict[str, dict[str, Any]] = {}
            ts = start
            while ts <= end:
                for labels, value in canned(params["query"], ts):
                    item = result.setdefault(
                        json.dumps(labels, sort_keys=True), {"metric": labels, "values": []}
                    )
                    item["values"].append([ts, repr(value)])
                ts += step
            body = {
                "status": "success",
                "data": {"resultType": "matrix", "result": list(result.values())},
            }
        else:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_prometheus_import_lands_in_the_store(tmp_path: Path, prometheus: str) -> None:
    db = tmp_path / "prom" / "out.db"
    start, end = T0, T0 + 600

    result = invoke(
        "prometheus",
        "--url",
        prometheus,
        "--from",
        iso(start),
        "--to",
        f"{end:.0f}",
        "--step",
        "60",
        "--cluster",
        "lab",
        "--db",
        str(db),
    )

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "queries" in out
    assert "points" in out
    assert "20 samples in 10 snapshots" in out
    assert f"{iso(start)} .. {iso(end - 60)}" in out
    store = open_store(db)
    try:
        series = store.gpu_series(
            metric="util_gpu_pct",
            start_s=start,
            end_s=end,
            resolution=Resolution.RAW,
            cluster="lab",
        )
        means = {s.subject: {p.mean for p in s.points} for s in series}
        assert means == {"GPU-prom-a": {25.0}, "GPU-prom-b": {75.0}}
        assert {s.node for s in series} == {"gpu-node-1"}
        assert len(series[0].points) == 10
    finally:
        store.close()


def test_prometheus_json(tmp_path: Path, prometheus: str) -> None:
    result = invoke(
        "prometheus",
        "--url",
        prometheus,
        "--from",
        f"{T0:.0f}",
        "--to",
        f"{T0 + 300:.0f}",
        "--db",
        str(tmp_path / "out.db"),
        "--json",
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["entities"] == 2
    assert report["samples_written"] == 10
    assert report["rows_rejected"] == 0
    assert report["first_ts"] == iso(T0)


def test_prometheus_to_before_from(tmp_path: Path, prometheus: str) -> None:
    db = stored_db(tmp_path)
    message = one_line_error(
        invoke("prometheus", "--url", prometheus, "--from", "-1h", "--to", "-2h", "--db", str(db))
    )
    assert "'from'" in message
    assert "must be before 'to'" in message
    assert len(util_points(db)["GPU-a"]) == 3


def test_prometheus_unreadable_time(tmp_path: Path, prometheus: str) -> None:
    message = one_line_error(
        invoke("prometheus", "--url", prometheus, "--from", "last tuesday", "--to", "now")
    )
    assert "cannot read time 'last tuesday'" in message
    assert "ISO 8601" in message


def test_prometheus_unreachable(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = stored_db(tmp_path)
    fresh = tmp_path / "fresh.db"

    for target in (db, fresh):
        message = one_line_error(
            invoke(
                "prometheus",
                "--url",
                f"http://127.0.0.1:{port}",
                "--from",
                "-1h",
                "--to",
                "now",
                "--db",
                str(target),
            )
        )
        assert f"cannot reach Prometheus at http://127.0.0.1:{port}" in message
        assert "check the URL" in message
    assert len(util_points(db)["GPU-a"]) == 3
    assert not fresh.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from", "-1h", "--to", "now"], "--url required"),
        (["--url", "http://x", "--to", "now"], "--from required"),
        (["--url", "ftp://x", "--from", "-1h", "--to", "now"], "must start with http://"),
        (["--url", "http://x", "--from", "-1h", "--to", "now", "--step", "0"], "--step must be"),
    ],
)
def test_prometheus_bad_options(tmp_path: Path, args: list[str], expected: str) -> None:
    message = one_line_error(invoke("prometheus", *args, "--db", str(tmp_path / "p.db")))
    assert expected in message
    assert not (tmp_path / "p.db").exists()
