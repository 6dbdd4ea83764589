"""Rollup math and schema generation, without a database."""

from __future__ import annotations

import pytest

from gpufleet.model import DiskUsage, GpuSample, NetRate, Snapshot, SystemSample
from gpufleet.store import schema
from gpufleet.store.rollup import (
    bucket_of,
    build_batch,
    finite_or_none,
    full_rows,
    hist_bin,
    is_throttled,
    system_values,
)
from gpufleet.store.schema_model import Dialect, Merge

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600


@pytest.mark.parametrize(
    ("util", "expected"),
    [(0.0, 0), (4.999, 0), (5.0, 1), (52.5, 10), (94.99, 18), (95.0, 19), (100.0, 19)],
)
def test_hist_bins_are_5_pct_wide_and_the_last_is_closed(util: float, expected: int) -> None:
    assert hist_bin(util) == expected


def test_hist_bin_clamps_out_of_range_readings() -> None:
    assert (hist_bin(-3.0), hist_bin(250.0)) == (0, 19)


NOT_FINITE = [float("nan"), float("inf"), float("-inf")]


def test_non_finite_readings_are_no_readings_in_every_row() -> None:
    snaps = [
        Snapshot(
            ts_s=T0 + i,
            cluster="c",
            node="n",
            gpus=(
                GpuSample(
                    uuid="GPU-a",
                    index=0,
                    util_gpu_pct=bad,
                    power_w=bad,
                    mem_used_bytes=bad,  # type: ignore[arg-type]
                    temp_c=40.0,
                ),
            ),
            system=None,
            interval_s=1.0,
        )
        for i, bad in enumerate(NOT_FINITE)
    ]
    batch = build_batch(snaps, idle_threshold_pct=5.0)
    raw_rows = full_rows(batch.gpu_raw, schema.GPU_RAW.column_names)
    assert len(raw_rows) == 3
    for row in raw_rows:
        raw = dict(zip(schema.GPU_RAW.column_names, row, strict=True))
        assert (raw["util_gpu_pct"], raw["power_w"], raw["mem_used_bytes"]) == (None,) * 3
        assert raw["temp_c"] == 40.0
    (row,) = batch.gpu_1m  # three samples in one minute: a full row
    cols = dict(zip(schema.GPU_1M.column_names, row, strict=True))
    # Unknown utilization is neither idle nor in a bin; unknown readings add no weight.
    assert cols["idle_s"] == 0.0
    assert sum(cols[h] for h in schema.HIST_COLUMNS) == 0.0
    for m in ("util_gpu_pct", "power_w", "mem_used_bytes"):
        assert (cols[f"{m}_sum"], cols[f"{m}_wt"], cols[f"{m}_min"], cols[f"{m}_max"]) == (
            0.0,
            0.0,
            None,
            None,
        )
    assert (cols["temp_c_sum"], cols["temp_c_wt"]) == (120.0, 3.0)


def test_garbage_counters_and_non_numbers_are_no_readings() -> None:
    assert [finite_or_none(v) for v in (*NOT_FINITE, 2**64 - 1, "12", None)] == [None] * 6
    assert [finite_or_none(v) for v in (0, -1.5, 1e300, 2**62)] == [0, -1.5, 1e300, 2**62]


def test_bucket_is_floor_of_ts_over_width() -> None:
    assert bucket_of(T0 + 59.999, 60.0) == T0
    assert bucket_of(T0 + 60.0, 60.0) == T0 + 60
    assert bucket_of(T0 + 3599.5, 3600.0) == T0
    assert bucket_of(-30.0, 60.0) == -60.0  # floor, not truncation


def test_throttled_means_thermal_or_power() -> None:
    assert is_throttled(("hw_thermal_slowdown",))
    assert is_throttled(("gpu_idle", "sw_power_cap"))
    assert not is_throttled(("gpu_idle", "applications_clocks_setting"))
    assert not is_throttled(())
    assert not is_throttled(None)


def test_system_values_sum_rates_and_take_the_fullest_disk() -> None:
    sample = SystemSample(
        cpu_pct=12.0,
        cpu_per_core_pct=(),
        cpu_count=4,
        load_1=0.5,
        load_5=0.4,
        load_15=0.3,
        mem_total_bytes=100,
        mem_used_bytes=40,
        mem_available_bytes=60,
        mem_pct=40.0,
        swap_total_bytes=0,
        swap_used_bytes=0,
        swap_pct=0.0,
        disks=(
            DiskUsage("/", None, None, 10, 2, 8, 20.0),
            DiskUsage("/data", None, None, 10, 9, 1, 90.0),
        ),
        disk_read_bytes_per_s=7.0,
        disk_write_bytes_per_s=None,
        net=(
            NetRate("eth0", 10.0, 1.0, None, None, 0, 0),
            NetRate("eth1", 5.0, None, None, None, 0, 0),
        ),
    )
    values = dict(zip(schema.SYSTEM_STORED_METRICS, system_values(sample), strict=True))
    assert values == {
        "cpu_pct": 12.0,
        "load_1": 0.5,
        "mem_pct": 40.0,
        "mem_used_bytes": 40,
        "swap_pct": 0.0,
        "disk_read_bytes_per_s": 7.0,
        "disk_write_bytes_per_s": None,  # unknown stays unknown, not 0
        "net_rx_bytes_per_s": 15.0,
        "net_tx_bytes_per_s": 1.0,  # only the interfaces with a rate
        "disk_max_used_pct": 90.0,
    }


