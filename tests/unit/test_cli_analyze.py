"""``gpufleet analyze``, ``recommend``, ``execute`` and ``executions`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.store_samples import T0, gpu, proc, snap
from tests.unit.test_api_analysis import HOURS, hand_store
from typer.testing import CliRunner

from gpufleet.cli.main import app
from gpufleet.store import open_store

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
        (["analyze", "waste", *WINDOW, "--workload-kind", "training"], "workload kinds: unknown"),
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


def _words(text: str) -> str:
    """``text`` with every run of whitespace (table wrapping included) as one space."""
    return " ".join(text.split())


def test_brackets_in_messages_are_printed_not_eaten_as_markup(db: str) -> None:
    found = _json(["recommend", "--db", db, *WINDOW, "--json"])
    rid = found["recommendations"][0]["id"]  # type: ignore[index]
    refused = runner.invoke(app, ["execute", rid, "--db", db, *WINDOW, "--run"])
    assert refused.exit_code == 2
    assert "set [executor] kind =" in _words(refused.output)
    assert "set kind =" not in _words(refused.output)
    dry = runner.invoke(app, ["execute", rid, "--db", db, *WINDOW])
    assert dry.exit_code == 0, dry.output
    assert "set [executor] kind =" in _words(dry.output)
    log = runner.invoke(app, ["executions", "--db", db])
    assert log.exit_code == 0, log.output
    assert "set [executor] kind =" in _words(log.output)
    # The executor of a dry run is "dry-run", said once.
    assert "dry-run" in log.output
    assert "(dry run)" not in log.output


def test_names_from_the_store_are_printed_as_they_are(tmp_path: Path) -> None:
    # As the hand store, with markup-like names: GPU-b is held idle by [b]'s [red]job[/red].
    store = open_store(tmp_path / "brackets.db")
    store.write_snapshots(
        [
            snap(
                T0 + m * 60,
                gpu("GPU-a", 60.0, procs=[proc(1, "train")]),
                gpu("GPU-b", 0.0, index=1, procs=[proc(2, "[red]job[/red]", user="[b]")]),
            )
            for m in range(HOURS * 60)
        ]
    )
    store.close()
    window = WINDOW
    db = str(tmp_path / "brackets.db")
    result = runner.invoke(app, ["analyze", "utilization", "--db", db, *window, "--by", "user"])
    assert result.exit_code == 0, result.output
    assert "[b]" in result.output
    result = runner.invoke(app, ["analyze", "waste", "--db", db, *window, "--by", "user"])
    assert result.exit_code == 0, result.output
    assert "[red]job[/red]" in result.output
    result = runner.invoke(app, ["recommend", "--db", db, *window])
    assert result.exit_code == 0, result.output
    assert "[red]job[/red]" in result.output


def test_the_summary_line_says_readings_in_plain_words(db: str) -> None:
    result = runner.invoke(app, ["analyze", "utilization", "--db", db, *WINDOW])
    assert result.exit_code == 0, result.output
    assert "(2 GPUs, 480 readings (GPU rollups))" in result.output
    assert "gpu_samples" not in result.output
    result = runner.invoke(app, ["analyze", "utilization", "--db", db, *WINDOW, "--user", "bob"])
    assert result.exit_code == 0, result.output
    assert "readings (workload rows)" in result.output
    assert "workload_samples" not in result.output


def test_idle_threshold_defaults_to_the_settings(db: str, tmp_path: Path) -> None:
    env = {"GPUFLEET_IDLE_THRESHOLD_PCT": "70"}
    # 60 % is idle below 70 %: every GPU-hour is idle.
    result = runner.invoke(app, ["analyze", "utilization", "--db", db, *WINDOW], env=env)
    assert result.exit_code == 0, result.output
    assert "(< 70 %)" in result.output
    assert "(< 5 %)" not in result.output
    out = json.loads(
        runner.invoke(
            app, ["analyze", "utilization", "--db", db, *WINDOW, "--json"], env=env
        ).stdout
    )
    assert out["idle_threshold_pct"] == 70
    assert out["idle_fraction"] == pytest.approx(1.0)
    # A config file sets it as well; an explicit flag wins over both.
    config = tmp_path / "gpufleet.toml"
    config.write_text("idle_threshold_pct = 70\n")
    waste = _json(["analyze", "waste", "--db", db, *WINDOW, "--config", str(config), "--json"])
    assert waste["idle_threshold_pct"] == 70
    flag = ["--idle-threshold", "5", "--json"]
    out = json.loads(
        runner.invoke(app, ["analyze", "utilization", "--db", db, *WINDOW, *flag], env=env).stdout
    )
    assert out["idle_threshold_pct"] == 5
    assert out["idle_fraction"] == pytest.approx(0.5)
    found = _json(["recommend", "--db", db, *WINDOW, "--config", str(config), "--json"])
    assert found["idle_threshold_pct"] == 70


DRILL = [
    "--before-from",
    str(T0),
    "--before-to",
    str(T0 + 7200),
    "--from",
    str(T0 + 7200),
    "--to",
    str(T0 + 4 * 3600),
]


def test_drilldown_levels_and_expand(db: str) -> None:
    out = _json(["analyze", "drilldown", "--db", db, *DRILL, "--levels", "user", "--json"])
    assert out["levels"] == ["user"]
    root = out["root"]
    assert isinstance(root, dict)
    assert root["child_level"] == "user"
    assert {c["name"] for c in root["children"]} == {"alice", "bob"}
    assert all(not c["children"] for c in root["children"])
    # --expand 2 drills into both users, not only the biggest driver.
    walk = ["--levels", "user,workload"]
    two = _json(["analyze", "drilldown", "--db", db, *DRILL, *walk, "--expand", "2", "--json"])
    children = two["root"]["children"]  # type: ignore[index]
    assert all(c["children"] for c in children)
    one = _json(["analyze", "drilldown", "--db", db, *DRILL, *walk, "--json"])
    assert sum(1 for c in one["root"]["children"] if c["children"]) == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--levels", "rack"], "levels must be distinct values of namespace, user, workload"),
        (["--levels", "user,user"], "levels must be distinct values"),
        (["--expand", "0"], "--expand must be between 1 and 20; got 0"),
        (["--expand", "21"], "--expand must be between 1 and 20; got 21"),
        (["--top", "0"], "--top must be between 1 and 100; got 0"),
    ],
)
def test_drilldown_bad_levels_and_expand(db: str, args: list[str], needle: str) -> None:
    result = runner.invoke(app, ["analyze", "drilldown", "--db", db, *DRILL, *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert result.output.startswith("gpufleet:")
