"""The alert engine: hold times, dedup, cooldown, persistence and notification around the rules.

Rules (:mod:`gpufleet.agent.alert_rules`) say which subjects are in trouble in one snapshot;
the engine turns that into alerts:

* a condition must last ``hold_s`` (per rule) before it fires, measured with snapshot
  timestamps so replayed or simulated history behaves like live sampling;
* there is at most one active alert per (rule, node, subject); it resolves when the
  condition clears, and the same alert cannot fire again until ``cooldown_s`` has passed;
* fired and resolved alerts are saved through the store and passed to ``notify``. A failing
  store or notifier is logged and never stops sampling.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable

from gpufleet.agent.alert_rules import (
    SEVERITY_RANK,
    AlertRule,
    Condition,
    build_rules,
)
from gpufleet.model import Alert, Snapshot
from gpufleet.settings import AlertSettings
from gpufleet.store.base import Store, StoreError

logger = logging.getLogger(__name__)

_Key = tuple[str, str, str]
"""(rule, node, subject): the identity that dedup works on."""

# Timestamps come from a float clock; without slack a 60 s hold sampled every 2 s could wait
# one extra sample because 30 x 2.0 summed to 59.999999.
_EPSILON_S = 1e-6

_MAX_LOGGED_MESSAGES = 100


class AlertEngine:
    """Evaluates every rule on each snapshot and keeps the set of active alerts.

    Thread-safe: the sampler thread calls :meth:`evaluate`, API handlers call :meth:`active`.
    One engine can serve one node (the agent) or many (a hub): state is keyed by node, and a
    snapshot only resolves alerts of its own node.

    Args:
        settings: thresholds, hold and cooldown times; ``enabled=False`` turns every rule off.
        idle_threshold_pct: utilization below which a GPU counts as idle (DESIGN.md).
        store: where fired and resolved alerts are saved; None keeps them in memory only.
        notify: called with every fired, escalated or resolved alert (e.g. a webhook).
        cluster: cluster name stamped on alerts; the snapshot's cluster when empty.
        rules: names of the rules to run (see ``alert_rules.RULES``); all when None.

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
    ) -> None:
        self._settings = settings
        self._store = store
        self._notify = notify
        self._cluster = cluster
        self._rules: list[AlertRule] = build_rules(settings, idle_threshold_pct, rules)
        self._lock = threading.Lock()
        self._active: dict[_Key, Alert] = {}
        self._pending_since: dict[_Key, float] = {}
        self._resolved_at: dict[_Key, float] = {}
        self._store_error: str | None = None
        self._logged: set[str] = set()

    @property
    def rules(self) -> list[str]:
        """Names of the rules this engine runs."""
        return [rule.name for rule in self._rules]

    @property
    def store_error(self) -> str | None:
        """Why the last alert could not be saved, or None when saving works."""
        return self._store_error

    def active(self) -> list[Alert]:
        """Alerts currently firing, oldest first."""
        with self._lock:
            return sorted(self._active.values(), key=lambda a: (a.fired_s, a.rule, a.subject))

    def evaluate(self, snapshot: Snapshot) -> list[Alert]:
        """Run every rule on ``snapshot``.

        Returns:
            Alerts that fired, escalated or resolved in this evaluation (resolved ones have
            ``resolved_s`` set), after they were saved.
        """
        if not self._settings.enabled:
            return []
        changes: list[Alert] = []
        with self._lock:
            for rule in self._rules:
                evaluation = self._run_rule(rule, snapshot)
                if evaluation is None:
                    # The rule saw nothing to judge (no host reading): keep its state as is.
                    continue
                conditions, skipped = evaluation
                for condition in conditions.values():
                    alert = self._on_condition(rule, snapshot, condition)
                    if alert is not None:
                        changes.append(alert)
                changes.extend(self._clear(rule.name, snapshot, set(conditions) | skipped))
            self._forget_expired_cooldowns(snapshot.ts_s)
        # Notify outside the lock: a slow notifier must not block readers of active().
        for alert in changes:
            self._send(alert)
        return changes

    # -- internals -----------------------------------------------------------------------------

    def _run_rule(
        self, rule: AlertRule, snapshot: Snapshot
    ) -> tuple[dict[str, Condition], frozenset[str]] | None:
        try:
            evaluation = rule.check(snapshot)
        except Exception as exc:
            # A rule bug must not take the other rules (or the sampler) down with it.
            self._log_once_exc(f"alert rule {rule.name} failed: {exc!r}")
            return None
        if evaluation is None:
            return None
        return {c.subject: c for c in evaluation.conditions}, evaluation.skipped

    def _on_condition(self, rule: AlertRule, snapshot: Snapshot, cond: Condition) -> Alert | None:
        now = snapshot.ts_s
        key = (rule.name, snapshot.node, cond.subject)
        current = self._active.get(key)
        if current is not None:
            if SEVERITY_RANK.get(cond.severity, 0) <= SEVERITY_RANK.get(current.severity, 0):
                return None
            escalated = dataclasses.replace(
                current,
                severity=cond.severity,
                message=cond.message,
                value=cond.value,
                threshold=cond.threshold,
            )
            escalated = self._save(escalated)
            self._active[key] = escalated
            return escalated
        started = self._pending_since.setdefault(key, now)
        hold = 0.0 if rule.immediate else rule.hold_s
        if now - started < hold - _EPSILON_S:
            return None
        resolved_at = self._resolved_at.get(key)
        if resolved_at is not None and now - resolved_at < self._settings.cooldown_s - _EPSILON_S:
            return None
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
        alert = self._save(alert)
        self._active[key] = alert
        del self._pending_since[key]
        return alert

    def _clear(self, rule: str, snapshot: Snapshot, keep: set[str]) -> list[Alert]:
        """Resolve active alerts and drop pending conditions of ``rule`` that no longer hold."""
        resolved: list[Alert] = []
        for key in [k for k in self._active if k[0] == rule and k[1] == snapshot.node]:
            if key[2] in keep:
                continue
            alert = dataclasses.replace(self._active.pop(key), resolved_s=snapshot.ts_s)
            resolved.append(self._save(alert))
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

    def _save(self, alert: Alert) -> Alert:
        if self._store is None:
            return alert
        try:
            saved = self._store.save_alert(alert)
        except StoreError as exc:
            if self._store_error is None:
                logger.warning(
                    "cannot save alerts to the store (%s); alerts stay in memory and are "
                    "still notified, saving is retried with the next alert",
                    exc,
                )
            self._store_error = str(exc) or type(exc).__name__
            return alert
        if self._store_error is not None:
            logger.info("saving alerts to the store works again")
            self._store_error = None
        return saved

    def _send(self, alert: Alert) -> None:
        if self._notify is None:
            return
        try:
            self._notify(alert)
        except Exception as exc:
            self._log_once_exc(f"alert notifier failed: {exc!r}")

    def _log_once_exc(self, message: str) -> None:
        """Log with traceback the first time ``message`` is seen, so a recurring fault logs once."""
        if message in self._logged:
            return
        if len(self._logged) < _MAX_LOGGED_MESSAGES:
            self._logged.add(message)
        logger.exception(message)
