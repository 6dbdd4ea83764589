"""The command line as a user meets it: outputs, JSON, and one-line errors with non-zero exits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpufleet.cli.main import app
from gpufleet.collectors.sim import SimGpuSource
from gpufleet.model import Alert, Snapshot
from gpufleet.store import open_store

runner = CliRunner()


@pytest.fixture
def history_db(tmp_path: Path) -> str:
    """Three hours of one simulated node at one sample a minute, and one alert."""
    db = str(tmp_path / "h.db")
    store = open_store(db)
    source = SimGpuSource(gpus=2, seed=3, node="n1")
    now = time.time()
    store.write_snapshots(
        [
            Snapshot(
                ts_s=t, cluster="c1", node="n1", gpus=source.sample(t), system=None, interval_s=60
            )
            for t in (now - 3 * 3600 + 60 * i for i in range(180))
        ]
    )
    store.save_alert(
        Alert(
            rule="gpu_temperature",
            severity="warning",
            node="n1",
            subject="GPU-x",
            message="GPU 0 is hot",
            value=84.0,
            threshold=82.0,
            started_s=now - 600,
            fired_s=now - 500,
            cluster="c1",
        )
    )
    store.close()
    return db


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert "gpufleet" in result.output


def test_status_sim_json() -> None:
    result = runner.invoke(app, ["status", "--source", "sim", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["gpu_info"]["available"] is True
    assert data["gpu_metrics"]["gpu_count"] == 8
    assert data["system"]["cpu"]["cpu_count"] >= 1


def test_status_table_lists_gpus() -> None:
    result = runner.invoke(app, ["status", "--source", "sim"])
    assert result.exit_code == 0, result.output
    assert "NVIDIA H100 80GB HBM3" in result.output


def test_status_auto_without_gpu_reports_host_only() -> None:
    result = runner.invoke(app, ["status", "--source", "auto", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["gpu_info"]["available"] is False
    assert data["gpu_info"]["reason"]
    assert data["gpu_metrics"] is None


def test_status_nvml_without_gpu_is_one_line_error() -> None:
    result = runner.invoke(app, ["status", "--source", "nvml"])
    assert result.exit_code == 2
    assert "--source nvml" in result.output
    assert "Traceback" not in result.output


def test_history_json_from_db(history_db: str) -> None:
    result = runner.invoke(
        app,
        [
            "history",
            "util_gpu_pct",
            "--db",
            history_db,
            "--from",
            "-2h",
            "--resolution",
            "1h",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["resolution"] == "1h"
    assert len(data["series"]) == 2
    assert all(p["count"] > 0 for s in data["series"] for p in s["points"])


def test_history_table_one_gpu(history_db: str) -> None:
    result = runner.invoke(
        app, ["history", "power_w", "--db", history_db, "--from", "-30m", "--gpu", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "gpu 1" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["history", "bogus"], "unknown metric"),
        (["history", "--from", "last tuesday"], "cannot read time"),
        (["history", "--from", "-1h", "--to", "-2h"], "must be before"),
        (["history", "--resolution", "5m"], "unknown resolution"),
        (["history", "--gpu", "GPU-none"], "has no history"),
    ],
)
def test_history_errors(history_db: str, args: list[str], needle: str) -> None:
    result = runner.invoke(app, [*args, "--db", history_db])
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output


def test_history_host_memory_needs_system_flag(history_db: str) -> None:
    gpu = runner.invoke(app, ["history", "mem_used_bytes", "--db", history_db, "--json"])
    assert gpu.exit_code == 0, gpu.output
    assert all(s["subject"].startswith("GPU-") for s in json.loads(gpu.stdout)["series"])
    host = runner.invoke(app, ["history", "mem_used_bytes", "--system", "--db", history_db])
    assert host.exit_code == 0, host.output
    wrong = runner.invoke(app, ["history", "util_gpu_pct", "--system", "--db", history_db])
    assert wrong.exit_code == 2
    assert "not a host metric" in wrong.output


def test_history_both_sources_is_an_error(history_db: str) -> None:
    result = runner.invoke(app, ["history", "--db", history_db, "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "not both" in result.output


def test_history_unreachable_agent() -> None:
    result = runner.invoke(app, ["history", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "cannot reach" in result.output


def test_alerts_from_db(history_db: str) -> None:
    result = runner.invoke(app, ["alerts", "--db", history_db, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["count"] == 1
    assert data["alerts"][0]["rule"] == "gpu_temperature"
    table = runner.invoke(app, ["alerts", "--db", history_db])
    assert "GPU 0 is" in table.output
    assert "hot" in table.output


def test_db_that_is_a_directory(tmp_path: Path) -> None:
    result = runner.invoke(app, ["alerts", "--db", str(tmp_path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["sessions", "list"],
        ["ask", "GPU utilization trend over the past 7 days"],
        ["alerts"],
        ["history"],
        ["analyze", "utilization"],
        ["mcp"],
    ],
)
def test_an_empty_file_is_refused_and_left_empty(tmp_path: Path, args: list[str]) -> None:
    empty = tmp_path / "e.db"
    empty.touch()
    result = runner.invoke(app, [*args, "--db", str(empty)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"gpufleet: {empty} is an empty file, not a gpufleet database")
    assert len(result.output.strip().splitlines()) == 1
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.db"]  # no -wal, no -shm


def test_demo_may_start_its_history_in_an_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    db.touch()
    result = runner.invoke(
        app, ["demo", "--db", str(db), "--days", "0.1", "--nodes", "2", "--gpus", "4", "--no-serve"]
    )
    assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["sessions", "list", "--db", str(db)])
    assert listed.exit_code == 0, listed.output


def test_agent_refuses_remote_bind_without_flag() -> None:
    result = runner.invoke(app, ["agent", "--host", "0.0.0.0", "--no-store"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output


def test_agent_rejects_bad_settings() -> None:
    result = runner.invoke(app, ["agent", "--interval", "-1", "--no-store"])
    assert result.exit_code == 2
    assert "interval_s" in result.output


def test_agent_rejects_missing_config(tmp_path: Path) -> None:
    result = runner.invoke(app, ["agent", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "config file not found" in result.output


def test_config_file_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpufleet.settings import load_settings

    cfg = tmp_path / "g.toml"
    cfg.write_text(
        'interval_s = 7\nport = 9001\ncluster = "from-file"\n[alerts]\ngpu_mem_pct = 90\n'
    )
    monkeypatch.setenv("GPUFLEET_PORT", "9002")
    monkeypatch.setenv("GPUFLEET_ALERTS__HOLD_S", "5")
    settings = load_settings(cfg, cluster="from-flag")
    assert settings.interval_s == 7
    assert settings.port == 9002
    assert settings.cluster == "from-flag"
    assert settings.alerts.gpu_mem_pct == 90
    assert settings.alerts.hold_s == 5


def test_demo_writes_history(tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    result = runner.invoke(
        app, ["demo", "--db", db, "--days", "0.25", "--nodes", "2", "--gpus", "4", "--no-serve"]
    )
    assert result.exit_code == 0, result.output
    store = open_store(db)
    try:
        inventory = store.inventory()
        assert {i.cluster for i in inventory} == {"gpu-cluster-01"}
        assert len(inventory) == 8
    finally:
        store.close()
