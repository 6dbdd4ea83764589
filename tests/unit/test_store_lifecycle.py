"""Store lifetime on every backend: opening, refusing, reopening, concurrent use, and exact
merges of buckets written across batches (property-based).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.store_samples import HAND, T0, alert, assert_hand_rollups, gpu, proc, snap

from gpufleet.model import Snapshot
from gpufleet.store import Resolution, Store, StoreError, open_store
from gpufleet.store.postgres import redact


def test_reads_run_while_a_writer_thread_writes(store: Store) -> None:
    batches = [
        [
            snap(T0 + m * 60, *(gpu(f"GPU-{i}", float(m % 100), index=i) for i in range(8)))
            for m in range(b * 30, (b + 1) * 30)
        ]
        for b in range(10)
    ]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for batch in batches:
                store.write_snapshots(batch)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    seen: list[int] = []
    while thread.is_alive() or reads == 0:
        series = store.gpu_series(
            metric="util_gpu_pct", start_s=T0, end_s=T0 + 86_400, resolution=Resolution.MINUTE
        )
        # Each batch commits whole: a reader sees every GPU at the same number of minutes.
        counts = {len(s.points) for s in series}
        assert len(counts) <= 1
        seen.append(counts.pop() if counts else 0)
        reads += 1
    thread.join()
    assert errors == []
    assert seen == sorted(seen)  # never goes back
    assert reads >= 1
    assert {
        len(s.points)
        for s in store.gpu_series(
            metric="util_gpu_pct", start_s=T0, end_s=T0 + 86_400, resolution=Resolution.MINUTE
        )
    } == {300}


_cluster_ids = itertools.count()

SAMPLE = st.tuples(
    st.integers(0, 2 * 3600 - 1),  # offset from T0: spans two hours and many minutes
    st.sampled_from([None, 0.0, 4.5, 5.0, 37.5, 99.5, 100.0]),  # util, incl. both edges
    st.sampled_from([None, 30.0, 81.5]),  # temp
    st.sampled_from([1.0, 10.0, 60.0]),  # dt
    st.booleans(),  # allocated
    st.sampled_from(["GPU-x", "GPU-y"]),
)


def _samples_to_snaps(samples: Sequence[tuple], cluster: str) -> list[Snapshot]:  # type: ignore[type-arg]
    return [
        snap(
            T0 + off,
            gpu(uuid, util, temp=temp, procs=[proc(1)] if alloc else []),
            dt=dt,
            cluster=cluster,
        )
        for off, util, temp, dt, alloc, uuid in samples
    ]


def _view(store: Store, cluster: str) -> list[object]:
    """Everything read back about ``cluster``, with the cluster name blanked out."""
    out: list[object] = []
    for res in (Resolution.MINUTE, Resolution.HOUR):
        for u in store.gpu_usage(start_s=T0, end_s=T0 + 7200, resolution=res, cluster=cluster):
            out.append(dataclasses.astuple(dataclasses.replace(u, cluster="")))
        for metric in ("util_gpu_pct", "temp_c"):
            for s in store.gpu_series(
                metric=metric, start_s=T0, end_s=T0 + 7200, resolution=res, cluster=cluster
            ):
                out.append((s.subject, metric, res, [dataclasses.astuple(p) for p in s.points]))
    return out


def assert_close(got: object, want: object, path: str = "") -> None:
    """Structural equality; floats within 1e-9 relative (sums are added in other orders)."""
    if isinstance(want, float) and isinstance(got, float | int):
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9), f"{path}: {got} != {want}"
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple), f"{path}: {got!r} is not a sequence"
        assert len(got) == len(want), f"{path}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{path}[{i}]")
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(samples=st.lists(SAMPLE, min_size=1, max_size=25), cut=st.integers(0, 25))
def test_merge_across_batches_is_exact(store: Store, samples: list[tuple], cut: int) -> None:  # type: ignore[type-arg]
    n = next(_cluster_ids)
    once, twice = f"once-{n}", f"twice-{n}"
    store.write_snapshots(_samples_to_snaps(samples, once))
    store.write_snapshots(_samples_to_snaps(samples[:cut], twice))
    store.write_snapshots(_samples_to_snaps(samples[cut:], twice))
    expected = _view(store, once)
    assert expected  # the comparison covers something
    assert_close(_view(store, twice), expected)


def test_open_store_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a directory"):
        open_store(tmp_path)


def test_open_store_rejects_foreign_files(tmp_path: Path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"definitely not sqlite " * 100)
    with pytest.raises(StoreError, match="not a gpufleet database"):
        open_store(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    with pytest.raises(StoreError, match="another program"):
        open_store(other)


def test_open_store_rejects_bad_urls() -> None:
    with pytest.raises(StoreError, match="unsupported store URL scheme 'mysql'"):
        open_store("mysql://localhost/db")
    with pytest.raises(StoreError, match="invalid PostgreSQL URL"):
        open_store("postgresql://127.0.0.1:5432/test?bogus_option=1")
    with pytest.raises(
        StoreError, match="cannot connect to PostgreSQL at postgresql://u:\\*\\*\\*@"
    ):
        open_store("postgresql://u:secret@127.0.0.1:1/test")


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://u:secret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p@ss@h:5432/db", "postgresql://u:***@h:5432/db"),  # "@" unencoded
        ("postgresql://u:p/s@ss@h/db", "postgresql://u:***@h/db"),  # "/" and "@"
        ("postgresql://u:p%40ss@h1:5432,h2:5433/db", "postgresql://u:***@h1:5432,h2:5433/db"),
        ("postgresql://:secret@h/db", "postgresql://:***@h/db"),
        ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pa?ss@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
        (
            "postgresql://h/db?password=secret&sslmode=disable",
            "postgresql://h/db?password=***&sslmode=disable",
        ),
        (
            "postgresql://h/db?sslmode=disable&PASSWORD=a&bcd&x=1",
            "postgresql://h/db?sslmode=disable&PASSWORD=***&x=1",
        ),
        (
            "postgres://u:pw@h/db?sslpassword=key&options=-csearch_path%3Ds",
            "postgres://u:***@h/db?sslpassword=***&options=-csearch_path%3Ds",
        ),
        (
            "postgresql://u@h/db?sslcert=/certs/a@b.pem",
            "postgresql://u@h/db?sslcert=/certs/a@b.pem",
        ),
        ("host=h password='a b' dbname=x", "host=h password=*** dbname=x"),
        (
            "host=h password=abc sslpassword=zz dbname=x",
            "host=h password=*** sslpassword=*** dbname=x",
        ),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_redact_hides_every_password(url: str, redacted: str) -> None:
    assert redact(url) == redacted


def test_connection_errors_never_show_the_password() -> None:
    # libpq would take "ss" for part of the host and say so; the store says what to fix.
    with pytest.raises(StoreError, match="percent-encode") as misparsed:
        open_store("postgresql://u:pa@ss/word@127.0.0.1:1/test")
    assert "pa@ss" not in str(misparsed.value)
    assert "ss/word" not in str(misparsed.value)
    with pytest.raises(StoreError, match="cannot connect") as refused:
        open_store("postgresql://127.0.0.1:1/test?password=s3cr3t-pw&connect_timeout=2")
    assert "s3cr3t" not in str(refused.value)
    assert "password=***" in str(refused.value)
    with pytest.raises(StoreError, match="invalid PostgreSQL URL") as invalid:
        open_store("postgresql://u:s3cr3t-pw@127.0.0.1:1/test?bogus_option=1")
    assert "s3cr3t" not in str(invalid.value)


def test_sqlite_url_and_nested_path(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.db"
    with open_store(f"sqlite://{target}") as store:
        assert store.backend == "sqlite"
    assert target.exists()


def test_newer_schema_is_refused(store_target: str) -> None:
    with open_store(store_target) as store:
        store.save_alert(alert(fired=T0))
        # A database upgraded by a later gpufleet records a migration this one lacks.
        with store._writing() as tx:  # type: ignore[attr-defined]
            tx.execute("INSERT INTO gpufleet_schema VALUES (?, ?, ?)", (99, "future", 0.0))
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(store_target)


def test_reopen_keeps_data(store_target: str) -> None:
    with open_store(store_target) as store:
        store.write_snapshots(HAND)
    with open_store(store_target) as store:
        assert_hand_rollups(store)
        assert store.health().writable
