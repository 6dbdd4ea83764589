"""SQLite-only behaviour: crash safety, full disk, read-only files, pragmas, locks.

Tests run as root here, which ignores file permissions; read-only and disk-full conditions
are therefore made real with a small tmpfs (mounted when we are root and allowed to; the
test is skipped otherwise) or, for the full disk, with SQLite's page cap.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpufleet.model import GpuSample, Snapshot
from gpufleet.store import Resolution, SQLiteStore, StoreUnavailable, open_store

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600
SRC = str(Path(__file__).resolve().parents[2] / "src")


def batch(b: int, *, minutes: int = 10, gpus: int = 8) -> list[Snapshot]:
    """Batch ``b``: ``minutes`` one-minute snapshots of ``gpus`` GPUs after the previous one."""
    return [
        Snapshot(
            ts_s=T0 + (b * minutes + m) * 60.0,
            cluster="c1",
            node="n1",
            gpus=tuple(
                GpuSample(uuid=f"GPU-{i}", index=i, util_gpu_pct=float((b + m + i) % 101))
                for i in range(gpus)
            ),
            system=None,
            interval_s=60.0,
        )
        for m in range(minutes)
    ]


def raw_counts(store: SQLiteStore) -> set[int]:
    series = store.gpu_series(
        metric="util_gpu_pct", start_s=0, end_s=T0 * 2, resolution=Resolution.RAW
    )
    return {len(s.points) for s in series}


KILL_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[3])
from test_store_sqlite import batch
from gpufleet.store import open_store

store = open_store(sys.argv[1])
for b in range(100_000):
    store.write_snapshots(batch(b))
    print(b, flush=True)
"""


def test_kill_9_loses_no_committed_batch_and_leaves_a_sound_file(sqlite_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(sqlite_path), SRC, str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    committed = -1
    try:
        for line in child.stdout:
            committed = int(line)
            if committed >= 25:
                break
    finally:
        # Killed while it writes batch committed+1 (or later): no chance to clean up.
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert committed >= 25
    with SQLiteStore(sqlite_path) as store:
        assert store.integrity_check() == "ok"
        (count,) = raw_counts(store)  # every GPU has the same number of samples
        assert count >= (committed + 1) * 10  # every batch reported committed is there
        assert count % 10 == 0  # and no batch is there in part
        rolled_up_s = sum(u.seconds for u in store.gpu_usage(start_s=0, end_s=T0 * 2))
        assert rolled_up_s == count * 8 * 60.0  # rollups committed with their raw rows


def test_disk_full_raises_unavailable_and_recovers(sqlite_path: Path) -> None:
    with SQLiteStore(sqlite_path) as store:
        store.write_snapshots(batch(0))
        pages = store._read("PRAGMA page_count")[0][0]
        store.set_page_limit(pages)
        with pytest.raises(StoreUnavailable, match="the disk is full") as err:
            store.write_snapshots(batch(1, minutes=60))
        assert "free space and the agent resumes writing" in str(err.value)
        health = store.health()
        assert (health.writable, health.readable, health.error) == (False, True, str(err.value))
        assert raw_counts(store) == {10}  # the failed batch left nothing behind
        store.set_page_limit(None)
        store.write_snapshots(batch(1, minutes=60))
        assert store.health().writable
        assert store.health().error is None
        assert raw_counts(store) == {70}
        assert store.integrity_check() == "ok"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, for conditions root cannot fake with permissions (ENOSPC, EROFS)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_disk_recovers_once_space_is_freed(tmpfs: Path) -> None:
    db = tmpfs / "gpufleet.db"
    with SQLiteStore(db) as store:
        store.write_snapshots(batch(0))
        filler = tmpfs / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass  # ENOSPC: the filesystem is now full
        finally:
            os.close(fd)
        with pytest.raises(StoreUnavailable, match=f"cannot write {db}: the disk is full"):
            store.write_snapshots(batch(1, minutes=60))
        assert not store.health().writable
        filler.unlink()
        store.write_snapshots(batch(1, minutes=60))
        assert store.health().writable
        assert raw_counts(store) == {70}
        assert store.integrity_check() == "ok"


def test_read_only_filesystem_opens_for_reading_and_resumes_writing(tmpfs: Path) -> None:
    db = tmpfs / "gpufleet.db"
    with SQLiteStore(db) as store:
        store.write_snapshots(batch(0))
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    with SQLiteStore(db) as store:
        assert raw_counts(store) == {10}  # reads work
        with pytest.raises(StoreUnavailable, match="read-only"):
            store.write_snapshots(batch(1))
        health = store.health()
        assert (health.writable, health.readable) == (False, True)
        assert "make both writable" in (health.error or "")
        subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
        store.write_snapshots(batch(1))  # writable again: no reopen needed
        assert store.health().writable
        assert raw_counts(store) == {20}


def test_pragmas_wal_and_normal_sync(sqlite_path: Path) -> None:
    with open_store(sqlite_path) as store:
        store.write_snapshots(batch(0))
        conn = sqlite3.connect(sqlite_path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()
        assert store._writer is not None  # type: ignore[attr-defined]
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 1  # type: ignore[attr-defined]


def test_lock_held_by_another_process_is_reported(sqlite_path: Path) -> None:
    with SQLiteStore(sqlite_path, busy_timeout_s=0.2) as store:
        other = sqlite3.connect(sqlite_path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreUnavailable, match="locked by another process"):
                store.write_snapshots(batch(0))
            assert raw_counts(store) == set()  # reads are not blocked by the writer lock
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.write_snapshots(batch(0))
        assert raw_counts(store) == {10}
