"""CSV trace import: formats, timestamps, mapping onto snapshots, rejections, interruption."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gpufleet.store import Resolution, Store, open_store
from gpufleet.store.importers import (
    ImportFailedError,
    ImportInterruptedError,
    ImportReport,
    import_csv,
)
from gpufleet.store.importers.csv_source import parse_timestamp

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, an hour boundary
NOW = T0 + 86_400.0


def clock() -> float:
    return NOW


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(tmp_path / "import.db")
    try:
        yield store
    finally:
        store.close()


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def long_rows(entities: dict[str, float], span_s: float, value: float = 50.0) -> list[str]:
    """``ts,value,entity`` rows sorted by time; ``entities`` maps id -> spacing in seconds."""
    rows: list[tuple[float, str]] = []
    for entity, spacing in entities.items():
        ts = T0
        while ts < T0 + span_s:
            rows.append((ts, entity))
            ts += spacing
    return [f"{ts:.0f},{value},{entity}" for ts, entity in sorted(rows)]


def raw_points(store: Store, metric: str = "util_gpu_pct") -> dict[str, list[tuple[float, float]]]:
    series = store.gpu_series(
        metric=metric, start_s=T0 - 86_400, end_s=NOW, resolution=Resolution.RAW
    )
    return {s.subject: [(p.ts_s, p.mean) for p in s.points if p.mean is not None] for s in series}


def util_import(store: Store, paths: list[Path], **kwargs: Any) -> ImportReport:
    return import_csv(
        store,
        paths,
        metric="gpu_util_pct",
        time_col="ts",
        value_col="value",
        entity_col="entity",
        clock=clock,
        **kwargs,
    )


def test_plain_csv_maps_entities_to_gpus_with_their_own_interval(
    sqlite_store: Store, tmp_path: Path
) -> None:
    # gpu-b is traced every 15 s, gpu-a every 5 min: each sample must weigh its own spacing.
    path = write_csv(
        tmp_path / "util.csv", "ts,value,entity", long_rows({"gpu-b": 15, "gpu-a": 300}, 3600)
    )
    report = import_csv(
        sqlite_store,
        [path],
        metric="gpu_util_pct",
        time_col="ts",
        value_col="value",
        entity_col="entity",
        clock=clock,
    )
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (252, 252, 0)
    assert report.entities == 2
    assert report.samples_written == 252
    assert (report.first_ts_s, report.last_ts_s) == (T0, T0 + 3585)
    assert report.completed
    assert report.rows_per_s > 0
    inventory = sqlite_store.inventory()
    # Indices follow the sorted entity ids, whatever order the file names them in.
    assert [(g.uuid, g.index, g.node, g.cluster) for g in inventory] == [
        ("gpu-a", 0, "imported", "imported"),
        ("gpu-b", 1, "imported", "imported"),
    ]
    usage = sqlite_store.gpu_usage(start_s=T0, end_s=T0 + 3600, resolution=Resolution.HOUR)
    seconds = {u.uuid: u.seconds for u in usage}
    assert seconds == {"gpu-a": pytest.approx(3600.0), "gpu-b": pytest.approx(3600.0)}
    points = raw_points(sqlite_store)
    assert len(points["gpu-b"]) == 240
    assert points["gpu-a"][:2] == [(T0, 50.0), (T0 + 300, 50.0)]


def test_gzip_with_iso_and_millisecond_times(sqlite_store: Store, tmp_path: Path) -> None:
    iso = datetime.fromtimestamp(T0, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    naive = datetime.fromtimestamp(T0 + 60, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = (
        "entity,ts,value\n"
        f"g1,{iso},10\n"
        f"g1,{naive},20\n"
        f"g1,{(T0 + 120) * 1000:.0f},30\n"
        f"g1,{T0 + 180:.3f},40\n"
    )
    path = tmp_path / "util.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    report = util_import(sqlite_store, [path])
    assert report.rows_imported == 4
    assert raw_points(sqlite_store)["g1"] == [
        (T0, 10.0),
        (T0 + 60, 20.0),
        (T0 + 120, 30.0),
        (T0 + 180, 40.0),
    ]


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_tar_gz_members_are_streamed_in_order(sqlite_store: Store, tmp_path: Path) -> None:
    first = "ts,value,entity\n" + "\n".join(long_rows({"g1": 60, "g2": 60}, 600)) + "\n"
    second = "ts,value,entity\n" + "\n".join(long_rows({"g3": 60}, 600, value=7.0)) + "\n"
    archive = _tar_gz(
        tmp_path / "trace.tar.gz",
        {
            "trace/part1.csv": first.encode(),
            "trace/README.txt": b"not a csv",
            "trace/part2.csv.gz": gzip.compress(second.encode()),
        },
    )
    report = util_import(sqlite_store, [archive])
    assert report.rows_imported == 30
    assert report.sources == (
        "trace.tar.gz:trace/part1.csv",
        "trace.tar.gz:trace/part2.csv.gz",
        "trace.tar.gz:trace/README.txt (skipped: not CSV)",
    )
    assert sorted(raw_points(sqlite_store)) == ["g1", "g2", "g3"]
    assert {v for _, v in raw_points(sqlite_store)["g3"]} == {7.0}


def test_bad_rows_are_counted_per_reason_with_file_and_line(
    sqlite_store: Store, tmp_path: Path
) -> None:
    rows = [
        f"{T0:.0f},10,g1",  # line 2, fine
        f"{T0:.0f},11,g1",  # 3: duplicate
        "yesterday,12,g1",  # 4: bad_time
        f"{T0 + 60:.0f},,g1",  # 5: missing_value
        f"{T0 + 60:.0f},abc,g2",  # 6: bad_value
        f"{T0 + 60:.0f},140,g2",  # 7: out_of_range
        f"{T0 + 60:.0f},10",  # 8: short_row
        f"{T0 + 120:.0f},10,",  # 9: missing_entity
        f"{T0 + 180:.0f},30,g1",  # 10: fine
        f"{T0 + 120:.0f},20,g1",  # 11: out_of_order
        f"{T0 + 240:.0f},nan,g1",  # 12: missing_value (NaN)
    ]
    path = write_csv(tmp_path / "bad.csv", "ts,value,entity", rows)
    report = util_import(sqlite_store, [path])
    assert report.rows_read == 11
    assert report.rows_imported == 2
    assert report.rows_rejected == 9
    rejections = report.rejections
    counts = {reason: r.count for reason, r in rejections.items()}
    assert counts == {
        "missing_value": 2,
        "bad_time": 1,
        "bad_value": 1,
        "duplicate": 1,
        "missing_entity": 1,
        "out_of_order": 1,
        "out_of_range": 1,
        "short_row": 1,
    }
    lines = {reason: [(e.source, e.line) for e in r.examples] for reason, r in rejections.items()}
    assert lines["duplicate"] == [("bad.csv", 3)]
    assert lines["bad_time"] == [("bad.csv", 4)]
    assert lines["missing_value"] == [("bad.csv", 5), ("bad.csv", 12)]
    assert lines["out_of_order"] == [("bad.csv", 11)]
    assert "yesterday" in rejections["bad_time"].examples[0].detail
    assert any("rejected" in w for w in report.warnings)


def test_examples_are_capped_but_every_rejection_counted(
    sqlite_store: Store, tmp_path: Path
) -> None:
    rows = [f"{T0 + i:.0f},oops,g1" for i in range(50)] + [f"{T0:.0f},1,g1"]
    path = write_csv(tmp_path / "bad.csv", "ts,value,entity", rows)
    report = util_import(sqlite_store, [path])
    rejection = report.rejections["bad_value"]
    assert rejection.count == 50
    assert len(rejection.examples) == 20
    assert report.rows_imported == 1


def test_missing_column_names_the_columns_that_exist(sqlite_store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", "timestamp,util,pod", [f"{T0:.0f},1,p"])
    with pytest.raises(ImportFailedError) as err:
        util_import(sqlite_store, [path])
    message = str(err.value)
    assert "no column 'ts', 'value', 'entity'" in message
    assert "'timestamp', 'util', 'pod'" in message
    assert sqlite_store.inventory() == []


def test_unreadable_inputs_fail_with_the_file_name(sqlite_store: Store, tmp_path: Path) -> None:
    with pytest.raises(ImportFailedError, match="no such file"):
        util_import(sqlite_store, [tmp_path / "absent.csv"])
    archive = _tar_gz(tmp_path / "empty.tar.gz", {"notes.txt": b"hello"})
    with pytest.raises(ImportFailedError, match=r"no \.csv or \.csv\.gz member"):
        util_import(sqlite_store, [archive])
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(ImportFailedError, match=r"broken\.csv\.gz: cannot read it"):
        util_import(sqlite_store, [broken])


def test_workloads_hold_a_synthetic_gpu_with_attribution(
    sqlite_store: Store, tmp_path: Path
) -> None:
    rows = long_rows({"pod-a": 60, "pod-b": 60}, 3600, value=0.0)
    path = write_csv(tmp_path / "pods.csv", "ts,value,entity", rows)
    report = util_import(sqlite_store, [path], entity_kind="workload", namespace="genai")
    assert report.entities == 2
    uuids = [g.uuid for g in sqlite_store.inventory()]
    assert uuids == ["workload-pod-a", "workload-pod-b"]
    usage = sqlite_store.workload_usage(start_s=T0, end_s=T0 + 3600)
    assert {(u.namespace, u.user, u.workload) for u in usage} == {
        ("genai", "unknown", "pod-a"),
        ("genai", "unknown", "pod-b"),
    }
    assert sum(u.gpu_s for u in usage) == pytest.approx(7200.0)
    gpu_usage = sqlite_store.gpu_usage(start_s=T0, end_s=T0 + 3600)
    # Utilization 0 while holding the GPU: idle allocated for the whole hour.
    assert sum(u.idle_allocated_s for u in gpu_usage) == pytest.approx(7200.0)


def test_nodes_become_one_pseudo_gpu_each_on_their_own_node(
    sqlite_store: Store, tmp_path: Path
) -> None:
    rows = long_rows({"node-1": 60, "node-2": 60}, 300, value=2 * 1024**3)
    path = write_csv(tmp_path / "nodes.csv", "ts,value,entity", rows)
    report = import_csv(
        sqlite_store,
        [path],
        metric="gpu_mem_used_bytes",
        time_col="ts",
        value_col="value",
        entity_col="entity",
        entity_kind="node",
        clock=clock,
    )
    assert report.rows_imported == 10
    assert [(g.node, g.uuid, g.index) for g in sqlite_store.inventory()] == [
        ("node-1", "node-node-1", 0),
        ("node-2", "node-node-2", 0),
    ]
    memory = raw_points(sqlite_store, "mem_used_bytes")
    assert {v for _, v in memory["node-node-1"]} == {2 * 1024**3}
    # Utilization stays unknown (no points), never 0.
    assert raw_points(sqlite_store) == {"node-node-1": [], "node-node-2": []}


def test_node_column_places_gpus_on_nodes(sqlite_store: Store, tmp_path: Path) -> None:
    rows = [f"{T0 + 60 * i:.0f},{i},GPU-{g},host{g}" for i in range(3) for g in (1, 2)]
    path = write_csv(tmp_path / "g.csv", "ts,value,entity,host", rows)
    util_import(sqlite_store, [path], node_col="host")
    assert [(g.node, g.uuid) for g in sqlite_store.inventory()] == [
        ("host1", "GPU-1"),
        ("host2", "GPU-2"),
    ]


def test_rows_older_than_raw_retention_keep_only_rollups(
    sqlite_store: Store, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "old.csv", "ts,value,entity", long_rows({"g": 60}, 600))
    report = import_csv(
        sqlite_store,
        [path],
        metric="gpu_util_pct",
        time_col="ts",
        value_col="value",
        entity_col="entity",
        clock=lambda: T0 + 30 * 86_400.0,
    )
    assert report.samples_written == 10
    assert raw_points(sqlite_store) == {}
    minutes = sqlite_store.gpu_series(
        metric="util_gpu_pct", start_s=T0, end_s=T0 + 600, resolution=Resolution.MINUTE
    )
    assert len(minutes[0].points) == 10


def test_fractions_and_old_traces_raise_warnings(sqlite_store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "f.csv", "ts,value,entity", long_rows({"g": 60}, 120, 0.5))
    report = import_csv(
        sqlite_store,
        [path],
        metric="gpu_util_pct",
        time_col="ts",
        value_col="value",
        entity_col="entity",
        clock=lambda: T0 + 1000 * 86_400.0,
    )
    text = " ".join(report.warnings)
    assert "value_scale=100" in text
    assert "hourly retention" in text
    scaled = util_import(sqlite_store, [path], value_scale=100.0, cluster="scaled")
    assert not any("value_scale" in w for w in scaled.warnings)


def test_progress_reports_scan_then_write_against_the_total(
    sqlite_store: Store, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "p.csv", "ts,value,entity", long_rows({"g": 1}, 250))
    calls: list[tuple[int, int | None]] = []
    util_import(sqlite_store, [path], batch_rows=100, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(100, 250), (200, 250), (250, 250)]


def test_interrupt_between_batches_leaves_whole_batches(
    sqlite_store: Store, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "p.csv", "ts,value,entity", long_rows({"g1": 10, "g2": 10}, 1000))

    def stop_after_first_batch(done: int, total: int | None) -> None:
        if total is not None:
            raise KeyboardInterrupt

    with pytest.raises(ImportInterruptedError) as err:
        util_import(sqlite_store, [path], batch_rows=60, progress=stop_after_first_batch)
    report = err.value.report
    assert not report.completed
    assert report.samples_written == 60
    assert report.rows_read == 200
    # Rows were sorted by time within the batch: the first 30 timestamps of both GPUs.
    points = raw_points(sqlite_store)
    assert [len(points["g1"]), len(points["g2"])] == [30, 30]
    assert points["g1"][-1][0] == T0 + 290


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1767225600", T0),
        ("1767225600.5", T0 + 0.5),
        ("1767225600000", T0),
        ("1767225600000000", T0),
        ("1767225600000000000", T0),
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01 01:00:00+01:00", T0),
        ("2026-01-01T00:00:00", T0),
        ("-5", None),
        ("inf", None),
        ("soon", None),
        ("", None),
    ],
)
def test_timestamp_forms(text: str, expected: float | None) -> None:
    assert parse_timestamp(text) == expected


def test_batches_give_the_same_rollups_as_one_write(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", "ts,value,entity", long_rows({"g1": 7, "g2": 13}, 1800))
    usages = []
    for batch_rows in (37, 100_000):
        store = open_store(tmp_path / f"b{batch_rows}.db")
        try:
            util_import(store, [path], batch_rows=batch_rows)
            usages.append(
                [(u.uuid, u.seconds, u.util_sum) for u in store.gpu_usage(start_s=T0, end_s=NOW)]
            )
        finally:
            store.close()
    assert usages[0] == usages[1]
    assert usages[0]


def test_rows_in_the_future_are_rejected_and_counted(sqlite_store: Store, tmp_path: Path) -> None:
    rows = [
        f"{T0:.0f},10,g1",  # line 2, fine
        f"{NOW + 299:.0f},20,g1",  # 3: within the 5 minutes allowed for clock skew
        f"{NOW + 301:.0f},30,g1",  # 4: in the future
        f"{NOW + 86_400:.0f},40,g2",  # 5: in the future
    ]
    path = write_csv(tmp_path / "future.csv", "ts,value,entity", rows)
    report = util_import(sqlite_store, [path])
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (4, 2, 2)
    rejection = report.rejections["future_time"]
    assert rejection.count == 2
    assert [e.line for e in rejection.examples] == [4, 5]
    assert {e.source for e in rejection.examples} == {"future.csv"}
    assert "1.0 days after the import started" in rejection.examples[1].detail
    assert report.last_ts_s == NOW + 299
    assert report.entities == 1  # g2 had no accepted row
    series = sqlite_store.gpu_series(
        metric="util_gpu_pct", start_s=T0, end_s=NOW + 2 * 86_400, resolution=Resolution.RAW
    )
    assert {s.subject: len(s.points) for s in series} == {"g1": 2}


def test_gpu_model_is_stored_as_the_gpus_name(sqlite_store: Store, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", "ts,value,entity", long_rows({"g1": 60, "g2": 60}, 600))
    report = util_import(sqlite_store, [path], gpu_model="NVIDIA A100-SXM4-80GB")
    assert report.rows_imported == 20
    inventory = sqlite_store.inventory()
    assert [(g.uuid, g.name) for g in inventory] == [
        ("g1", "NVIDIA A100-SXM4-80GB"),
        ("g2", "NVIDIA A100-SXM4-80GB"),
    ]
