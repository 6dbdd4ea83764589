"""The Ray scale-out adapter against a real Ray head on loopback (two logical GPUs): a hub
task with ``"engine": "ray"`` runs as a Ray job with ``entrypoint_num_gpus``, its exit code
and output come back to the hub's queue, a failing one fails, a cancelled one is stopped
in Ray, and an engine the hub lacks is refused.

The head comes from the venv ``make test`` builds (``.venv-ray``, ``$GPUFLEET_TEST_RAY``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gpufleet.api.hub_app import create_hub_app
from gpufleet.fleet.hub import Hub
from gpufleet.fleet.scaleout_ray import RayJobs
from gpufleet.store import open_store
from gpufleet.store.task_records import TaskRecords

pytestmark = pytest.mark.slow

RAY = os.environ.get("GPUFLEET_TEST_RAY") or str(
    Path(__file__).resolve().parents[2] / ".venv-ray" / "bin" / "ray"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    if not Path(RAY).exists():
        pytest.skip(f"no Ray at {RAY}: `make test` builds .venv-ray with it")
    temp = tempfile.mkdtemp(prefix="gfray", dir="/tmp")
    port, dash = _free_port(), _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(
        [
            RAY, "start", "--head", "--port", str(port), "--dashboard-port", str(dash),
            "--dashboard-host", "127.0.0.1", "--include-dashboard", "true", "--num-gpus", "2",
            "--num-cpus", "2", "--temp-dir", temp, "--disable-usage-stats",
        ],
        env=env, check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    url = f"http://127.0.0.1:{dash}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/api/version", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the Ray dashboard did not come up"
        time.sleep(0.5)
    try:
        yield url
    finally:
        subprocess.run(
            [RAY, "stop", "--force"], env=env, capture_output=True, timeout=120, check=False
        )


@pytest.fixture
def engines() -> Iterator[dict[str, RayJobs]]:
    made: dict[str, RayJobs] = {}
    yield made
    for e in made.values():
        e.close()


def _hub(
    tmp_path: Path, address: str | None, engines: dict[str, RayJobs]
) -> tuple[Hub, TestClient, dict[str, str]]:
    store = open_store(str(tmp_path / "hub.db"))
    assert isinstance(store, TaskRecords)
    if address is not None:
        engines["ray"] = RayJobs(address)
    hub = Hub(store, engines=engines)
    text, _ = hub.create_token("alice", ["submit"])
    return hub, TestClient(create_hub_app(hub)), {"Authorization": f"Bearer {text}"}


def _until(hub: Hub, api: TestClient, auth: dict[str, str], task_id: str, *states: str) -> Any:
    deadline = time.monotonic() + 120
    while True:
        hub.tasks.schedule()
        got = api.get(f"/fleet/v1/tasks/{task_id}", headers=auth).json()
        if got["state"] in states:
            return got
        assert time.monotonic() < deadline, f"task still {got['state']}: {got}"
        time.sleep(0.5)


def test_tasks_run_as_ray_jobs(ray_head: str, tmp_path: Path, engines: dict[str, RayJobs]) -> None:
    hub, api, auth = _hub(tmp_path, ray_head, engines)
    code = (
        "import os; print('gpus', os.environ['CUDA_VISIBLE_DEVICES'], "
        "os.environ['GPUFLEET_TASK_PARTS'], os.environ['STEP'])"
    )
    r = api.post(
        "/fleet/v1/tasks",
        json={
            "command": [sys.executable, "-c", code],
            "gpus": 2,
            "engine": "ray",
            "env": {"STEP": "7"},
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["parts"][0]["node"] == f"ray/{ray_head}"
    assert task["parts"][0]["engine_id"].startswith(f"gpufleet-{task['id']}-0-")
    done = _until(hub, api, auth, task["id"], "succeeded", "failed")
    assert done["state"] == "succeeded", done
    assert done["exit_codes"] == [0]
    assert "gpus 0,1 1 7" in done["parts"][0]["output"]  # Ray gave it both logical GPUs

    bad = api.post(
        "/fleet/v1/tasks",
        json={"command": [sys.executable, "-c", "raise SystemExit(5)"], "engine": "ray"},
        headers=auth,
    ).json()
    failed = _until(hub, api, auth, bad["id"], "succeeded", "failed")
    assert failed["state"] == "failed"
    assert failed["exit_codes"] == [5]


def test_a_cancelled_task_is_stopped_in_ray(
    ray_head: str, tmp_path: Path, engines: dict[str, RayJobs]
) -> None:
    hub, api, auth = _hub(tmp_path, ray_head, engines)
    task = api.post(
        "/fleet/v1/tasks",
        json={"command": [sys.executable, "-c", "import time; time.sleep(300)"], "engine": "ray"},
        headers=auth,
    ).json()
    _until(hub, api, auth, task["id"], "running")
    engine_id = api.get(f"/fleet/v1/tasks/{task['id']}", headers=auth).json()["parts"][0][
        "engine_id"
    ]
    cancelled = api.post(f"/fleet/v1/tasks/{task['id']}/cancel", headers=auth).json()
    assert cancelled["state"] == "cancelled"
    deadline = time.monotonic() + 60
    while (job := httpx.get(f"{ray_head}/api/jobs/{engine_id}").json())["status"] != "STOPPED":
        assert time.monotonic() < deadline, f"Ray did not stop the job: {job}"
        time.sleep(0.5)


def test_an_engine_the_hub_lacks_is_refused(tmp_path: Path, engines: dict[str, RayJobs]) -> None:
    _, api, auth = _hub(tmp_path, None, engines)
    r = api.post("/fleet/v1/tasks", json={"command": ["ls"], "engine": "ray"}, headers=auth)
    assert r.status_code == 422
    assert "gpufleet hub --ray-address" in r.json()["detail"]
