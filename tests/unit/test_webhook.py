"""Webhook notifier: payload, delivery, retries and failures, over an injected MockTransport."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from gpufleet.agent.webhook import WebhookNotifier, alert_payload, iso_utc
from gpufleet.model import Alert

URL = "https://hooks.example.test/gpufleet"


def make_alert(resolved_s: float | None = None, subject: str = "GPU-ab12") -> Alert:
    return Alert(
        rule="gpu_temperature",
        severity="warning",
        node="node-1",
        subject=subject,
        message="GPU 3 (GPU-ab12) is at 84 °C, 3 °C below its slowdown temperature 87 °C",
        value=84.0,
        threshold=82.0,
        started_s=1_700_000_000.0,
        fired_s=1_700_000_060.5,
        resolved_s=resolved_s,
        id=7,
        cluster="lab",
    )


class Receiver:
    """Answers requests with scripted responses (or exceptions) and records what it got."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)

    @property
    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(r.content) for r in self.requests]


def notifier(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    retries: int = 3,
    backoff_s: float = 0.0,
    max_queue: int = 1000,
) -> WebhookNotifier:
    return WebhookNotifier(
        URL,
        transport=httpx.MockTransport(handler),
        retries=retries,
        backoff_s=backoff_s,
        max_queue=max_queue,
    )


def test_payload_has_iso_utc_times_and_status() -> None:
    firing = alert_payload(make_alert())
    assert firing["status"] == "firing"
    assert firing["started_at"] == "2023-11-14T22:13:20Z"
    assert firing["fired_at"] == "2023-11-14T22:14:20.500000Z"
    assert firing["resolved_at"] is None
    assert {k: firing[k] for k in ("rule", "severity", "node", "subject", "id", "cluster")} == {
        "rule": "gpu_temperature",
        "severity": "warning",
        "node": "node-1",
        "subject": "GPU-ab12",
        "id": 7,
        "cluster": "lab",
    }
    resolved = alert_payload(make_alert(resolved_s=1_700_000_120.0))
    assert (resolved["status"], resolved["resolved_at"]) == ("resolved", "2023-11-14T22:15:20Z")
    assert iso_utc(None) is None
    assert iso_utc(0.0) == "1970-01-01T00:00:00Z"


def test_delivers_firing_and_resolved_alerts_as_json_posts() -> None:
    receiver = Receiver(200)
    hook = notifier(receiver)
    hook(make_alert())
    hook(make_alert(resolved_s=1_700_000_120.0))
    hook.close()

    assert [(r.method, str(r.url)) for r in receiver.requests] == [("POST", URL)] * 2
    assert receiver.requests[0].headers["content-type"] == "application/json"
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    assert receiver.bodies[0]["message"] == make_alert().message
    assert (hook.delivered, hook.failed, hook.dropped) == (2, 0, 0)


def test_retries_server_errors_and_timeouts_then_delivers() -> None:
    receiver = Receiver(503, httpx.ReadTimeout("slow receiver"), 200)
    hook = notifier(receiver, retries=3)
    hook(make_alert())
    hook.close()
    assert len(receiver.requests) == 3
    assert (hook.delivered, hook.failed) == (1, 0)


def test_client_errors_are_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver(400)
    hook = notifier(receiver, retries=3)
    with caplog.at_level(logging.WARNING, logger="gpufleet.agent.webhook"):
        hook(make_alert())
        hook.close()
    assert len(receiver.requests) == 1
    assert hook.failed == 1
    assert "after 1 attempts: HTTP 400 Bad Request" in caplog.records[0].getMessage()


def test_failures_are_logged_once_per_streak_and_never_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = httpx.ConnectError("connection refused")
    # Three alerts fail (three attempts each), the fourth gets through.
    receiver = Receiver(*([down] * 9), 200)
    hook = notifier(receiver, retries=2)
    caplog.set_level(logging.INFO, logger="gpufleet.agent.webhook")
    for i in range(4):
        hook(make_alert(subject=f"GPU-{i}"))
    hook.close()

    assert len(receiver.requests) == 10
    assert (hook.delivered, hook.failed) == (1, 3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "connection refused" in warnings[0]
    assert URL in warnings[0]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == [f"webhook {URL} works again; 3 alerts could not be delivered while it failed"]


def test_full_queue_drops_new_alerts_without_blocking() -> None:
    entered = threading.Event()
    release = threading.Event()
    seen: list[httpx.Request] = []

    def slow(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        entered.set()
        release.wait(5.0)
        return httpx.Response(204)

    hook = notifier(slow, max_queue=1)
    hook(make_alert(subject="GPU-0"))
    assert entered.wait(5.0)  # the worker holds the first alert, the queue is empty
    hook(make_alert(subject="GPU-1"))
    hook(make_alert(subject="GPU-2"))
    assert hook.dropped == 1
    release.set()
    hook.close()
    assert [json.loads(r.content)["subject"] for r in seen] == ["GPU-0", "GPU-1"]
    assert hook.delivered == 2


def test_close_gives_up_quickly_on_an_unreachable_receiver() -> None:
    receiver = Receiver(503)
    hook = notifier(receiver, retries=5, backoff_s=30.0)
    hook(make_alert())
    began = time.monotonic()
    hook.close(timeout=0.2)
    assert time.monotonic() - began < 3.0
    assert hook.delivered == 0
    hook(make_alert())  # after close: counted as dropped, not raised
    assert hook.dropped == 1


def test_rejects_negative_retries() -> None:
    with pytest.raises(ValueError, match="retries"):
        WebhookNotifier(URL, retries=-1)
