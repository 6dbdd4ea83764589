"""Pushing an agent's samples and heartbeats to a hub (``gpufleet agent --hub URL --token T``).

Every snapshot goes to the disk spool first (:class:`~gpufleet.agent.hub_spool.HubSpool`);
a pusher thread joins the hub, then sends the oldest batches and a heartbeat every few
seconds. A batch leaves the spool only when the hub has answered it: stored (2xx, also when
the hub recognizes it as already stored) or refused for good (a 4xx other than 401/403/404/
408/429, logged once with the hub's reason). While the hub is unreachable, answers 5xx, or
refuses the token, the agent keeps sampling into the spool and retries with a growing
pause (up to ``max_backoff_s``); when the hub is back the spool drains oldest first, so no
sample is lost within the spool's bound.

Batch ids are ``<agent id>:<first seq>-<last seq>`` (see the spool): unique per agent, so a
batch re-sent after a lost acknowledgement is stored once.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from gpufleet.agent.hub_spool import HubSpool
from gpufleet.agent.lease_ledger import LeaseLedger
from gpufleet.agent.logonce import LogOnce
from gpufleet.agent.task_runner import TaskRunner
from gpufleet.model import Snapshot

logger = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({401, 403, 404, 408, 429})
"""4xx answers that may change (a token fixed, a node re-joined, a hub busy): retried."""


@dataclass(slots=True)
class PushStats:
    """What the pusher has done, for the agent's health endpoint and tests."""

    joined: bool = False
    sent_batches: int = 0
    sent_snapshots: int = 0
    duplicate_batches: int = 0
    refused_snapshots: int = 0
    failures: int = 0
    last_error: str | None = None
    last_push_s: float | None = None
    last_round_trip_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class HubPusher:
    """Join, push and beat to one hub from a background thread.

    Args:
        hub_url: the hub's base URL (``http://hub:8100``).
        token: a token with the ``node-join`` scope.
        spool: the disk buffer the sampler appends to.
        identity: ``cluster``, ``node`` and optional ``url``, ``labels``, ``zone``, ``pool``.
        health: called for each heartbeat: counts of lost GPUs and errors, the health
            check (resource use, active allocations) and the node's ``inventory``.
        ledger: the leases this agent enforces (reported in heartbeats, updated from the
            answers); none kept without one.
        tasks: runs the task parts the hub places here (``--run-tasks``); None: the agent
            takes no tasks, and says so.
        batch_size: snapshots per ingest call.
        interval_s: seconds between pushes and heartbeats.
        client: an httpx client (tests pass one bound to an app); one is made otherwise.
    """

    def __init__(
        self,
        hub_url: str,
        token: str,
        spool: HubSpool,
        identity: Mapping[str, Any],
        *,
        health: Callable[[], Mapping[str, Any]] | None = None,
        batch_size: int = 500,
        interval_s: float = 2.0,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        client: httpx.Client | None = None,
        agent_id: str | None = None,
        ledger: LeaseLedger | None = None,
        tasks: TaskRunner | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.hub_url = hub_url.rstrip("/")
        self.spool = spool
        self.identity = dict(identity)
        self.agent_id = agent_id or secrets.token_hex(6)
        self._health = health
        self.ledger = ledger
        self.tasks = tasks
        self._batch = batch_size
        self._interval = interval_s
        self._max_backoff = max_backoff_s
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout_s)
        self._headers = {"Authorization": f"Bearer {token}"}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log_once = LogOnce(logger)
        self.stats = PushStats()

    # ---- the sampler's side ------------------------------------------------------------------

    def append(self, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` for the hub (called by the sampler for every snapshot)."""
        self.spool.append(snapshot)

    # ---- the thread --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the hub pusher is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpufleet-hub-push", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after one last push attempt (what is not sent stays spooled)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        if self.tasks is not None:
            self.tasks.stop_all()
            time.sleep(0.2)  # let the parts' threads queue their last reports
        self.push_once()
        if self._own_client:
            self._client.close()

    def _run(self) -> None:
        backoff = self._interval
        while not self._stop.is_set():
            ok = self.push_once()
            backoff = self._interval if ok else min(backoff * 2, self._max_backoff)
            self._stop.wait(backoff)

    # ---- one round ---------------------------------------------------------------------------

    def push_once(self) -> bool:
        """Join if needed, send a heartbeat and every spooled batch; True when the hub took
        all of it, False when it must be retried later."""
        try:
            if not self.stats.joined:
                self._post("/fleet/v1/join", self.identity)
                self.stats.joined = True
                logger.info("joined hub %s as %s/%s", self.hub_url, *self._who())
            self._heartbeat()
            self._send_reports()
            while True:
                batch = self.spool.oldest(self._batch)
                if batch is None:
                    break
                body = {
                    **self._ids(),
                    "batch_id": f"{self.agent_id}:{batch.first_seq}-{batch.last_seq}",
                    "snapshots": list(batch.snapshots),
                }
                try:
                    answer = self._post("/fleet/v1/ingest", body)
                except _RefusedError as exc:
                    # The hub will never take this batch: keep the rest flowing.
                    self.stats.refused_snapshots += len(batch.snapshots)
                    self._log_once.warning(
                        f"refused: {exc.detail}",
                        "the hub refused %d samples for good and they were dropped: %s",
                        len(batch.snapshots),
                        exc.detail,
                    )
                    self.spool.ack(batch)
                    continue
                self.spool.ack(batch)
                self.stats.sent_batches += 1
                self.stats.sent_snapshots += len(batch.snapshots)
                self.stats.duplicate_batches += int(bool(answer.get("duplicate")))
                if self._stop.is_set() and len(self.spool) == 0:
                    break
        except _RetryLaterError as exc:
            self._failed(exc.status, exc.detail)
            if exc.status == 404:
                self.stats.joined = False  # the hub forgot the node (a new database): join again
            return False
        if self.stats.last_error is not None:
            logger.info("hub %s reachable again; spool drained", self.hub_url)
        self.stats.last_error = None
        self.stats.last_push_s = time.time()
        return True

    def _heartbeat(self) -> None:
        report = dict(self._health()) if self._health is not None else {}
        check = dict(report.get("health_check") or {})
        if self.stats.last_round_trip_ms is not None:
            check["response_ms"] = round(self.stats.last_round_trip_ms, 2)
        check["spooled_samples"] = len(self.spool)
        check["dropped_samples"] = self.spool.dropped
        leases = [] if self.ledger is None else self.ledger.current()
        check["active_leases"] = len(leases)
        check["runs_tasks"] = self.tasks is not None
        running = [] if self.tasks is None else self.tasks.running()
        answer = self._post(
            "/fleet/v1/heartbeat",
            {
                **self._ids(),
                "gpus_lost": int(report.get("gpus_lost", 0)),
                "gpu_errors": int(report.get("gpu_errors", 0)),
                "health_check": check,
                "inventory": report.get("inventory") or {"gpus": []},
                "leases": leases,
                "running_tasks": running,
            },
        )
        if self.ledger is not None:
            active = answer.get("leases")
            ended = answer.get("ended_leases")
            self.ledger.update(
                [x for x in active if isinstance(x, dict)] if isinstance(active, list) else [],
                [str(x) for x in ended] if isinstance(ended, list) else [],
            )
        if self.tasks is not None:
            cancel = answer.get("cancel")
            self.tasks.cancel([str(x) for x in cancel] if isinstance(cancel, list) else [])
            start = answer.get("tasks")
            held = set() if self.ledger is None else {str(x["id"]) for x in self.ledger.current()}
            self.tasks.offer(
                [x for x in start if isinstance(x, dict)] if isinstance(start, list) else [], held
            )

    def _send_reports(self) -> None:
        """Send the task runner's reports, oldest first; those the hub refuses for good (a
        part cancelled meanwhile) are logged and dropped, the rest wait for the next round."""
        if self.tasks is None:
            return
        reports = self.tasks.take_reports()
        for i, r in enumerate(reports):
            path = f"/fleet/v1/tasks/{r['task_id']}/parts/{r['part']}/report"
            body = {**self._ids(), **{k: v for k, v in r.items() if k not in ("task_id", "part")}}
            try:
                self._post(path, body, refusable=True)
            except _RefusedError as exc:
                logger.info("the hub did not take the report on %s: %s", path, exc.detail)
            except _RetryLaterError:
                self.tasks.put_back(reports[i:])
                raise

    def _who(self) -> tuple[str, str]:
        return str(self.identity["cluster"]), str(self.identity["node"])

    def _ids(self) -> dict[str, str]:
        cluster, node = self._who()
        return {"cluster": cluster, "node": node}

    def _post(
        self, path: str, body: Mapping[str, Any], *, refusable: bool = False
    ) -> dict[str, Any]:
        started = time.monotonic()
        try:
            r = self._client.post(self.hub_url + path, json=body, headers=self._headers)
        except httpx.HTTPError as exc:
            raise _RetryLaterError(0, f"hub {self.hub_url} unreachable: {exc}") from None
        self.stats.last_round_trip_ms = 1000.0 * (time.monotonic() - started)
        if r.status_code < 300:
            answer = r.json()
            return answer if isinstance(answer, dict) else {}
        detail = _detail(r)
        if r.status_code >= 500 or r.status_code in _RETRY_STATUSES:
            raise _RetryLaterError(
                r.status_code, f"hub answered {r.status_code} to {path}: {detail}"
            )
        if path != "/fleet/v1/ingest" and not refusable:
            # A join or heartbeat the hub rejects (bad identity): nothing to drop, retry later.
            raise _RetryLaterError(
                r.status_code, f"hub answered {r.status_code} to {path}: {detail}"
            )
        raise _RefusedError(detail)

    def _failed(self, status: int, detail: str) -> None:
        self.stats.failures += 1
        if status in (401, 403):
            # Not an outage: nothing changes until someone fixes the token, so say how.
            if self.stats.last_error != detail:
                logger.error(
                    "%s; the hub refuses this agent's token: start the agent with a valid "
                    "node-join token (gpufleet hub token create --scope node-join). Samples are "
                    "kept on disk and retried meanwhile",
                    detail,
                )
        elif self.stats.last_error is None:
            logger.warning("%s; samples are kept on disk and sent when it answers", detail)
        self.stats.last_error = detail


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:200]
    return str(body.get("detail", body)) if isinstance(body, dict) else str(body)[:200]


class _RetryLaterError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class _RefusedError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
