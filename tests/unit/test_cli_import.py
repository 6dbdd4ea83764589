"""``gpufleet import csv`` as a user meets it: formats and timestamps, rejected rows with
their lines, retention warnings, one-line errors with exit 2, Ctrl-C, and the store afterwards
(``import prometheus`` is in ``test_cli_import_prometheus.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.unit.cli_import_support import (
    CSV_ARGS,
    DAY,
    HOUR,
    OLD_T0,
    T0,
    invoke,
    iso,
    one_line_error,
    rows,
    stored_db,
    tar_gz,
    util_points,
    write,
)

from gpufleet.cli import import_cmd
from gpufleet.store import Resolution, open_store

# ---- CSV: formats and timestamps ------------------------------------------------------


def test_plain_csv_with_epoch_times_lands_in_the_store(tmp_path: Path) -> None:
    src = write(tmp_path / "trace.csv", rows(10))
    db = tmp_path / "new" / "dir" / "out.db"  # import creates the database and its folders

    result = invoke("csv", str(src), "--db", str(db), *CSV_ARGS)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "20 read, 20 imported, 0 rejected" in out
    assert "GPUs" in out
    assert "2" in out
    assert f"{iso(T0)} .. {iso(T0 + 540)}" in out
    assert "20 samples in 10 snapshots" in out
    assert "rows/s" in out
    assert "elapsed" in out
    points = util_points(db)
    assert sorted(points) == ["GPU-a", "GPU-b"]
    assert points["GPU-a"][:2] == [(T0, 10.0), (T0 + 60, 11.0)]
    assert len(points["GPU-b"]) == 10


def test_gzip_csv_with_iso_times(tmp_path: Path) -> None:
    src = write(tmp_path / "trace.csv.gz", rows(5, as_iso=True))
    db = tmp_path / "out.db"

    result = invoke("csv", str(src), "--db", str(db), *CSV_ARGS, "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows_imported"] == 10
    assert report["first_ts"] == iso(T0)
    assert report["last_ts"] == iso(T0 + 240)
    assert util_points(db)["GPU-b"][0] == (T0, 50.0)


def test_csv_inside_tar_gz_and_store_metric_names(tmp_path: Path) -> None:
    text = "ts,mem_mib,pod\n" + "\n".join(
        f"{T0 + 60 * i:.0f},{100 + i},pod-{i % 2}" for i in range(8)
    )
    src = tar_gz(tmp_path / "trace.tar.gz", {"README": "not csv", "data/mem.csv": text + "\n"})
    db = tmp_path / "out.db"

    result = invoke(
        "csv",
        str(src),
        "--db",
        str(db),
        "--metric",
        "mem_used_bytes",
        "--time-col",
        "ts",
        "--value-col",
        "mem_mib",
        "--entity-col",
        "pod",
        "--entity-kind",
        "workload",
        "--namespace",
        "ml",
        "--value-scale",
        "1048576",
        "--json",
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows_imported"] == 8
    assert report["entities"] == 2
    assert "trace.tar.gz:data/mem.csv" in report["sources"]
    store = open_store(db)
    try:
        usage = store.gpu_series(
            metric="mem_used_bytes",
            start_s=T0 - HOUR,
            end_s=time.time(),
            resolution=Resolution.RAW,
        )
        by_uuid = {s.subject: s.points for s in usage}
        assert sorted(by_uuid) == ["workload-pod-0", "workload-pod-1"]
        assert by_uuid["workload-pod-0"][0].mean == 100 * 1024 * 1024
    finally:
        store.close()


def test_several_files_go_in_order(tmp_path: Path) -> None:
    first = write(tmp_path / "a.csv", rows(3))
    second = write(tmp_path / "b.csv", rows(3, start=T0 + 600))
    db = tmp_path / "out.db"

    result = invoke("csv", str(first), str(second), "--db", str(db), *CSV_ARGS, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_imported"] == 12
    assert len(util_points(db)["GPU-a"]) == 6


# ---- CSV: rejected rows -----------------------------------------------------------------


def bad_rows(tmp_path: Path) -> Path:
    lines = rows(4)
    lines.insert(2, f"{T0 + 30:.0f},abc,GPU-a")  # line 4: bad value
    lines.insert(5, "yesterday,5,GPU-b")  # line 7: bad time
    lines.append(f"{T0 + 1000:.0f},250,GPU-a")  # last line: out of range
    return write(tmp_path / "bad.csv", lines)


def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path) -> None:
    src = bad_rows(tmp_path)

    result = invoke("csv", str(src), "--db", str(tmp_path / "out.db"), *CSV_ARGS)

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "11 read, 8 imported, 3 rejected" in out
    assert "rejected rows" in out
    assert "bad.csv:4: cannot read value 'abc'" in out
    assert "bad.csv:7: cannot read time 'yesterday'" in out
    assert "bad.csv:12: value 250 outside 0..100 %" in out
    for reason in ("bad_value", "bad_time", "out_of_range"):
        assert reason in out
    assert "warning:" in out
    assert "3 rows were rejected" in out


def test_bad_rows_in_json(tmp_path: Path) -> None:
    src = bad_rows(tmp_path)

    result = invoke("csv", str(src), "--db", str(tmp_path / "out.db"), *CSV_ARGS, "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert report["rows_rejected"] == 3
    examples = {
        reason: [(e["source"], e["line"]) for e in rejection["examples"]]
        for reason, rejection in report["rejections"].items()
    }
    assert examples == {
        "bad_time": [("bad.csv", 7)],
        "bad_value": [("bad.csv", 4)],
        "out_of_range": [("bad.csv", 12)],
    }
    assert report["completed"] is True


def test_at_most_five_examples_per_reason_are_printed(tmp_path: Path) -> None:
    lines = [f"{T0 + 60 * i:.0f},x{i},GPU-a" for i in range(9)] + rows(2, start=T0 + 3600)
    src = write(tmp_path / "many.csv", lines)

    result = invoke("csv", str(src), "--db", str(tmp_path / "out.db"), *CSV_ARGS)

    assert result.exit_code == 0, result.output
    assert "many.csv:6:" in result.stdout
    assert "many.csv:7:" not in result.stdout
    assert "9 rejected" in result.stdout


def test_nothing_imported_exits_1(tmp_path: Path) -> None:
    src = write(tmp_path / "bad.csv", [f"{T0:.0f},n/a,GPU-a"])

    result = invoke("csv", str(src), "--db", str(tmp_path / "out.db"), *CSV_ARGS)

    assert result.exit_code == 1
    assert "bad.csv:2: cannot read value 'n/a'" in result.stdout
    assert "nothing was imported" in result.stderr


@pytest.mark.parametrize("json_out", [False, True])
def test_nothing_imported_leaves_no_new_database(tmp_path: Path, json_out: bool) -> None:
    src = write(tmp_path / "bad.csv", [f"{T0:.0f},n/a,GPU-a"])
    db = tmp_path / "sub" / "new.db"

    result = invoke("csv", str(src), "--db", str(db), *CSV_ARGS, *(["--json"] if json_out else []))

    assert result.exit_code == 1
    assert not db.exists()
    assert not list(db.parent.glob("new.db*"))  # no -wal / -shm either
    assert f"{db} was not created" in " ".join(result.stderr.split())


def test_nothing_imported_keeps_an_existing_database(tmp_path: Path) -> None:
    db = stored_db(tmp_path)
    src = write(tmp_path / "bad.csv", [f"{T0:.0f},n/a,GPU-a"])

    result = invoke("csv", str(src), "--db", str(db), *CSV_ARGS)

    assert result.exit_code == 1
    assert db.exists()
    assert len(util_points(db)["GPU-a"]) == 3
    assert "was not created" not in result.stderr


def test_nothing_imported_keeps_an_existing_empty_database(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    open_store(db).close()  # exists before the import, holds nothing
    src = write(tmp_path / "bad.csv", [f"{T0:.0f},n/a,GPU-a"])

    assert invoke("csv", str(src), "--db", str(db), *CSV_ARGS).exit_code == 1

    assert db.exists()


def test_future_rows_are_rejected_with_their_lines(tmp_path: Path) -> None:
    soon = time.time() + 60  # within the 5 minutes allowed for clock skew
    later = time.time() + 2 * HOUR
    lines = [*rows(2), f"{soon:.0f},30,GPU-a", f"{later:.0f},40,GPU-b", f"{later:.0f},41,GPU-a"]
    src = write(tmp_path / "future.csv", lines)
    db = tmp_path / "out.db"

    result = invoke("csv", str(src), "--db", str(db), *CSV_ARGS)

    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "7 read, 5 imported, 2 rejected" in out
    assert "future_time" in out
    assert "future.csv:7:" in out
    assert "future.csv:8:" in out
    points = util_points(db, end=later + HOUR)
    assert len(points["GPU-a"]) == 3  # the row a minute ahead is kept
    assert len(points["GPU-b"]) == 2
    js = invoke("csv", str(src), "--db", str(tmp_path / "j.db"), *CSV_ARGS, "--json")
    rejection = json.loads(js.stdout)["rejections"]["future_time"]
    assert rejection["count"] == 2
    assert [e["line"] for e in rejection["examples"]] == [7, 8]


def test_gpu_model_names_the_imported_gpus(tmp_path: Path) -> None:
    src = write(tmp_path / "t.csv", rows(3))
    db = tmp_path / "out.db"

    model = ["--gpu-model", "NVIDIA A100-SXM4-80GB"]
    result = invoke("csv", str(src), "--db", str(db), *CSV_ARGS, *model)

    assert result.exit_code == 0, result.output
    store = open_store(db)
    try:
        assert {g.name for g in store.inventory()} == {"NVIDIA A100-SXM4-80GB"}
    finally:
        store.close()
    # Without it the model stays unknown.
    plain = tmp_path / "plain.db"
    assert invoke("csv", str(src), "--db", str(plain), *CSV_ARGS).exit_code == 0
    store = open_store(plain)
    try:
        assert {g.name for g in store.inventory()} == {None}
    finally:
        store.close()


def test_fraction_warning_names_the_cli_flag(tmp_path: Path) -> None:
    lines = [f"{T0 + 60 * i:.0f},0.{i},GPU-a" for i in range(1, 5)]
    src = write(tmp_path / "frac.csv", lines)

    result = invoke("csv", str(src), "--db", str(tmp_path / "out.db"), *CSV_ARGS)

    assert result.exit_code == 0, result.output
    assert "--value-scale 100" in result.stdout
    assert "value_scale=100" not in result.stdout


# ---- retention ----------------------------------------------------------------------


def test_old_rows_warn_and_name_keep_days(tmp_path: Path) -> None:
    src = write(tmp_path / "old.csv", rows(5, start=OLD_T0))
    db = tmp_path / "out.db"

    result = invoke("csv", str(src), "--db", str(db), *CSV_ARGS, "--json")

    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    old = [w for w in warnings if "further than the hour retention of 730 days" in w]
    assert len(old) == 1, warnings
    assert "--keep-days" in old[0]
    assert "retention.hour_days" in old[0]
    assert "the import itself deletes nothing" in old[0]
    # The importer's own wording ("open the store with ...") is replaced, not repeated.
    assert not any(w.startswith(import_cmd._OLD_ROWS_WARNING) for w in warnings), warnings
    # Nothing was deleted: rows older than raw retention are kept as rollups.
    store = open_store(db)
    try:
        series = store.gpu_series(
            metric="util_gpu_pct",
            start_s=OLD_T0 - HOUR,
            end_s=OLD_T0 + DAY,
            resolution=Resolution.MINUTE,
        )
        assert {s.subject: len(s.points) for s in series} == {"GPU-a": 5, "GPU-b": 5}
    finally:
        store.close()


def test_keep_days_silences_the_import_warning_but_not_the_agent_note(tmp_path: Path) -> None:
    src = write(tmp_path / "old.csv", rows(5, start=OLD_T0))

    result = invoke(
        "csv", str(src), "--db", str(tmp_path / "out.db"), *CSV_ARGS, "--keep-days", "5000"
    )

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "further than the hour retention" not in out
    assert "kept for --keep-days 5000 here" in out
    assert "an agent with these settings keeps 730 days" in out


def test_csv_help_says_what_a_second_import_and_the_gpu_model_do() -> None:
    result = invoke("csv", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Importing the same rows twice counts them twice" in text
    assert "--gpu-model" in text
    assert "price" in text
    assert "in the future" in text


def test_retention_is_documented_in_the_help() -> None:
    for command in ("csv", "prometheus"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
        text = " ".join(result.stdout.split())
        assert "--keep-days" in text
        assert "only a running agent's retention pass deletes" in text


# ---- CSV: errors --------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    db = stored_db(tmp_path)

    message = one_line_error(invoke("csv", str(tmp_path / "nope.csv"), "--db", str(db), *CSV_ARGS))

    assert "nope.csv: no such file" in message
    assert len(util_points(db)["GPU-a"]) == 3


def test_missing_file_creates_no_database(tmp_path: Path) -> None:
    db = tmp_path / "never.db"
    one_line_error(invoke("csv", str(tmp_path / "nope.csv"), "--db", str(db), *CSV_ARGS))
    assert not db.exists()


def test_missing_column_lists_the_columns_and_leaves_no_empty_database(tmp_path: Path) -> None:
    src = write(tmp_path / "t.csv", rows(2))
    db = tmp_path / "never.db"
    args = ["--metric", "gpu_util_pct", "--time-col", "time", "--value-col", "value"]

    message = one_line_error(invoke("csv", str(src), "--db", str(db), *args, "--entity-col", "gpu"))

    assert "time" in message
    assert "gpu" in message
    assert "timestamp" in message
    assert "gpu_id" in message  # what the file has
    assert not db.exists()
    assert not list(tmp_path.glob("never.db*"))


def test_missing_column_keeps_an_existing_database(tmp_path: Path) -> None:
    db = stored_db(tmp_path)
    src = write(tmp_path / "t.csv", rows(2))
    args = ["--metric", "gpu_util_pct", "--time-col", "when", "--value-col", "value"]

    one_line_error(invoke("csv", str(src), "--db", str(db), *args, "--entity-col", "gpu_id"))

    assert db.exists()
    assert len(util_points(db)["GPU-b"]) == 3


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--metric", "gpu_temp_c", "unknown metric 'gpu_temp_c'; use gpu_util_pct or"),
        ("--entity-kind", "pod", "unknown entity kind 'pod'; use one of gpu, workload, node"),
        ("--keep-days", "0", "--keep-days must be a positive number of days"),
        ("--batch-rows", "0", "--batch-rows must be at least 1, not 0"),
        ("--value-scale", "-1", "--value-scale must be a positive number, not -1"),
        ("--value-scale", "0", "--value-scale must be a positive number, not 0"),
        ("--value-scale", "nan", "--value-scale must be a positive number, not nan"),
        ("--gpu-model", " ", "--gpu-model must not be empty"),
    ],
)
def test_bad_options(tmp_path: Path, option: str, value: str, expected: str) -> None:
    src = write(tmp_path / "t.csv", rows(2))
    db = stored_db(tmp_path)
    args = list(CSV_ARGS)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]

    message = one_line_error(invoke("csv", str(src), "--db", str(db), *args))

    assert expected in message
    assert len(util_points(db)["GPU-a"]) == 3


def test_required_options_are_named(tmp_path: Path) -> None:
    src = write(tmp_path / "t.csv", rows(2))
    message = one_line_error(invoke("csv", str(src), "--metric", "gpu_util_pct"))
    assert "--time-col, --value-col, --entity-col required" in message
    message = one_line_error(invoke("csv", *CSV_ARGS))
    assert "no CSV files given" in message


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    message = one_line_error(
        invoke("csv", str(tmp_path), "--db", str(tmp_path / "x.db"), *CSV_ARGS)
    )
    assert "is a directory" in message


def test_a_database_path_that_is_a_directory(tmp_path: Path) -> None:
    src = write(tmp_path / "t.csv", rows(2))
    (tmp_path / "dir.db").mkdir()
    message = one_line_error(invoke("csv", str(src), "--db", str(tmp_path / "dir.db"), *CSV_ARGS))
    assert "dir.db" in message


# ---- Ctrl-C -------------------------------------------------------------------------


class _InterruptingBar(import_cmd._ProgressBar):
    """Presses Ctrl-C after the second batch has been written."""

    def __init__(self, *, rows_known: bool, enabled: bool) -> None:
        super().__init__(rows_known=rows_known, enabled=enabled)
        self.writes = 0

    def __call__(self, done: int, total: int | None) -> None:
        super().__call__(done, total)
        if total is not None:
            self.writes += 1
            if self.writes == 2:
                raise KeyboardInterrupt


def test_ctrl_c_reports_whole_batches_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_cmd, "_ProgressBar", _InterruptingBar)
    src = write(tmp_path / "t.csv", rows(10))
    db = tmp_path / "out.db"

    result = invoke("csv", str(src), "--db", str(db), *CSV_ARGS, "--batch-rows", "4")

    assert result.exit_code == 130, result.output
    assert "interrupted: 8 samples in 4 snapshots were written" in result.stderr
    assert "(interrupted)" in result.stdout
    points = util_points(db)
    assert sum(len(p) for p in points.values()) == 8


def test_ctrl_c_with_json_prints_the_partial_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(import_cmd, "_ProgressBar", _InterruptingBar)
    src = write(tmp_path / "t.csv", rows(10))

    result = invoke(
        "csv", str(src), "--db", str(tmp_path / "o.db"), *CSV_ARGS, "--batch-rows", "6", "--json"
    )

    assert result.exit_code == 130
    report = json.loads(result.stdout)
    assert report["completed"] is False
    assert report["samples_written"] == 12


@pytest.mark.postgres
def test_csv_into_postgresql(tmp_path: Path, pg_url: str) -> None:
    src = write(tmp_path / "trace.csv", rows(4))

    result = invoke("csv", str(src), "--db", pg_url, *CSV_ARGS, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_imported"] == 8
    store = open_store(pg_url)
    try:
        series = store.gpu_series(
            metric="util_gpu_pct", start_s=T0, end_s=T0 + HOUR, resolution=Resolution.RAW
        )
        assert {s.subject: len(s.points) for s in series} == {"GPU-a": 4, "GPU-b": 4}
    finally:
        store.close()