def test_rows_match_their_tables_column_for_column() -> None:
    snaps = [
        Snapshot(
            ts_s=T0 + s,
            cluster="c",
            node="n",
            gpus=(GpuSample(uuid="GPU-a", index=0, util_gpu_pct=50.0),),
            system=None,
            interval_s=1.0,
        )
        for s in (0.0, 1.0, 61.0)  # a 2-sample minute (merged in Python) and a 1-sample one
    ]
    batch = build_batch(snaps, idle_threshold_pct=5.0)
    # Every sample lacks the metrics other than utilization: their columns are left out.
    absent = tuple(m for m in schema.GPU_METRICS if m != "util_gpu_pct")
    assert set(batch.gpu_raw) == set(batch.gpu_1m_one) == {absent}
    for name, rows, columns in (
        ("gpu_raw", batch.gpu_raw[absent], schema.present_columns(schema.GPU_RAW, absent)),
        ("gpu_1m", batch.gpu_1m, schema.GPU_1M.columns),
        ("gpu_1m_one", batch.gpu_1m_one[absent], schema.GPU_1M_ONE.carried(absent)),
        ("gpu_1h", batch.gpu_1h, schema.GPU_1H.columns),
        ("gpus", batch.gpus, schema.GPUS.columns),
        ("nodes", batch.nodes, schema.NODES.columns),
    ):
        assert rows, name
        assert {len(r) for r in rows} == {len(columns)}, name
    (minute,) = batch.gpu_1m  # the 2-sample minute
    cols = dict(zip(schema.GPU_1M.column_names, minute, strict=True))
    assert (cols["bucket"], cols["n"], cols["util_gpu_pct_sum"]) == (T0, 2, 100.0)
    assert cols["util_hist_10"] == 2.0
    (one,) = batch.gpu_1m_one[absent]  # the 1-sample minute, as its readings
    carried = dict(zip([c.name for c in schema.GPU_1M_ONE.carried(absent)], one, strict=True))
    assert (carried["bucket"], carried["dt_s"], carried["hist_bin"]) == (T0 + 60, 1.0, 10)
    (hour,) = batch.gpu_1h
    assert dict(zip(schema.GPU_1H.column_names, hour, strict=True))["n"] == 3
    assert batch.gpu_1h_one == {}


def test_one_sample_rollups_derive_every_target_column() -> None:
    for rollup in schema.ONE_SAMPLE_ROLLUPS:
        assert len(rollup.expressions) == len(rollup.target.columns)
        carried = [c.name for c in rollup.columns]
        assert carried[: len(rollup.target.primary_key or ())] == [
            "bucket",
            *[k for k in rollup.target.primary_key or () if k != "bucket"],
        ]
        sql = schema.one_sample_upsert_sql(rollup)
        assert f"?{len(carried)}" in sql
        assert f"?{len(carried) + 1}" not in sql
        assert "{" not in sql
    assert "CASE WHEN ?19 = 19 THEN ?5 ELSE 0.0 END" in schema.one_sample_upsert_sql(
        schema.GPU_1M_ONE
    )


def test_merge_rules_in_sql_ignore_nulls_per_dialect() -> None:
    sqlite = schema.upsert_set_clause(schema.GPU_1M, Dialect.SQLITE)
    postgres = schema.upsert_set_clause(schema.GPU_1M, Dialect.POSTGRES)
    assert "temp_c_min = COALESCE(min(gpu_1m.temp_c_min, excluded.temp_c_min)" in sqlite
    assert "temp_c_max = GREATEST(gpu_1m.temp_c_max, excluded.temp_c_max)" in postgres
    assert "n = gpu_1m.n + excluded.n" in sqlite
    assert "ON CONFLICT (bucket, cluster, node, uuid)" in postgres


def test_every_rollup_value_column_has_a_merge_rule() -> None:
    for table in (schema.GPU_1M, schema.GPU_1H, schema.SYSTEM_1M, schema.WORKLOAD_1H):
        assert table.primary_key is not None
        keys = set(table.primary_key)
        for col in table.columns:
            assert (col.merge is Merge.KEY) == (col.name in keys), (table.name, col.name)


def test_per_gpu_indexes_exist_only_on_postgres() -> None:
    sqlite = "\n".join(schema.create_table_sql(schema.GPU_RAW, Dialect.SQLITE))
    postgres = "\n".join(schema.create_table_sql(schema.GPU_RAW, Dialect.POSTGRES))
    assert "gpu_raw_cluster_node_uuid_ts" not in sqlite
    assert "gpu_raw_cluster_node_uuid_ts" in postgres
    assert "gpu_raw_ts_cluster_node_uuid" in sqlite
    assert "DOUBLE PRECISION" in postgres
    assert "DOUBLE PRECISION" not in sqlite


def test_pending_migrations_are_those_after_the_current_version() -> None:
    versions = [m.version for m in schema.pending(0)]
    assert versions == list(range(1, schema.LATEST_VERSION + 1))  # every step, in order
    assert [m.version for m in schema.pending(1)] == versions[1:]
    assert schema.pending(schema.LATEST_VERSION) == []
