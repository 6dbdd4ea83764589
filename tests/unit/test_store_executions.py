"""The execution log on every backend: round trip, updates, order and filters of
``executions()``, and the upgrade of a schema-version-1 database that has no log yet."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import psycopg
import pytest
from tests.unit.store_samples import T0, alert

from gpufleet.analysis.memo import MemoStore
from gpufleet.model import Execution
from gpufleet.store import Store, open_store
from gpufleet.store.schema import (
    LATEST_VERSION,
    MIGRATIONS,
    SCHEMA_VERSION_TABLE,
    version_table_sql,
)
from gpufleet.store.schema_model import Dialect


def execution(
    *,
    requested: float = T0,
    rec_id: str = "rec-1",
    status: str = "running",
    dry_run: bool = False,
) -> Execution:
    return Execution(
        recommendation_id=rec_id,
        kind="scale_down",
        action_type="drain_node",
        action_params={"node": "n1", "gpus": ["GPU-a", "GPU-b"], "count": 2, "share": 0.5},
        target={"cluster": "c1", "node": "n1", "gpu_uuids": ["GPU-a", "GPU-b"]},
        title="Drain n1: its 2 GPUs sat unallocated",
        requested_by="alice",
        requested_s=requested,
        dry_run=dry_run,
        executor="webhook",
        status=status,
        detail="started",
        expected_monthly_saving_usd=1234.5,
    )


def test_save_inserts_then_updates_by_id(store: Store) -> None:
    first = store.save_execution(execution())
    assert first.id is not None
    assert store.executions() == [first]
    done = dataclasses.replace(
        first, status="succeeded", detail="HTTP 200 OK: accepted", finished_s=T0 + 1.5
    )
    assert store.save_execution(done) == done
    assert store.executions() == [done]  # updated in place, not a second entry
    second = store.save_execution(execution(requested=T0 + 10))
    assert second.id is not None
    assert second.id > first.id


def test_round_trip_keeps_every_field(store: Store) -> None:
    planned = dataclasses.replace(
        execution(status="planned", dry_run=True),
        executor="dry-run",
        detail='dry run: would POST drain_node {"node": "n1"} … ünïcode',
        finished_s=T0,
        expected_monthly_saving_usd=-80.25,
    )
    saved = store.save_execution(planned)
    (read,) = store.executions()
    assert read == saved
    assert read.dry_run is True
    assert read.action_params == {
        "count": 2,
        "gpus": ["GPU-a", "GPU-b"],
        "node": "n1",
        "share": 0.5,
    }
    assert read.target["gpu_uuids"] == ["GPU-a", "GPU-b"]


def test_tuples_in_params_come_back_as_lists(store: Store) -> None:
    saved = store.save_execution(
        dataclasses.replace(execution(), action_params={"gpus": ("GPU-a",)}, target={})
    )
    (read,) = store.executions()
    assert read.id == saved.id
    assert read.action_params == {"gpus": ["GPU-a"]}
    assert read.target == {}


def test_newest_first_with_limit_and_filters(store: Store) -> None:
    a = store.save_execution(execution(requested=T0, rec_id="rec-1"))
    b = store.save_execution(execution(requested=T0 + 60, rec_id="rec-2"))
    c = store.save_execution(execution(requested=T0 + 120, rec_id="rec-1"))
    d = store.save_execution(execution(requested=T0 + 120, rec_id="rec-2"))  # same time as c
    assert [e.id for e in store.executions()] == [d.id, c.id, b.id, a.id]
    assert [e.id for e in store.executions(limit=2)] == [d.id, c.id]
    assert store.executions(limit=0) == []
    assert [e.id for e in store.executions(recommendation_id="rec-1")] == [c.id, a.id]
    assert store.executions(recommendation_id="nope") == []
    # Half-open window on the request time.
    assert [e.id for e in store.executions(start_s=T0 + 60)] == [d.id, c.id, b.id]
    assert [e.id for e in store.executions(end_s=T0 + 60)] == [a.id]
    assert [e.id for e in store.executions(start_s=T0, end_s=T0 + 120)] == [b.id, a.id]
    assert [
        e.id for e in store.executions(start_s=T0 + 1, end_s=T0 + 121, recommendation_id="rec-2")
    ] == [d.id, b.id]


def test_unknown_explicit_id_is_inserted_and_later_ids_pass_it(store: Store) -> None:
    copied = dataclasses.replace(execution(), id=500)
    assert store.save_execution(copied) == copied
    fresh = store.save_execution(execution(requested=T0 + 1))
    assert fresh.id is not None
    assert fresh.id > 500
    assert [e.id for e in store.executions()] == [fresh.id, 500]


def test_log_survives_reopen_and_retention(store_target: str) -> None:
    with open_store(store_target) as store:
        saved = store.save_execution(execution())
        store.apply_retention(T0 + 10 * 365 * 86_400.0)
    with open_store(store_target) as store:
        assert store.executions() == [saved]


def test_memo_store_passes_the_log_through(store: Store) -> None:
    memo = MemoStore(store)
    saved = memo.save_execution(execution())
    assert memo.executions() == [saved]
    done = memo.save_execution(dataclasses.replace(saved, status="failed", detail="exit code 1"))
    # Never remembered: the second read sees the update.
    assert memo.executions(recommendation_id="rec-1", limit=5) == [done]
    assert store.executions() == [done]


def test_version_1_statements_do_not_create_the_log() -> None:
    v1 = next(m for m in MIGRATIONS if m.version == 1)
    for dialect in Dialect:
        assert not any("executions" in stmt for stmt in v1.statements(dialect))
    assert [m.version for m in MIGRATIONS] == sorted(m.version for m in MIGRATIONS)
    assert any(m.version == 2 and m.description == "execution log" for m in MIGRATIONS)


_ALERT_INSERT = (
    "INSERT INTO alerts (cluster, node, rule, severity, subject, message, value, threshold, "
    "started, fired, resolved) VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m}, {m})"
)


def _make_version_1(target: str) -> None:
    """A database exactly as gpufleet with schema version 1 left it, holding one alert."""
    old = alert(fired=T0)
    row = (
        old.cluster,
        old.node,
        old.rule,
        old.severity,
        old.subject,
        old.message,
        old.value,
        old.threshold,
        old.started_s,
        old.fired_s,
        old.resolved_s,
    )
    v1 = next(m for m in MIGRATIONS if m.version == 1)
    record = f"INSERT INTO {SCHEMA_VERSION_TABLE} (version, description, applied_s) VALUES "
    if target.startswith("postgresql://"):
        with psycopg.connect(target) as conn:
            conn.execute(version_table_sql(Dialect.POSTGRES))
            for stmt in v1.statements(Dialect.POSTGRES):
                conn.execute(stmt)
            conn.execute(record + "(1, 'initial schema', 0)")
            conn.execute(_ALERT_INSERT.format(m="%s"), row)
        return
    db = sqlite3.connect(target)
    try:
        with db:
            db.execute(version_table_sql(Dialect.SQLITE))
            for stmt in v1.statements(Dialect.SQLITE):
                db.execute(stmt)
            db.execute(record + "(1, 'initial schema', 0)")
            db.execute(_ALERT_INSERT.format(m="?"), row)
    finally:
        db.close()


def test_version_1_database_migrates_without_losing_anything(store_target: str) -> None:
    if not store_target.startswith("postgresql://"):
        Path(store_target).parent.mkdir(parents=True, exist_ok=True)
    _make_version_1(store_target)
    with open_store(store_target) as store:
        assert store.schema_version() == LATEST_VERSION  # type: ignore[attr-defined]
        (kept,) = store.alerts()
        assert (kept.rule, kept.fired_s, kept.message, kept.cluster) == (
            "gpu_temp",
            T0,
            "hot",
            "c1",
        )
        assert store.executions() == []
        saved = store.save_execution(execution())
        assert store.executions() == [saved]
        # The alert table still takes writes after the upgrade.
        assert store.save_alert(alert(fired=T0 + 60)).id is not None
    with open_store(store_target) as store:  # reopening applies nothing twice
        assert store.executions() == [saved]
        assert len(store.alerts()) == 2
        versions = store._read(  # type: ignore[attr-defined]
            f"SELECT version, description FROM {SCHEMA_VERSION_TABLE} ORDER BY version"
        )
        assert [tuple(v) for v in versions][:2] == [(1, "initial schema"), (2, "execution log")]


@pytest.mark.parametrize("limit", [1, 3])
def test_limit_counts_entries(store: Store, limit: int) -> None:
    for i in range(3):
        store.save_execution(execution(requested=T0 + i))
    assert len(store.executions(limit=limit)) == limit
