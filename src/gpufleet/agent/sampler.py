"""The sampling loop: read the sources, publish live, feed alerts, batch history to the store.

Two threads: one samples on a fixed-rate schedule and never touches the store (so a slow
disk or a database outage cannot stall live data), the other flushes the buffer every
``flush_interval_s`` and applies retention every ``retention_every_s``. :meth:`Sampler.stop`
ends both and flushes once more, so an interrupt loses nothing that was sampled.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpufleet.agent.alerts import AlertEngine
from gpufleet.agent.live import LiveState
from gpufleet.agent.logonce import LogOnce
from gpufleet.agent.writer import SnapshotWriter
from gpufleet.collectors.base import GpuSource, SystemSource
from gpufleet.model import GpuProcess, GpuSample, Snapshot, SystemSample
from gpufleet.store.base import Store

logger = logging.getLogger(__name__)

MAX_INTERVAL_FACTOR = 3.0
"""A snapshot stands for at most this many intervals: a suspended laptop must not invent hours."""


class FixedRateSchedule:
    """Deadlines on a fixed grid ``start, start + interval, ...`` that never drift.

    The next deadline is the previous one plus the interval, not "now plus the interval", so
    the time a sample takes does not accumulate. A sample that is late by at most one
    interval runs at once; when the loop is further behind (a stall, a suspended machine) it
    skips the missed deadlines instead of bursting through them.
    """

    def __init__(self, interval_s: float, start_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.interval_s = interval_s
        self.next_s = start_s
        self.skipped = 0

    def delay(self, now_s: float) -> float:
        """Seconds to wait before the next deadline (0 when it is due)."""
        return max(0.0, self.next_s - now_s)

    def advance(self, now_s: float) -> int:
        """Move past the deadline just served; returns how many deadlines were skipped."""
        self.next_s += self.interval_s
        late = now_s - self.next_s
        if late <= self.interval_s:
            return 0
        missed = math.ceil(late / self.interval_s)
        self.next_s += missed * self.interval_s
        self.skipped += missed
        return missed


@dataclass(frozen=True, slots=True)
class SamplerStats:
    """How the sampler is doing, for the health endpoint and the CLI."""

    samples_taken: int
    last_sample_duration_s: float | None
    buffered: int
    dropped_samples: int
    last_flush_s: float | None
    store_error: str | None
    skipped_deadlines: int
    last_error: str | None
    rejected_samples: int = 0
    """Snapshots the store refused as bad (not an outage) and that were dropped."""


class Sampler:
    """Samples the GPUs and the host at a fixed rate and fans each snapshot out.

    Each snapshot is published to ``live`` (always, even while the store fails), evaluated
    by ``alerts`` and buffered for ``store``.

    Args:
        gpu_source: NVML, the simulator, or an empty source.
        system_source: host readings; None on a hub or when host metrics are off.
        live: where the newest snapshot is published for the API.
        cluster: cluster name stamped on snapshots.
        node: node name stamped on snapshots.
        interval_s: seconds between samples.
        store: history; None keeps data live only.
        flush_interval_s: seconds between batched writes.
        enrich: applied to every GPU process (attribution: user, container, pod, job).
        alerts: alert engine fed with every snapshot.
        clock: wall clock (epoch seconds) for timestamps.
        monotonic: clock for the schedule and durations.
        max_buffer: most snapshots held in memory while the store fails.
        retention_every_s: seconds between retention passes on the store.
        sleep: waits the given seconds; defaults to a wait that :meth:`stop` interrupts.
        tap: also given every snapshot (the hub pusher's disk spool).
            Tests inject one that advances a fake ``monotonic``.
    """

    def __init__(
        self,
        gpu_source: GpuSource,
        system_source: SystemSource | None,
        live: LiveState,
        *,
        cluster: str,
        node: str,
        interval_s: float,
        store: Store | None = None,
        flush_interval_s: float = 10.0,
        enrich: Callable[[GpuProcess], GpuProcess] | None = None,
        alerts: AlertEngine | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_buffer: int = 10_000,
        retention_every_s: float = 3600.0,
        sleep: Callable[[float], object] | None = None,
        tap: Callable[[Snapshot], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be positive, got {flush_interval_s}")
        self._gpu_source = gpu_source
        self._system_source = system_source
        self._live = live
        self._cluster = cluster
        self._node = node
        self._interval_s = interval_s
        self._store = store
        self._flush_interval_s = flush_interval_s
        self._enrich = enrich
        self._alerts = alerts
        self._clock = clock
        self._monotonic = monotonic
        self._retention_every_s = retention_every_s
        self._stop_event = threading.Event()
        self._sleep: Callable[[float], object] = sleep or self._stop_event.wait
        self._tap = tap
        self._writer = SnapshotWriter(
            store, max_buffer=max_buffer, clock=clock, retry_every_s=flush_interval_s
        )
        self._threads: list[threading.Thread] = []
        self._last_ts_s: float | None = None
        self._samples_taken = 0
        self._last_duration_s: float | None = None
        self._last_error: str | None = None
        self._skipped_deadlines = 0
        self._log_once = LogOnce(logger)

    # -- stats ---------------------------------------------------------------------------------

    @property
    def samples_taken(self) -> int:
        """Snapshots taken since start."""
        return self._samples_taken

    @property
    def last_sample_duration_s(self) -> float | None:
        """How long the last sampling pass took."""
        return self._last_duration_s

    @property
    def buffered(self) -> int:
        """Snapshots waiting to be written to the store."""
        return self._writer.buffered

    @property
    def dropped_samples(self) -> int:
        """Snapshots dropped because the store failed for longer than the buffer lasts."""
        return self._writer.dropped_samples

    @property
    def rejected_samples(self) -> int:
        """Snapshots the store rejected as bad (not an outage); they were dropped."""
        return self._writer.rejected_samples

    @property
    def last_flush_s(self) -> float | None:
        """Wall-clock time (epoch seconds) of the last successful write to the store."""
        return self._writer.last_flush_s

    @property
    def store_error(self) -> str | None:
        """Why writing to the store fails, or None when it works.

        Also set, with the count of rejected samples, when the last flush had to drop
        snapshots the store rejected.
        """
        return self._writer.store_error

    def stats(self) -> SamplerStats:
        """All counters at once."""
        return SamplerStats(
            samples_taken=self.samples_taken,
            last_sample_duration_s=self.last_sample_duration_s,
            buffered=self.buffered,
            dropped_samples=self.dropped_samples,
            last_flush_s=self.last_flush_s,
            store_error=self.store_error,
            skipped_deadlines=self._skipped_deadlines,
            last_error=self._last_error,
            rejected_samples=self.rejected_samples,
        )

    # -- one pass ------------------------------------------------------------------------------

    def sample_once(self) -> Snapshot:
        """Read the sources once, publish the snapshot, evaluate alerts and buffer it.

        A failing host source leaves ``system`` None; a failing ``enrich`` leaves that
        process as the source reported it; a failing alert engine is logged.

        Raises:
            Exception: whatever the GPU source raised; without GPU readings there is no
                snapshot to publish (the loop logs it and tries again next interval).
        """
        started = self._monotonic()
        now_s = self._clock()
        gpus = self._gpu_source.sample(now_s)
        if self._enrich is not None:
            gpus = tuple(self._enrich_gpu(gpu) for gpu in gpus)
        system = self._sample_system(now_s)
        snapshot = Snapshot(
            ts_s=now_s,
            cluster=self._cluster,
            node=self._node,
            gpus=gpus,
            system=system,
            interval_s=self._interval_for(now_s),
        )
        self._last_ts_s = now_s
        duration = self._monotonic() - started
        self._live.publish(snapshot, duration)
        self._samples_taken += 1
        self._last_duration_s = duration
        if self._alerts is not None:
            try:
                self._alerts.evaluate(snapshot)
            except Exception as exc:
                self._log_once_exc(f"alert evaluation failed: {exc!r}")
        self._writer.append(snapshot)
        if self._tap is not None:
            try:
                self._tap(snapshot)  # a hub's spool
            except Exception as exc:
                self._log_once_exc(f"keeping a sample for the hub failed: {exc!r}")
        return snapshot

    def flush(self) -> int:
        """Write the buffered snapshots to the store in one batch; returns how many."""
        return self._writer.flush()

    # -- threads -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sampling thread and, with a store, the writer thread.

        Raises:
            RuntimeError: the sampler is already running.
        """
        if any(t.is_alive() for t in self._threads):
            raise RuntimeError("sampler is already running")
        self._stop_event.clear()
        self._threads = [
            threading.Thread(target=self.run_sampling, name="gpufleet-sampler", daemon=True)
        ]
        if self._store is not None:
            self._threads.append(
                threading.Thread(target=self.run_writer, name="gpufleet-writer", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads, then flush what is left (history and alerts) so nothing is lost.

        Args:
            timeout: seconds to wait for each thread (a sample or write in flight).
        """
        self.request_stop()
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("%s did not stop within %.1f s", thread.name, timeout)
        self._threads = []
        written = self.flush()
        if self.buffered:
            logger.warning(
                "%d samples could not be written to the store before exit (%s)",
                self.buffered,
                self.store_error,
            )
        elif written:
            logger.debug("final flush wrote %d samples", written)
        alerts = self._alerts
        if alerts is not None:
            # Alerts are saved off the sampling thread; give the last ones their chance too.
            self._guarded("saving the last alerts", lambda: alerts.flush_pending(timeout))

    def request_stop(self) -> None:
        """Ask both loops to end at their next check, without waiting or flushing.

        Safe to call from a signal handler; :meth:`stop` does this and then waits and flushes.
        """
        self._stop_event.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (loops end at their next check)."""
        return self._stop_event.is_set()

    def run_sampling(self) -> None:
        """The sampling loop: fixed-rate, until :meth:`stop`. Runs in the calling thread."""
        schedule = FixedRateSchedule(self._interval_s, self._monotonic())
        while not self._stop_event.is_set():
            delay = schedule.delay(self._monotonic())
            if delay > 0:
                # The wait may end early (stop, spurious wake-up): re-check before sampling.
                self._sleep(delay)
                continue
            try:
                self.sample_once()
                self._last_error = None
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._log_once_exc(f"sampling failed: {exc!r}")
            skipped = schedule.advance(self._monotonic())
            if skipped:
                self._skipped_deadlines += skipped
                logger.debug("sampling fell behind; skipped %d deadlines", skipped)

    def run_writer(self) -> None:
        """The writer loop: flush and apply retention on schedule, until :meth:`stop`."""
        start = self._monotonic()
        flushes = FixedRateSchedule(self._flush_interval_s, start + self._flush_interval_s)
        retention = FixedRateSchedule(self._retention_every_s, start)
        while not self._stop_event.is_set():
            now = self._monotonic()
            delay = min(flushes.delay(now), retention.delay(now))
            if delay > 0:
                self._sleep(delay)
                continue
            if flushes.delay(now) == 0:
                self._guarded("writing to the store", self.flush)
                flushes.advance(self._monotonic())
            if retention.delay(now) == 0:
                self._guarded("applying retention", self._writer.apply_retention)
                retention.advance(self._monotonic())

    # -- internals -----------------------------------------------------------------------------

    def _interval_for(self, now_s: float) -> float:
        """Seconds this snapshot stands for: the real gap since the last one, within bounds."""
        if self._last_ts_s is None:
            return self._interval_s
        gap = now_s - self._last_ts_s
        if gap <= 0:
            # The wall clock stepped backwards; the configured interval is the best guess.
            return self._interval_s
        return min(gap, MAX_INTERVAL_FACTOR * self._interval_s)

    def _enrich_gpu(self, gpu: GpuSample) -> GpuSample:
        if not gpu.processes:
            return gpu
        return dataclasses.replace(gpu, processes=tuple(self._enrich_one(p) for p in gpu.processes))

    def _enrich_one(self, proc: GpuProcess) -> GpuProcess:
        assert self._enrich is not None
        try:
            return self._enrich(proc)
        except Exception as exc:
            # Attribution is best effort: an unknown owner beats a lost sample.
            self._log_once_exc(f"could not attribute a GPU process: {exc!r}")
            return proc

    def _sample_system(self, now_s: float) -> SystemSample | None:
        if self._system_source is None:
            return None
        try:
            return self._system_source.sample(now_s)
        except Exception as exc:
            self._log_once_exc(f"host sampling failed: {exc!r}")
            return None

    def _guarded(self, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:
            # Never let the writer thread die: the buffer would grow until samples drop.
            self._log_once_exc(f"{what} failed: {exc!r}")

    def _log_once_exc(self, message: str) -> None:
        """Log with traceback the first time ``message`` is seen, so a recurring fault logs once."""
        self._log_once.exception(message)
