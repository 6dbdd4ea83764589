"""Batching snapshots to the store, surviving a store that is down for a while.

Sampling must never wait on the disk or the database: the sampler appends to a bounded
in-memory buffer and a writer flushes it in one ``write_snapshots`` call. Two kinds of
failure are told apart:

* the store is unavailable (:class:`~gpufleet.store.base.StoreUnavailable`: disk full,
  database down): the buffer is kept (the oldest samples are dropped past ``max_buffer``, and
  counted) and the next flush retries; one warning is logged when writing starts failing and
  one line when it works again, however many attempts lie between;
* the store rejects the batch (any other error): something in the batch is bad, and
  retrying it would block history for good. The batch is bisected so every good snapshot
  lands and only the offending ones are dropped, counted as ``rejected_samples`` and logged
  once per reason.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from gpufleet.agent.logonce import LogOnce
from gpufleet.model import Snapshot
from gpufleet.store.base import Store, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)


class SnapshotWriter:
    """A bounded buffer of snapshots and the logic to write it to a store.

    Thread-safe: the sampler thread calls :meth:`append`, the writer thread (and a final
    flush on shutdown) call :meth:`flush`; only one flush runs at a time.

    Args:
        store: where snapshots go; None makes the writer a no-op (live-only agent).
        max_buffer: most snapshots kept while the store fails; older ones are dropped.
        clock: wall clock, stamped on successful flushes.
        retry_every_s: how often flushes are retried, only to word the failure warning.
    """

    def __init__(
        self,
        store: Store | None,
        *,
        max_buffer: int = 10_000,
        clock: Callable[[], float],
        retry_every_s: float = 10.0,
    ) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1, got {max_buffer}")
        self._store = store
        self._max_buffer = max_buffer
        self._clock = clock
        self._retry_every_s = retry_every_s
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._buffer: deque[Snapshot] = deque()
        self._dropped = 0
        self._dropped_this_outage = 0
        self._rejected = 0
        self._rejection: str | None = None
        self._store_error: str | None = None
        self._last_flush_s: float | None = None
        self._log_once = LogOnce(logger)

    @property
    def buffered(self) -> int:
        """Snapshots waiting to be written."""
        with self._lock:
            return len(self._buffer)

    @property
    def dropped_samples(self) -> int:
        """Snapshots dropped because the buffer was full while the store failed."""
        with self._lock:
            return self._dropped

    @property
    def rejected_samples(self) -> int:
        """Snapshots the store refused (a bad snapshot, not an outage) and that were dropped."""
        with self._lock:
            return self._rejected

    @property
    def last_flush_s(self) -> float | None:
        """Wall-clock time (epoch seconds) of the last successful write, None before one."""
        return self._last_flush_s

    @property
    def store_error(self) -> str | None:
        """Why writing fails, or None when it works.

        The outage reason while the store is unavailable; otherwise, when the last flush
        had to drop snapshots the store rejected, how many were rejected in all and why.
        """
        if self._store_error is not None:
            return self._store_error
        with self._lock:
            if self._rejection is None:
                return None
            return f"the store rejected {self._rejected} samples in all ({self._rejection})"

    def append(self, snapshot: Snapshot) -> None:
        """Queue ``snapshot`` for the next flush (no-op without a store)."""
        if self._store is None:
            return
        with self._lock:
            self._buffer.append(snapshot)
            self._trim()

    def flush(self) -> int:
        """Write every buffered snapshot, in one batch when the store accepts it.

        When the store is unavailable the batch goes back into the buffer for the next
        flush. When it rejects the batch, the batch is split in halves (recursively) so the
        good snapshots are written and only the ones it keeps rejecting are dropped.

        Returns:
            How many snapshots were written (0 when the buffer was empty or the store failed).
        """
        store = self._store
        if store is None:
            return 0
        with self._flush_lock:
            with self._lock:
                batch = list(self._buffer)
                self._buffer.clear()
            if not batch:
                return 0
            return self._write(store, batch)

    def apply_retention(self) -> dict[str, int] | None:
        """Delete history past the store's retention; None without a store or on failure."""
        if self._store is None:
            return None
        try:
            deleted = self._store.apply_retention(self._clock())
        except StoreError as exc:
            logger.warning("could not apply retention to the store (%s); will try again", exc)
            return None
        logger.debug("retention deleted %s", deleted)
        return deleted

    # -- internals -----------------------------------------------------------------------------

    def _write(self, store: Store, batch: list[Snapshot]) -> int:
        """Write ``batch``, bisecting around rejected snapshots; returns how many were written."""
        written = 0
        rejected = 0
        chunks = [batch]  # a stack: the last chunk is written next, so order is kept
        while chunks:
            chunk = chunks.pop()
            try:
                store.write_snapshots(chunk)
            except StoreUnavailable as exc:
                # An outage, not a bad batch: keep everything not yet written for the retry.
                self._requeue([s for c in (chunk, *reversed(chunks)) for s in c])
                self._on_failure(exc)
                break
            except Exception as exc:
                if len(chunk) > 1:
                    middle = len(chunk) // 2
                    chunks.extend((chunk[middle:], chunk[:middle]))
                else:
                    self._reject(chunk[0], exc)
                    rejected += 1
                continue
            written += len(chunk)
        else:
            if written:
                self._on_success(written)
        if written and not rejected:
            with self._lock:
                self._rejection = None
        return written

    def _reject(self, snapshot: Snapshot, exc: Exception) -> None:
        """Drop ``snapshot``, which the store refuses however often it is offered."""
        reason = str(exc) or type(exc).__name__
        with self._lock:
            self._rejected += 1
            self._rejection = reason
        if isinstance(exc, StoreError):
            self._log_once.warning(
                f"rejected: {reason}",
                "the store rejected the sample of node %s at %.3f and it was dropped: %s. "
                "Other samples are still written; further samples rejected for this reason "
                "are dropped and counted without logging.",
                snapshot.node,
                snapshot.ts_s,
                reason,
            )
        else:
            # Not something the store explained but a bug: keep the traceback, once.
            self._log_once.error(
                f"unexpected error writing a sample of node {snapshot.node} to the store, "
                f"sample dropped: {exc!r}",
                exc,
            )
        logger.debug("rejected sample of %s at %s: %s", snapshot.node, snapshot.ts_s, reason)

    def _requeue(self, batch: list[Snapshot]) -> None:
        with self._lock:
            # Samples taken during the failed write come after the batch in time.
            self._buffer.extendleft(reversed(batch))
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest snapshots past ``max_buffer`` (caller holds the lock)."""
        excess = len(self._buffer) - self._max_buffer
        if excess <= 0:
            return
        for _ in range(excess):
            self._buffer.popleft()
        if self._dropped_this_outage == 0:
            logger.warning(
                "the store has not accepted writes for a while and %d samples are buffered; "
                "dropping the oldest from now on until writing works again",
                self._max_buffer,
            )
        self._dropped += excess
        self._dropped_this_outage += excess

    def _on_failure(self, exc: StoreUnavailable) -> None:
        reason = str(exc) or type(exc).__name__
        if self._store_error is None:
            logger.warning(
                "cannot write samples to the store: %s. Live data keeps updating; samples are "
                "kept in memory (at most %d) and writing is retried every %.0f s.",
                reason,
                self._max_buffer,
                self._retry_every_s,
            )
        else:
            logger.debug("store write failed again: %s", reason)
        self._store_error = reason

    def _on_success(self, written: int) -> None:
        self._last_flush_s = self._clock()
        if self._store_error is not None:
            with self._lock:
                dropped = self._dropped_this_outage
                self._dropped_this_outage = 0
            lost = f"; {dropped} samples were dropped while it failed" if dropped else ""
            logger.info(
                "writing to the store works again: wrote %d buffered samples%s", written, lost
            )
            self._store_error = None
