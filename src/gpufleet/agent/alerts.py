"""The alert engine: hold times, dedup, cooldown, persistence and notification around the rules.

Rules (:mod:`gpufleet.agent.alert_rules`) say which subjects are in trouble in one snapshot;
the engine turns that into alerts:

* a condition must last ``hold_s`` (per rule) before it fires, measured with snapshot
  timestamps so replayed or simulated history behaves like live sampling;
* there is at most one active alert per (rule, node, subject); it resolves when the
  condition clears, and the same alert cannot fire again until ``cooldown_s`` has passed;
* immediate rules (XID, ECC errors, a lost GPU) report events and failures: the cooldown
  does not apply to them, and a new event (``Condition.event``) fires a new alert even
  while the alert for the previous one is active (that one is resolved);
* fired, escalated and resolved alerts are handed to an
  :class:`~gpufleet.agent.alert_outbox.AlertOutbox`, which saves them through the store and
  passes them to ``notify`` from its own thread: evaluation never waits on the store, and
  a failing store or notifier is logged and never stops sampling;
* at start-up the alerts a previous run left active in the store are loaded, so they
  resolve normally once their condition is gone instead of staying "firing" for good.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable

from gpufleet.agent.alert_outbox import AlertOutbox, occurrence
from gpufleet.agent.alert_rules import (
    SEVERITY_RANK,
    AlertRule,
    Condition,
    build_rules,
)
from gpufleet.agent.logonce import LogOnce
from gpufleet.model import Alert, Snapshot
from gpufleet.settings import AlertSettings
from gpufleet.store.base import Store

logger = logging.getLogger(__name__)

_Key = tuple[str, str, str]
"""(rule, node, subject): the identity that dedup works on."""

# Timestamps come from a float clock; without slack a 60 s hold sampled every 2 s could wait
# one extra sample because 30 x 2.0 summed to 59.999999.
_EPSILON_S = 1e-6

_RESTORE_LIMIT = 100_000
"""Most active alerts read back from the store at start-up."""


class AlertEngine:
    """Evaluates every rule on each snapshot and keeps the set of active alerts.

    Thread-safe: the sampler thread calls :meth:`evaluate`, API handlers call :meth:`active`;
    neither does I/O. One engine can serve one node (the agent) or many (a hub): state is
    keyed by node, and a snapshot only resolves alerts of its own node.

    With a store, the constructor reads the alerts a previous run left active (filtered by
    ``cluster`` and ``node`` when given); each is taken over when the first snapshot of its
    node arrives and resolves like any other. Call :meth:`close` on shutdown, before the
    store is closed, so queued alerts are saved.

    Args:
        settings: thresholds, hold and cooldown times; ``enabled=False`` turns every rule off.
        idle_threshold_pct: utilization below which a GPU counts as idle (DESIGN.md).
        store: where fired and resolved alerts are saved; None keeps them in memory only.
        notify: called with every fired, escalated or resolved alert (e.g. a webhook), from
            the engine's background thread.
        cluster: cluster name stamped on alerts; the snapshot's cluster when empty.
        rules: names of the rules to run (see ``alert_rules.RULES``); all when None.
        node: the node this engine serves; empty for any (a hub). Only restored alerts of
            this node are loaded, and they show in :meth:`active` before the first snapshot.
        background: save and notify from a thread; False leaves it to
            :meth:`flush_pending` (tests).
        retry_every_s: seconds between attempts to save while the store is unavailable.

    Raises:
        ValueError: ``rules`` names an unknown rule.
    """

    def __init__(
        self,
        settings: AlertSettings,
        *,
        idle_threshold_pct: float = 5.0,
        store: Store | None = None,
        notify: Callable[[Alert], None] | None = None,
        cluster: str = "",
        rules: Iterable[str] | None = None,
        node: str = "",
        background: bool = True,
        retry_every_s: float = 10.0,
    ) -> None:
        self._settings = settings
        self._store = store
        self._cluster = cluster
        self._node = node
        self._rules: list[AlertRule] = build_rules(settings, idle_threshold_pct, rules)
        self._lock = threading.Lock()
        self._active: dict[_Key, Alert] = {}
        self._pending_since: dict[_Key, float] = {}
        self._resolved_at: dict[_Key, float] = {}
        self._restored: dict[str, list[Alert]] = {}
        self._log_once = LogOnce(logger)
        self._outbox = AlertOutbox(
            store,
            notify,
            on_saved=self._on_saved,
            background=background,
            retry_every_s=retry_every_s,
            log=logger,
        )
        if store is not None and settings.enabled:
            self._outbox.prepare(self._restore)

    @property
    def rules(self) -> list[str]:
        """Names of the rules this engine runs."""
        return [rule.name for rule in self._rules]

    @property
    def store_error(self) -> str | None:
        """Why the last alert could not be saved (or loaded), or None when saving works."""
        return self._outbox.store_error

    @property
    def pending_saves(self) -> int:
        """Alert changes not yet saved and notified (queued, or waiting for the store)."""
        return self._outbox.pending

    def active(self) -> list[Alert]:
        """Alerts currently firing, oldest first."""
        with self._lock:
            alerts = list(self._active.values())
            if self._node:
                names = set(self.rules)
                restored = self._restored.get(self._node, ())
                alerts.extend(a for a in restored if a.rule in names)
        return sorted(alerts, key=lambda a: (a.fired_s, a.rule, a.subject))

    def evaluate(self, snapshot: Snapshot) -> list[Alert]:
        """Run every rule on ``snapshot``; never waits on the store or the notifier.

        Returns:
            Alerts that fired, escalated or resolved in this evaluation (resolved ones have
            ``resolved_s`` set). They are queued for saving and notification; a newly fired
            alert has no ``id`` until the store saved it (see :meth:`flush_pending`).
        """
        if not self._settings.enabled:
            return []
        changes: list[Alert] = []
        with self._lock:
            restored = self._restored.pop(snapshot.node, None)
            if restored:
                changes.extend(self._adopt(restored, snapshot.ts_s))
            for rule in self._rules:
                evaluation = self._run_rule(rule, snapshot)
                if evaluation is None:
                    # The rule saw nothing to judge (no host reading): keep its state as is.
                    continue
                conditions, skipped = evaluation
                for condition in conditions.values():
                    changes.extend(self._on_condition(rule, snapshot, condition))
                changes.extend(self._clear(rule.name, snapshot, set(conditions) | skipped))
            self._forget_expired_cooldowns(snapshot.ts_s)
            # Queued under the lock so changes stay in evaluation order; put() does no I/O.
            self._outbox.put(changes)
        return changes

    def flush_pending(self, timeout: float | None = None) -> bool:
        """Save and notify every queued alert change now, in the calling thread.

        Alerts the store cannot take (it is unavailable) stay queued for a later retry.

        Returns:
            False when the background thread held the queue for longer than ``timeout``.
        """
        return self._outbox.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Give queued alerts one last chance to be saved and notified, then stop the thread.

        Call it on shutdown before closing the store; waits at most ``timeout`` seconds.
        """
        self._outbox.close(timeout)

    # -- internals -----------------------------------------------------------------------------

    def _run_rule(
        self, rule: AlertRule, snapshot: Snapshot
    ) -> tuple[dict[str, Condition], frozenset[str]] | None:
        try:
            evaluation = rule.check(snapshot)
        except Exception as exc:
            # A rule bug must not take the other rules (or the sampler) down with it.
            self._log_once.exception(f"alert rule {rule.name} failed: {exc!r}")
            return None
        if evaluation is None:
            return None
        return {c.subject: c for c in evaluation.conditions}, evaluation.skipped

    def _on_condition(self, rule: AlertRule, snapshot: Snapshot, cond: Condition) -> list[Alert]:
        now = snapshot.ts_s
        key = (rule.name, snapshot.node, cond.subject)
        changes: list[Alert] = []
        current = self._active.get(key)
        if current is not None and cond.event:
            # A new event while the previous one's alert is active: close that one, fire anew.
            changes.append(dataclasses.replace(self._active.pop(key), resolved_s=now))
        elif current is not None:
            if SEVERITY_RANK.get(cond.severity, 0) <= SEVERITY_RANK.get(current.severity, 0):
                return changes
            escalated = dataclasses.replace(
                current,
                severity=cond.severity,
                message=cond.message,
                value=cond.value,
                threshold=cond.threshold,
            )
            self._active[key] = escalated
            return [escalated]
        started = self._pending_since.setdefault(key, now)
        eventlike = rule.immediate or cond.event
        hold = 0.0 if eventlike else rule.hold_s
        if now - started < hold - _EPSILON_S:
            return changes
        resolved_at = self._resolved_at.get(key)
        if (
            not eventlike
            and resolved_at is not None
            and now - resolved_at < self._settings.cooldown_s - _EPSILON_S
        ):
            # Events and failures are never held back by the cooldown: only lasting states.
            return changes
        alert = Alert(
            rule=rule.name,
            severity=cond.severity,
            node=snapshot.node,
            subject=cond.subject,
            message=cond.message,
            value=cond.value,
            threshold=cond.threshold,
            started_s=started,
            fired_s=now,
            cluster=self._cluster or snapshot.cluster,
        )
        self._active[key] = alert
        del self._pending_since[key]
        changes.append(alert)
        return changes

    def _clear(self, rule: str, snapshot: Snapshot, keep: set[str]) -> list[Alert]:
        """Resolve active alerts and drop pending conditions of ``rule`` that no longer hold."""
        resolved: list[Alert] = []
        for key in [k for k in self._active if k[0] == rule and k[1] == snapshot.node]:
            if key[2] in keep:
                continue
            resolved.append(dataclasses.replace(self._active.pop(key), resolved_s=snapshot.ts_s))
            self._resolved_at[key] = snapshot.ts_s
        for key in [k for k in self._pending_since if k[0] == rule and k[1] == snapshot.node]:
            if key[2] not in keep:
                # Hold time means "continuously": one clear snapshot restarts the clock.
                del self._pending_since[key]
        return resolved

    def _forget_expired_cooldowns(self, now: float) -> None:
        cooldown = self._settings.cooldown_s
        for key in [k for k, t in self._resolved_at.items() if now - t >= cooldown]:
            del self._resolved_at[key]

    def _restore(self) -> None:
        """Load the alerts a previous run left active; they are adopted node by node.

        Raises:
            StoreError: the store cannot be read (the outbox retries before any save).
        """
        assert self._store is not None
        found: dict[str, list[Alert]] = {}
        for alert in self._store.alerts(active_only=True, limit=_RESTORE_LIMIT):
            if alert.resolved_s is not None:
                continue
            if self._cluster and alert.cluster != self._cluster:
                continue
            if self._node and alert.node != self._node:
                continue
            found.setdefault(alert.node, []).append(alert)
        with self._lock:
            for node, alerts in found.items():
                self._restored.setdefault(node, []).extend(alerts)
        count = sum(len(alerts) for alerts in found.values())
        if count:
            logger.info(
                "%d alerts were still active in the store; they resolve when their "
                "condition is gone",
                count,
            )

    def _adopt(self, restored: list[Alert], now: float) -> list[Alert]:
        """Make restored alerts active; resolve those no rule here can resolve (lock held).

        A restored alert is resolved at once when its rule no longer runs, or when an alert
        for the same subject is already active (a newer copy, or one fired before the load).
        """
        names = {rule.name for rule in self._rules}
        resolved: list[Alert] = []
        for alert in sorted(restored, key=lambda a: a.fired_s, reverse=True):
            key = (alert.rule, alert.node, alert.subject)
            current = self._active.get(key)
            if current is None and alert.rule in names:
                self._active[key] = alert
                self._pending_since.pop(key, None)
            elif current is None or current.id != alert.id:
                resolved.append(dataclasses.replace(alert, resolved_s=now))
        return resolved

    def _on_saved(self, saved: Alert) -> None:
        """Give the active alert the id the store assigned (called from the outbox)."""
        if saved.resolved_s is not None or saved.id is None:
            return
        key = (saved.rule, saved.node, saved.subject)
        with self._lock:
            current = self._active.get(key)
            if (
                current is not None
                and current.id is None
                and occurrence(current) == occurrence(saved)
            ):
                self._active[key] = dataclasses.replace(current, id=saved.id)
