"""Saving and notifying alerts off the sampling thread.

The alert engine decides in memory and puts every fired, escalated or resolved alert here; a
small background thread saves it through the store and passes it to ``notify``. Sampling
and readers of the active alerts therefore never wait on a busy SQLite file or a PostgreSQL
reconnect.

* Events are handled in order by one drainer at a time (the thread, or a caller of
  :meth:`AlertOutbox.flush`), so a resolution is saved after the alert it resolves and
  carries the id the store gave that alert.
* While the store is unavailable the newest version of each alert is kept (a resolution
  replaces the firing it resolves) and saving is retried every ``retry_every_s`` and
  whenever a new alert arrives. Notifications do not wait for the store.
* An alert the store rejects for another reason is dropped and logged once: retrying it
  would not help.
* Both queues are bounded; what falls off is counted in :attr:`AlertOutbox.dropped`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable

from gpufleet.agent.logonce import LogOnce
from gpufleet.model import Alert
from gpufleet.store.base import Store, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

Occurrence = tuple[str, str, str, float]
"""(rule, node, subject, fired_s): one alert from firing to resolution, across versions."""


def occurrence(alert: Alert) -> Occurrence:
    """The identity shared by every version (fired, escalated, resolved) of ``alert``."""
    return (alert.rule, alert.node, alert.subject, alert.fired_s)


class AlertOutbox:
    """A bounded queue of alert changes, saved and notified by a background thread.

    Args:
        store: where alerts are saved; None only notifies.
        notify: called with every change, after it was saved when the store works.
        on_saved: called with every alert version the store saved (with its id).
        background: drain in a thread started on demand; False leaves draining to
            :meth:`flush` (tests).
        retry_every_s: seconds between save attempts while the store is unavailable.
        max_events: changes waiting to be handled; past it the oldest lose their
            notification (their save is still kept for retry).
        max_unsaved: alerts kept for a retry; past it the oldest are dropped.
        log: where failures are logged.
    """

    def __init__(
        self,
        store: Store | None,
        notify: Callable[[Alert], None] | None,
        *,
        on_saved: Callable[[Alert], None] | None = None,
        background: bool = True,
        retry_every_s: float = 10.0,
        max_events: int = 1000,
        max_unsaved: int = 10_000,
        log: logging.Logger = logger,
    ) -> None:
        self._store = store
        self._notify = notify
        self._on_saved = on_saved
        self._background = background
        self._retry_every_s = retry_every_s
        self._max_events = max_events
        self._max_unsaved = max_unsaved
        self._logger = log
        self._log_once = LogOnce(log)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._drain_lock = threading.Lock()
        self._events: deque[Alert] = deque()
        self._unsaved: OrderedDict[Occurrence, Alert] = OrderedDict()
        self._ids: dict[Occurrence, int] = {}
        self._prepare: Callable[[], None] | None = None
        self._worker: threading.Thread | None = None
        self._closed = False
        self._dropped = 0
        self._store_error: str | None = None

    @property
    def store_error(self) -> str | None:
        """Why the last save failed, or None when saving works."""
        return self._store_error

    @property
    def pending(self) -> int:
        """Changes not yet handled plus alerts waiting for a retry of their save."""
        with self._lock:
            return len(self._events) + len(self._unsaved)

    @property
    def dropped(self) -> int:
        """Notifications or saves lost because a queue was full."""
        with self._lock:
            return self._dropped

    def prepare(self, action: Callable[[], None]) -> None:
        """Run ``action`` (a store read) now; while it fails, retry it before any save.

        Used to load the alerts a previous run left active: nothing is saved until that
        worked, so the load never sees this run's own alerts.
        """
        try:
            action()
        except StoreError as exc:
            self._on_store_failure(exc)
            with self._lock:
                self._prepare = action
                self._start_worker()
        except Exception as exc:
            self._log_once.error(f"could not load the active alerts: {exc!r}", exc)

    def put(self, alerts: list[Alert]) -> None:
        """Queue ``alerts`` for saving and notification; never blocks on the store."""
        if not alerts or (self._store is None and self._notify is None):
            return
        with self._lock:
            for alert in alerts:
                self._events.append(alert)
            while len(self._events) > self._max_events:
                oldest = self._events.popleft()
                self._dropped += 1
                if self._store is not None:
                    self._keep_unsaved(oldest)
                self._log_once.warning(
                    "events-full",
                    "more than %d alert changes are waiting to be saved and notified; the "
                    "oldest are not notified (they are still saved)",
                    self._max_events,
                )
            self._wake.notify()
            self._start_worker()

    def flush(self, timeout: float | None = None) -> bool:
        """Handle every queued change now, in the calling thread.

        Returns:
            False when another drain held the queue for longer than ``timeout``.
        """
        if not self._drain_lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            self._drain()
        finally:
            self._drain_lock.release()
        with self._lock:
            if self._unsaved or self._prepare is not None:
                self._start_worker()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread after one last attempt to handle what is queued.

        Waits at most ``timeout`` seconds; what is still unsaved then is logged.
        """
        with self._lock:
            self._closed = True
            self._wake.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout)
        else:
            self.flush(timeout)
        left = self.pending
        if left:
            self._logger.warning(
                "%d alert changes could not be saved or notified before exit (%s)",
                left,
                self._store_error or "still being handled",
            )

    # -- internals -----------------------------------------------------------------------------

    def _start_worker(self) -> None:
        """Start the draining thread if none runs (caller holds the lock)."""
        if not self._background or self._closed:
            return
        if self._worker is not None and self._worker.is_alive():
            return
        self._worker = threading.Thread(target=self._run, name="gpufleet-alerts", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while True:
            with self._drain_lock:
                try:
                    self._drain()
                except Exception as exc:
                    # Never let the thread die with alerts queued; the failing one is gone.
                    self._log_once.error(f"handling queued alerts failed: {exc!r}", exc)
            with self._lock:
                if self._closed or not (self._events or self._unsaved or self._prepare):
                    # Decided under the lock put() takes: a later put() starts a new thread.
                    self._worker = None
                    return
                if not self._events:
                    # Only retries are left: wait for the retry time or a new alert.
                    self._wake.wait(self._retry_every_s)

    def _drain(self) -> None:
        """Save (when the store works) and notify every queued change (drain lock held)."""
        store_down = not self._run_prepare()
        if not store_down:
            store_down = not self._retry_unsaved()
        while True:
            with self._lock:
                if not self._events:
                    return
                alert = self._events.popleft()
            if self._store is not None:
                alert, kept = self._save_or_keep(alert, store_down)
                store_down = store_down or kept
            self._send(alert)

    def _run_prepare(self) -> bool:
        """Run the pending ``prepare`` action; False while it fails."""
        action = self._prepare
        if action is None:
            return True
        try:
            action()
        except StoreError as exc:
            self._on_store_failure(exc)
            return False
        except Exception as exc:
            self._log_once.error(f"could not load the active alerts: {exc!r}", exc)
        self._prepare = None
        return True

    def _retry_unsaved(self) -> bool:
        """Save the alerts kept from an outage, oldest first; False when the store is still down."""
        while True:
            with self._lock:
                if not self._unsaved:
                    return True
                occ, alert = next(iter(self._unsaved.items()))
            saved = self._save(self._with_known_id(alert))
            with self._lock:
                if saved is None:
                    return False
                # Remove it unless a newer version replaced it while it was being saved.
                if self._unsaved.get(occ) is alert:
                    del self._unsaved[occ]

    def _save_or_keep(self, alert: Alert, store_down: bool) -> tuple[Alert, bool]:
        """Save ``alert`` or keep it for a retry; returns it (with its id) and whether kept."""
        alert = self._with_known_id(alert)
        occ = occurrence(alert)
        with self._lock:
            # A version waiting for a retry is superseded by this newer one.
            self._unsaved.pop(occ, None)
            if store_down:
                self._keep_unsaved(alert)
                return alert, True
        saved = self._save(alert)
        if saved is None:
            with self._lock:
                self._keep_unsaved(alert)
            return alert, True
        return saved, False

    def _keep_unsaved(self, alert: Alert) -> None:
        """Keep the newest version of ``alert`` for a retry (caller holds the lock)."""
        occ = occurrence(alert)
        self._unsaved[occ] = alert
        while len(self._unsaved) > self._max_unsaved:
            self._unsaved.popitem(last=False)
            self._dropped += 1
            self._log_once.warning(
                "unsaved-full",
                "more than %d alerts are waiting for the store; the oldest are dropped",
                self._max_unsaved,
            )

    def _with_known_id(self, alert: Alert) -> Alert:
        if alert.id is not None:
            return alert
        known = self._ids.get(occurrence(alert))
        return alert if known is None else dataclasses.replace(alert, id=known)

    def _save(self, alert: Alert) -> Alert | None:
        """Save ``alert``: the stored version, None on an outage (retry), ``alert`` if rejected."""
        assert self._store is not None
        try:
            saved = self._store.save_alert(alert)
        except StoreUnavailable as exc:
            self._on_store_failure(exc)
            return None
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, StoreError):
                self._log_once.warning(
                    f"rejected: {reason}",
                    "the store rejected alert %s on %s (%s) and it was not saved: %s",
                    alert.rule,
                    alert.node,
                    alert.subject,
                    reason,
                )
            else:
                self._log_once.error(f"unexpected error saving an alert: {exc!r}", exc)
            return alert
        occ = occurrence(saved)
        if saved.resolved_s is not None:
            self._ids.pop(occ, None)
        elif saved.id is not None:
            self._ids[occ] = saved.id
        if self._store_error is not None:
            self._logger.info("saving alerts to the store works again")
            self._store_error = None
        if self._on_saved is not None:
            self._on_saved(saved)
        return saved

    def _on_store_failure(self, exc: StoreError) -> None:
        if self._store_error is None:
            self._logger.warning(
                "cannot use the store for alerts (%s); alerts stay in memory and are still "
                "notified, saving is retried every %.0f s and with the next alert",
                exc,
                self._retry_every_s,
            )
        self._store_error = str(exc) or type(exc).__name__

    def _send(self, alert: Alert) -> None:
        if self._notify is None:
            return
        try:
            self._notify(alert)
        except Exception as exc:
            self._log_once.error(f"alert notifier failed: {exc!r}", exc)
