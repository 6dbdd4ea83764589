"""Alert notifications as JSON POSTs to a webhook (Slack-style relays, Alertmanager bridges, ...).

The notifier is called from the alert engine on the sampling thread, so it only enqueues;
a background thread does the HTTP, retries with exponential backoff, and logs failures once
per failure streak. Nothing here ever raises into the sampler.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from datetime import UTC, datetime

import httpx

from gpufleet.model import Alert

logger = logging.getLogger(__name__)

# HTTP statuses worth retrying: the receiver is overloaded or momentarily away. Any other
# 4xx means the request itself is wrong and sending it again will not help.
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})


def iso_utc(ts_s: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with a ``Z`` suffix (None stays None)."""
    if ts_s is None:
        return None
    return datetime.fromtimestamp(ts_s, tz=UTC).isoformat().replace("+00:00", "Z")


def alert_payload(alert: Alert) -> dict[str, object]:
    """The JSON body posted for ``alert``.

    The alert's fields, with times as ISO 8601 UTC (``started_at``, ``fired_at``,
    ``resolved_at``) and ``status`` ``firing`` or ``resolved``.
    """
    return {
        "status": "resolved" if alert.resolved_s is not None else "firing",
        "id": alert.id,
        "rule": alert.rule,
        "severity": alert.severity,
        "cluster": alert.cluster,
        "node": alert.node,
        "subject": alert.subject,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "started_at": iso_utc(alert.started_s),
        "fired_at": iso_utc(alert.fired_s),
        "resolved_at": iso_utc(alert.resolved_s),
    }


class WebhookNotifier:
    """Posts every alert it is called with to ``url``, from a background thread.

    Args:
        url: the webhook endpoint.
        timeout_s: per-request timeout.
        transport: HTTP transport; tests pass ``httpx.MockTransport``.
        max_queue: alerts waiting for delivery; beyond it new alerts are dropped (counted).
        retries: extra attempts after a failed one.
        backoff_s: wait before the first retry; doubled for each further retry.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        max_queue: int = 1000,
        retries: int = 3,
        backoff_s: float = 1.0,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        self.url = url
        self._retries = retries
        self._backoff_s = backoff_s
        self._client = httpx.Client(
            transport=transport, timeout=timeout_s, headers={"User-Agent": "gpufleet"}
        )
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=max_queue)
        self._abort = threading.Event()
        self._closed = False
        self._failing = False
        self._dropping = False
        self._undelivered_in_streak = 0
        self.delivered = 0
        """Alerts the receiver accepted."""
        self.failed = 0
        """Alerts given up on after every retry."""
        self.dropped = 0
        """Alerts never sent: the queue was full or the notifier closed."""
        self._thread = threading.Thread(target=self._run, name="gpufleet-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery; never blocks and never raises."""
        if self._closed:
            self.dropped += 1
            return
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1
            if not self._dropping:
                logger.warning(
                    "webhook %s is not keeping up; its queue is full (%d alerts), dropping "
                    "new alerts until it drains",
                    self.url,
                    self._queue.maxsize,
                )
                self._dropping = True
            return
        self._dropping = False

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop.

        Alerts still queued after that are abandoned (and logged), so shutting down never
        hangs on an unreachable receiver.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._abort.set()
            # The worker may be waiting on an empty queue if the sentinel never fit.
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            self._thread.join(1.0)
            logger.warning(
                "webhook %s: gave up on about %d queued alerts at shutdown",
                self.url,
                self._queue.qsize(),
            )
        if not self._thread.is_alive():
            self._client.close()

    # -- worker --------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None or self._abort.is_set():
                return
            try:
                self._deliver(alert)
            except Exception:
                # A bug here must not kill the thread: every later alert would pile up unsent.
                logger.exception("webhook %s: unexpected error delivering an alert", self.url)

    def _deliver(self, alert: Alert) -> None:
        payload = alert_payload(alert)
        reason = "shutting down"
        attempts = 0
        for attempt in range(self._retries + 1):
            if attempt and self._abort.wait(self._backoff_s * 2 ** (attempt - 1)):
                break
            attempts += 1
            try:
                response = self._client.post(self.url, json=payload)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                self._on_success()
                return
            reason = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
            if response.status_code < 500 and response.status_code not in (
                _RETRYABLE_CLIENT_STATUSES
            ):
                break
        self._on_failure(alert, reason, attempts)

    def _on_success(self) -> None:
        self.delivered += 1
        if self._failing:
            logger.info(
                "webhook %s works again; %d alerts could not be delivered while it failed",
                self.url,
                self._undelivered_in_streak,
            )
            self._failing = False
            self._undelivered_in_streak = 0

    def _on_failure(self, alert: Alert, reason: str, attempts: int) -> None:
        self.failed += 1
        self._undelivered_in_streak += 1
        if self._failing:
            logger.debug("webhook %s failed again: %s", self.url, reason)
            return
        self._failing = True
        logger.warning(
            "could not deliver alert %s for %s on %s to webhook %s after %d attempts: %s; "
            "later alerts are still tried, and recovery is logged",
            alert.rule,
            alert.subject,
            alert.node,
            self.url,
            attempts,
            reason,
        )
