"""``gpufleet analyze``, ``recommend``, ``execute`` and ``executions`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.store_samples import T0
from tests.unit.test_api_analysis import HOURS, hand_store
from typer.testing import CliRunner

from gpufleet.cli.main import app

runner = CliRunner()
WINDOW = ["--from", str(T0), "--to", str(T0 + HOURS * 3600)]


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "hand.db"
    hand_store(path).close()
    return str(path)


def _json(args: list[str]) -> dict[str, object]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_utilization_json_has_the_issue_shape(db: str) -> None:
    out = _json(["analyze", "utilization", "--db", db, *WINDOW, "--by", "user", "--json"])
    assert out["mean_gpu_util_pct"] == pytest.approx(30.0)
    assert out["idle_fraction"] == pytest.approx(0.5)
    assert out["gpu_hours"] == pytest.approx(8.0)
    assert out["idle_gpu_hours"] == pytest.approx(4.0)
    assert out["samples"] == 2 * HOURS * 60
    by = out["by"]
    assert isinstance(by, list)
    rows = {g["key"]: g for g in by}
    assert rows["alice"]["mean_gpu_util_pct"] == pytest.approx(60.0)
    assert rows["bob"]["idle_gpu_hours"] == pytest.approx(2.0)
    # A higher idle threshold changes what counts as idle: 60 % is idle below 70 %.
    out = _json(["analyze", "utilization", "--db", db, *WINDOW, "--idle-threshold", "70", "--json"])
    assert out["idle_fraction"] == pytest.approx(1.0)


def test_human_outputs_name_the_findings(db: str) -> None:
    result = runner.invoke(app, ["analyze", "utilization", "--db", db, *WINDOW, "--by", "user"])
    assert result.exit_code == 0, result.output
    assert "mean GPU utilization" in result.output
    assert "30.0 %" in result.output
    result = runner.invoke(app, ["analyze", "waste", "--db", db, *WINDOW])
    assert result.exit_code == 0, result.output
    assert "nb" in result.output
    assert "idle while allocated: 2.0 GPU-h" in result.output
    result = runner.invoke(app, ["analyze", "trends", "--db", db, *WINDOW, "--granularity", "hour"])
    assert result.exit_code == 0, result.output
    assert "slope" in result.output
    result = runner.invoke(app, ["analyze", "opportunities", "--db", db, *WINDOW])
    assert result.exit_code == 0, result.output
    assert "team/bob/nb" in result.output
    result = runner.invoke(
        app,
        [
            "analyze",
            "drilldown",
            "--db",
            db,
            "--before-from",
            str(T0),
            "--before-to",
            str(T0 + 7200),
            "--from",
            str(T0 + 7200),
            "--to",
            str(T0 + 4 * 3600),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "bob" in result.output


def test_recommend_then_execute_dry_run_then_log(db: str) -> None:
    found = _json(["recommend", "--db", db, *WINDOW, "--json"])
    recs = found["recommendations"]
    assert isinstance(recs, list)
    assert recs
    rid = recs[0]["id"]
    human = runner.invoke(app, ["recommend", "--db", db, *WINDOW])
    assert human.exit_code == 0
    assert rid in human.output
    done = _json(["execute", rid, "--db", db, *WINDOW, "--requested-by", "me", "--json"])
    assert done["dry_run"] is True
    (e,) = done["executions"]  # type: ignore[misc]
    assert (e["status"], e["requested_by"]) == ("planned", "me")
    refused = runner.invoke(app, ["execute", rid, "--db", db, *WINDOW, "--run"])
    assert refused.exit_code == 2
    assert "executor" in refused.output
    log = _json(["executions", "--db", db, "--json"])
    assert log["count"] == 1
    human = runner.invoke(app, ["executions", "--db", db])
    assert "planned" in human.output


def test_report_formats_and_output_file(db: str, tmp_path: Path) -> None:
    md = runner.invoke(app, ["analyze", "report", "--db", db, *WINDOW])
    assert md.exit_code == 0, md.output
    assert "GPU utilization" in md.stdout
    target = tmp_path / "r.html"
    html = runner.invoke(
        app, ["analyze", "report", "--db", db, *WINDOW, "--format", "html", "-o", str(target)]
    )
    assert html.exit_code == 0, html.output
    assert "<svg" in target.read_text()
    js = _json(["analyze", "report", "--db", db, *WINDOW, "--json"])
    assert js["headline"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["analyze", "utilization", *WINDOW, "--by", "team"], "namespace"),
        (["analyze", "utilization", *WINDOW, "--namespace", "nope"], "team"),
        (["analyze", "utilization", "--from", "whenever"], "cannot read time"),
        (["analyze", "waste", "--from", str(T0 + 10), "--to", str(T0)], "must be before"),
        (["analyze", "trends", *WINDOW, "--granularity", "year"], "granularity"),
        (["analyze", "report", *WINDOW, "--format", "pdf"], "format"),
        (["analyze", "drilldown", *WINDOW, "--before-from", "-1d"], "before"),
        (["recommend", *WINDOW, "--kind", "magic"], "kind"),
        (["execute", "deadbeef", *WINDOW], "current recommendations"),
        (["executions", "--limit", "0"], "limit"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(db: str, args: list[str], needle: str) -> None:
    result = runner.invoke(app, [*args, "--db", db])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert result.output.startswith("gpufleet:")
    assert "Traceback" not in result.output


def test_a_missing_database_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = runner.invoke(app, ["analyze", "utilization", "--db", str(missing)])
    assert result.exit_code == 2
    assert "no gpufleet database" in result.output
    assert not missing.exists()
