"""The sampler: snapshot building, batching to a failing store, and the fixed-rate loops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import cast

import pytest

from gpufleet.agent.alerts import AlertEngine
from gpufleet.agent.live import LiveState
from gpufleet.agent.sampler import FixedRateSchedule, Sampler
from gpufleet.model import (
    Alert,
    Attribution,
    GpuProcess,
    GpuSample,
    GpuSourceStatus,
    Snapshot,
    SystemSample,
)
from gpufleet.settings import AlertSettings
from gpufleet.store.base import Retention, Store, StoreError, StoreUnavailable

GIB = 1024**3


class FakeClock:
    """Wall and monotonic time that only move when told to."""

    def __init__(self, wall: float = 1_700_000_000.0) -> None:
        self.wall = wall
        self.mono = 0.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


class FakeGpuSource:
    name = "fake"

    def __init__(self, gpus: Sequence[GpuSample] = ()) -> None:
        self.gpus = tuple(gpus)
        self.calls: list[float] = []
        self.fail_with: Exception | None = None
        self.on_sample: Callable[[], None] | None = None

    def status(self) -> GpuSourceStatus:
        return GpuSourceStatus("fake", True, len(self.gpus), True)

    def sample(self, now_s: float) -> tuple[GpuSample, ...]:
        self.calls.append(now_s)
        if self.on_sample is not None:
            self.on_sample()
        if self.fail_with is not None:
            raise self.fail_with
        return self.gpus

    def close(self) -> None:
        pass


class FakeSystemSource:
    def __init__(self, cpu_pct: float = 10.0) -> None:
        self.cpu_pct = cpu_pct
        self.fail_with: Exception | None = None

    def sample(self, now_s: float) -> SystemSample:
        if self.fail_with is not None:
            raise self.fail_with
        return SystemSample(
            cpu_pct=self.cpu_pct,
            cpu_per_core_pct=(self.cpu_pct,),
            cpu_count=1,
            load_1=None,
            load_5=None,
            load_15=None,
            mem_total_bytes=8 * GIB,
            mem_used_bytes=GIB,
            mem_available_bytes=7 * GIB,
            mem_pct=12.5,
            swap_total_bytes=0,
            swap_used_bytes=0,
            swap_pct=0.0,
        )


class FakeStore:
    """The write side of the Store protocol, with a switch to make it fail."""

    backend = "fake"
    retention = Retention()

    def __init__(self) -> None:
        self.batches: list[list[Snapshot]] = []
        self.retention_calls: list[float] = []
        self.fail_with: Exception | None = None
        self.bad: dict[float, Exception] = {}
        """Snapshot timestamps the store refuses, and how: a batch holding one fails whole."""
        self.calls = 0
        self.down_after_calls: int | None = None

    def write_snapshots(self, snapshots: Sequence[Snapshot], *, keep_raw: bool = True) -> None:
        self.calls += 1
        if self.down_after_calls is not None and self.calls > self.down_after_calls:
            raise StoreUnavailable("database went down")
        if self.fail_with is not None:
            raise self.fail_with
        for snapshot in snapshots:
            if snapshot.ts_s in self.bad:
                raise self.bad[snapshot.ts_s]
        self.batches.append(list(snapshots))

    def apply_retention(self, now_s: float) -> dict[str, int]:
        self.retention_calls.append(now_s)
        return {"gpu_raw": 0}

    @property
    def written(self) -> list[Snapshot]:
        return [s for batch in self.batches for s in batch]


def one_gpu(*processes: GpuProcess) -> GpuSample:
    return GpuSample(uuid="GPU-1", index=0, util_gpu_pct=40.0, processes=processes)


def make_sampler(
    clock: FakeClock,
    gpu_source: FakeGpuSource | None = None,
    system_source: FakeSystemSource | None = None,
    store: FakeStore | None = None,
    **kwargs: object,
) -> tuple[Sampler, LiveState]:
    source = gpu_source or FakeGpuSource([one_gpu()])
    live = LiveState(source.status())
    sampler = Sampler(
        source,
        system_source,
        live,
        cluster="lab",
        node="node-1",
        interval_s=cast(float, kwargs.pop("interval_s", 2.0)),
        store=cast(Store, store) if store is not None else None,
        clock=clock.time,
        monotonic=clock.monotonic,
        **kwargs,  # type: ignore[arg-type]
    )
    return sampler, live


# -- one pass ----------------------------------------------------------------------------------


def test_interval_is_the_gap_since_the_last_sample_capped_at_three_intervals() -> None:
    clock = FakeClock()
    sampler, _ = make_sampler(clock, interval_s=2.0)
    intervals = [sampler.sample_once().interval_s]
    for gap in (2.5, 1.0, 3600.0):
        clock.advance(gap)
        intervals.append(sampler.sample_once().interval_s)
    clock.wall -= 30  # the wall clock stepped back (NTP)
    intervals.append(sampler.sample_once().interval_s)
    assert intervals == [2.0, 2.5, 1.0, 6.0, 2.0]


def test_snapshot_is_stamped_and_published_with_its_duration() -> None:
    clock = FakeClock()
    source = FakeGpuSource([one_gpu()])
    source.on_sample = lambda: setattr(clock, "mono", clock.mono + 0.25)
    sampler, live = make_sampler(clock, source, FakeSystemSource(cpu_pct=33.0))

    snapshot = sampler.sample_once()

    assert (snapshot.ts_s, snapshot.cluster, snapshot.node) == (clock.wall, "lab", "node-1")
    assert source.calls == [clock.wall]
    assert snapshot.system is not None
    assert snapshot.system.cpu_pct == 33.0
    assert live.latest is snapshot
    assert live.last_sample_duration_s == pytest.approx(0.25)
    assert sampler.last_sample_duration_s == pytest.approx(0.25)
    assert sampler.samples_taken == 1


def test_enrich_is_applied_to_every_process() -> None:
    clock = FakeClock()
    gpus = [
        one_gpu(GpuProcess(pid=1), GpuProcess(pid=2)),
        GpuSample(uuid="GPU-2", index=1, processes=(GpuProcess(pid=3),)),
    ]

    def enrich(proc: GpuProcess) -> GpuProcess:
        return GpuProcess(pid=proc.pid, attribution=Attribution(user=f"user{proc.pid}"))

    sampler, _ = make_sampler(clock, FakeGpuSource(gpus), enrich=enrich)
    snapshot = sampler.sample_once()
    users = [p.attribution.user for g in snapshot.gpus for p in g.processes]
    assert users == ["user1", "user2", "user3"]


def test_failing_enrich_keeps_the_process_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()

    def enrich(proc: GpuProcess) -> GpuProcess:
        raise PermissionError("/proc/1/status")

    source = FakeGpuSource([one_gpu(GpuProcess(pid=1, name="python"))])
    sampler, _ = make_sampler(clock, source, enrich=enrich)
    with caplog.at_level(logging.ERROR):
        first = sampler.sample_once()
        sampler.sample_once()
    assert first.gpus[0].processes == (GpuProcess(pid=1, name="python"),)
    assert len(caplog.records) == 1


def test_failing_host_source_leaves_system_empty_and_logs_once_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    system = FakeSystemSource()
    system.fail_with = OSError("/proc/stat unreadable")
    sampler, live = make_sampler(clock, system_source=system)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert sampler.sample_once().system is None
    assert live.samples_taken == 3
    assert len(caplog.records) == 1
    assert caplog.records[0].exc_info is not None
    assert "/proc/stat unreadable" in caplog.records[0].getMessage()


def test_snapshots_feed_the_alert_engine() -> None:
    clock = FakeClock()
    alerts = AlertEngine(AlertSettings.model_validate({"hold_s": 0.0}), rules=["host_cpu"])
    sampler, _ = make_sampler(clock, system_source=FakeSystemSource(cpu_pct=99.0), alerts=alerts)
    sampler.sample_once()
    assert [(a.rule, a.node) for a in alerts.active()] == [("host_cpu", "node-1")]


def test_stop_saves_the_alerts_still_queued() -> None:
    clock = FakeClock()
    saved: list[Alert] = []

    class AlertStore(FakeStore):
        def save_alert(self, alert: Alert) -> Alert:
            saved.append(alert)
            return alert

        def alerts(self, **kwargs: object) -> list[Alert]:
            return []

    store = AlertStore()
    alerts = AlertEngine(
        AlertSettings.model_validate({"hold_s": 0.0}),
        rules=["host_cpu"],
        store=cast(Store, store),
        background=False,
    )
    sampler, _ = make_sampler(
        clock, system_source=FakeSystemSource(cpu_pct=99.0), store=store, alerts=alerts
    )
    sampler.sample_once()
    assert saved == []
    sampler.stop()
    assert [(a.rule, a.node) for a in saved] == [("host_cpu", "node-1")]
    assert len(store.written) == 1


# -- batching and store failures ---------------------------------------------------------------


def test_flush_writes_the_buffer_in_one_batch() -> None:
    clock = FakeClock()
    store = FakeStore()
    sampler, _ = make_sampler(clock, store=store)
    taken = []
    for _ in range(3):
        taken.append(sampler.sample_once())
        clock.advance(2)
    assert sampler.buffered == 3
    assert sampler.flush() == 3
    assert store.batches == [taken]
    assert sampler.last_flush_s == clock.wall
    assert sampler.buffered == 0
    assert sampler.flush() == 0
    assert len(store.batches) == 1


def test_without_a_store_nothing_is_buffered() -> None:
    sampler, live = make_sampler(FakeClock())
    sampler.sample_once()
    assert (sampler.buffered, sampler.flush(), live.samples_taken) == (0, 0, 1)


def test_store_outage_warns_once_keeps_samples_and_reports_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = FakeStore()
    store.fail_with = StoreUnavailable("disk full: /var/lib/gpufleet")
    sampler, live = make_sampler(clock, store=store)
    caplog.set_level(logging.INFO, logger="gpufleet.agent")

    taken = []
    for _ in range(4):
        taken.append(sampler.sample_once())
        assert sampler.flush() == 0
        clock.advance(2)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "disk full: /var/lib/gpufleet" in warnings[0].getMessage()
    error_while_down = sampler.store_error
    assert error_while_down == "disk full: /var/lib/gpufleet"
    assert sampler.buffered == 4
    assert live.samples_taken == 4  # live data never stopped

    store.fail_with = None
    assert sampler.flush() == 4
    assert store.batches == [taken]
    assert sampler.store_error is None
    recovered = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(recovered) == 1
    assert "works again" in recovered[0]

    store.fail_with = StoreUnavailable("database is down")
    sampler.sample_once()
    sampler.flush()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # a new outage is worth a new warning


def test_buffer_is_bounded_and_drops_the_oldest(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    store = FakeStore()
    store.fail_with = StoreUnavailable("read-only file system")
    sampler, _ = make_sampler(clock, store=store, max_buffer=3)
    taken = []
    with caplog.at_level(logging.WARNING):
        for _ in range(6):
            taken.append(sampler.sample_once())
            sampler.flush()
            clock.advance(2)
    assert (sampler.buffered, sampler.dropped_samples) == (3, 3)
    drop_warnings = [r for r in caplog.records if "dropping the oldest" in r.getMessage()]
    assert len(drop_warnings) == 1

    store.fail_with = None
    sampler.flush()
    assert store.written == taken[-3:]
    stats = sampler.stats()
    assert (stats.buffered, stats.dropped_samples, stats.store_error) == (0, 3, None)


def test_one_bad_snapshot_is_dropped_and_the_rest_of_the_batch_is_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = FakeStore()
    sampler, _ = make_sampler(clock, store=store)
    taken = []
    for _ in range(7):
        taken.append(sampler.sample_once())
        clock.advance(2)
    store.bad[taken[4].ts_s] = StoreError("value out of range for column temp_c")
    with caplog.at_level(logging.INFO, logger="gpufleet.agent"):
        assert sampler.flush() == 6
    assert store.written == taken[:4] + taken[5:]
    assert (sampler.buffered, sampler.rejected_samples) == (0, 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "value out of range for column temp_c" in warnings[0]
    assert "dropped" in warnings[0]
    stats = sampler.stats()
    assert stats.rejected_samples == 1
    assert stats.store_error is not None
    assert "rejected 1 samples" in stats.store_error

    # The same fault again is counted, not logged again; a clean flush clears the error.
    for _ in range(3):
        taken.append(sampler.sample_once())
        clock.advance(2)
    store.bad[taken[-1].ts_s] = StoreError("value out of range for column temp_c")
    with caplog.at_level(logging.INFO, logger="gpufleet.agent"):
        assert sampler.flush() == 2
    assert sampler.rejected_samples == 2
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    sampler.sample_once()
    assert sampler.flush() == 1
    assert sampler.store_error is None
    assert sampler.stats().rejected_samples == 2


def test_unexpected_store_exception_drops_the_offending_snapshot_with_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    store = FakeStore()
    store.fail_with = KeyError("gpu_raw")
    sampler, _ = make_sampler(clock, store=store)
    sampler.sample_once()
    with caplog.at_level(logging.WARNING):
        assert sampler.flush() == 0
        sampler.sample_once()
        assert sampler.flush() == 0
    # Not an outage: keeping the batch would block every later write for good.
    assert (sampler.buffered, sampler.rejected_samples) == (0, 2)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    store.fail_with = None
    sampler.sample_once()
    assert sampler.flush() == 1


def test_an_outage_while_bisecting_keeps_what_was_not_written() -> None:
    clock = FakeClock()
    store = FakeStore()
    sampler, _ = make_sampler(clock, store=store)
    taken = []
    for _ in range(4):
        taken.append(sampler.sample_once())
        clock.advance(2)
    store.bad[taken[0].ts_s] = StoreError("bad row")
    # Calls: the whole batch (rejected), [0, 1] (rejected), [0] (rejected), [1] (written),
    # then the store goes down before [2, 3].
    store.down_after_calls = 4
    assert sampler.flush() == 1
    assert store.written == [taken[1]]
    assert (sampler.buffered, sampler.rejected_samples) == (2, 1)
    assert sampler.store_error == "database went down"
    store.down_after_calls = None
    assert sampler.flush() == 2
    assert store.written == taken[1:]


def test_log_once_keeps_working_after_many_distinct_messages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    system = FakeSystemSource()
    sampler, _ = make_sampler(clock, system_source=system)
    with caplog.at_level(logging.ERROR):
        for i in range(150):
            system.fail_with = OSError(f"transient fault {i}")
            sampler.sample_once()
        system.fail_with = OSError("/proc/stat unreadable")
        for _ in range(5):
            sampler.sample_once()
    recurring = [r for r in caplog.records if "/proc/stat unreadable" in r.getMessage()]
    assert len(recurring) == 1


# -- schedule math -----------------------------------------------------------------------------


def test_schedule_deadlines_do_not_drift() -> None:
    schedule = FixedRateSchedule(2.0, start_s=100.0)
    deadlines = []
    now = 100.0
    for _ in range(5):
        now += schedule.delay(now)
        deadlines.append(now)
        now += 0.3  # the sample's own duration must not push later deadlines
        assert schedule.advance(now) == 0
    assert deadlines == [100.0, 102.0, 104.0, 106.0, 108.0]


def test_schedule_catches_up_once_when_slightly_late() -> None:
    schedule = FixedRateSchedule(2.0, start_s=0.0)
    assert schedule.advance(3.0) == 0  # served deadline 0 but finished at 3 s
    assert schedule.delay(3.0) == 0.0  # deadline 2 is due now: one catch-up sample
    assert schedule.advance(3.1) == 0
    assert schedule.delay(3.1) == pytest.approx(0.9)  # back on the grid at 4 s


def test_schedule_skips_ahead_instead_of_bursting() -> None:
    schedule = FixedRateSchedule(2.0, start_s=0.0)
    assert schedule.advance(7.0) == 3  # deadlines 2, 4 and 6 are skipped
    assert schedule.next_s == 8.0
    assert schedule.skipped == 3
    assert schedule.advance(3600.5) == 1796
    assert schedule.next_s == 3602.0


def test_schedule_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_s must be positive"):
        FixedRateSchedule(0.0, 0.0)


# -- loops with an injected clock and sleep ----------------------------------------------------


def test_sampling_loop_runs_on_the_grid_and_skips_after_a_stall() -> None:
    clock = FakeClock()
    source = FakeGpuSource([one_gpu()])
    sleeps: list[float] = []
    sample_mono: list[float] = []
    durations = iter([0.3, 0.3, 7.0, 0.3, 3.0, 0.3])

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    sampler, _ = make_sampler(clock, source, sleep=sleep)

    def on_sample() -> None:
        sample_mono.append(clock.mono)
        try:
            clock.advance(next(durations))
        except StopIteration:
            sampler.request_stop()

    source.on_sample = on_sample
    sampler.run_sampling()

    # On the grid at 0, 2, 4; the 7 s stall ends at 11, so 6, 8 and 10 are skipped rather
    # than run back to back. The 3 s sample ends at 17, one interval late at most: it is
    # caught up at once and the loop is back on the grid at 18.
    assert sample_mono == [0.0, 2.0, 4.0, 12.0, 14.0, 17.0, 18.0]
    assert sleeps == pytest.approx([1.7, 1.7, 1.0, 1.7, 0.7])
    assert sampler.stats().skipped_deadlines == 3
    assert sampler.samples_taken == 7


def test_sampling_loop_survives_a_failing_source_and_logs_each_message_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    source = FakeGpuSource([one_gpu()])
    errors = iter([RuntimeError("NVML driver not loaded")] * 3 + [RuntimeError("other")])

    def on_sample() -> None:
        try:
            source.fail_with = next(errors)
        except StopIteration:
            source.fail_with = None
            sampler.request_stop()

    source.on_sample = on_sample
    sampler, live = make_sampler(clock, source, sleep=clock.advance)
    with caplog.at_level(logging.ERROR):
        sampler.run_sampling()

    assert len(source.calls) == 5
    assert live.samples_taken == 1  # the last pass worked again
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "NVML driver not loaded" in messages[0]
    assert "other" in messages[1]
    assert all(r.exc_info for r in caplog.records)
    assert sampler.stats().last_error is None


def test_writer_loop_flushes_and_applies_retention_on_schedule() -> None:
    clock = FakeClock()
    store = FakeStore()
    flush_mono: list[float] = []
    sampler, _ = make_sampler(
        clock, store=store, flush_interval_s=10.0, retention_every_s=30.0, sleep=clock.advance
    )
    real_flush = sampler.flush

    def counting_flush() -> int:
        flush_mono.append(clock.mono)
        sampler.sample_once()  # something new arrives between flushes
        if clock.mono >= 60:
            sampler.request_stop()
        return real_flush()

    sampler.flush = counting_flush  # type: ignore[method-assign]
    start_wall = clock.wall
    sampler.run_writer()

    assert flush_mono == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    assert store.retention_calls == [start_wall, start_wall + 30, start_wall + 60]
    assert len(store.batches) == 6


# -- threads -----------------------------------------------------------------------------------


def test_start_and_stop_flush_what_was_sampled() -> None:
    store = FakeStore()
    sampled = threading.Event()
    source = FakeGpuSource([one_gpu()])
    source.on_sample = sampled.set
    live = LiveState(source.status())
    # A long interval: the first sample is immediate, then both threads wait until stop().
    sampler = Sampler(
        source,
        FakeSystemSource(),
        live,
        cluster="lab",
        node="node-1",
        interval_s=60.0,
        store=cast(Store, store),
        flush_interval_s=60.0,
        retention_every_s=3600.0,
    )
    sampler.start()
    try:
        assert sampled.wait(5.0)
        with pytest.raises(RuntimeError, match="already running"):
            sampler.start()
    finally:
        sampler.stop(timeout=5.0)
    assert [s.node for s in store.written] == ["node-1"]
    assert sampler.buffered == 0
    assert not any(t.name.startswith("gpufleet-") for t in threading.enumerate())


def test_stop_warns_when_the_final_flush_fails(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    store = FakeStore()
    store.fail_with = StoreUnavailable("database is down")
    sampler, _ = make_sampler(clock, store=store)
    sampler.sample_once()
    with caplog.at_level(logging.WARNING):
        sampler.stop()
    assert any(
        "1 samples could not be written" in r.getMessage() and "database is down" in r.getMessage()
        for r in caplog.records
    )
