"""Alert wire schema, shared by ``GET /alerts`` and ``gpufleet alerts --json``."""

from __future__ import annotations

from pydantic import BaseModel

from gpufleet.model import Alert
from gpufleet.timeparse import iso


class AlertOut(BaseModel):
    """One alert; times are ISO 8601 UTC."""

    id: int | None
    rule: str
    severity: str
    state: str
    cluster: str
    node: str
    subject: str
    message: str
    value: float | None
    threshold: float | None
    started: str
    fired: str
    resolved: str | None

    @classmethod
    def from_alert(cls, a: Alert) -> AlertOut:
        """From the record kept by the alert engine and the store."""
        return cls(
            id=a.id,
            rule=a.rule,
            severity=a.severity,
            state="resolved" if a.resolved_s is not None else "firing",
            cluster=a.cluster,
            node=a.node,
            subject=a.subject,
            message=a.message,
            value=a.value,
            threshold=a.threshold,
            started=iso(a.started_s),
            fired=iso(a.fired_s),
            resolved=None if a.resolved_s is None else iso(a.resolved_s),
        )


class AlertList(BaseModel):
    """A page of alerts, newest first."""

    start: str
    end: str
    source: str
    active_count: int
    count: int
    alerts: list[AlertOut]
