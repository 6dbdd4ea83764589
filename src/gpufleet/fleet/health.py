"""A node's health from what the hub last heard of it (issue 5, seed 003's HealthCheck).

* ``drained`` — an operator or a recommendation took it out of allocation; it stays drained
  until undrained, whatever its heartbeats say.
* ``unreachable`` — no heartbeat for ``unreachable_after_s`` (default 30 s): its leases are
  reclaimed and nothing new is placed on it.
* ``degraded`` — heartbeats arrive but something is wrong: a GPU lost (fell off the bus), GPU
  errors reported (XID, uncorrected ECC), or samples stale (none for ``stale_after_s``
  while heartbeats continue: the sampler is stuck).
* ``healthy`` — none of those.

Pure: the hub passes the clock in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

NodeStatus = Literal["healthy", "degraded", "unreachable", "drained"]
STATUSES: tuple[NodeStatus, ...] = ("healthy", "degraded", "unreachable", "drained")

UNREACHABLE_AFTER_S = 30.0
"""Default: a node not heard from for this long is unreachable (issue 5)."""


@dataclass(frozen=True, slots=True)
class Heard:
    """What the hub knows of a node's last signs of life."""

    last_heartbeat_s: float | None
    last_sample_s: float | None
    gpus_lost: int = 0
    gpu_errors: int = 0
    """XID or uncorrected-ECC errors in the node's last report."""
    drained: bool = False
    drain_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Health:
    status: NodeStatus
    reasons: tuple[str, ...]
    """Why it is not healthy, in words an operator acts on (empty when healthy)."""


def node_health(
    heard: Heard,
    now_s: float,
    *,
    unreachable_after_s: float = UNREACHABLE_AFTER_S,
    stale_after_s: float = 120.0,
) -> Health:
    """The node's status now (see the module docstring)."""
    if heard.drained:
        return Health("drained", (f"drained: {heard.drain_reason or 'by an operator'}",))
    if heard.last_heartbeat_s is None:
        return Health("unreachable", ("never sent a heartbeat",))
    silent = now_s - heard.last_heartbeat_s
    if silent > unreachable_after_s:
        return Health(
            "unreachable",
            (f"no heartbeat for {silent:.0f} s (timeout {unreachable_after_s:g} s)",),
        )
    reasons = []
    if heard.gpus_lost:
        reasons.append(f"{heard.gpus_lost} GPU{'s' if heard.gpus_lost != 1 else ''} lost")
    if heard.gpu_errors:
        reasons.append(f"{heard.gpu_errors} GPU error{'s' if heard.gpu_errors != 1 else ''}")
    if heard.last_sample_s is None:
        reasons.append("no samples received yet")
    elif now_s - heard.last_sample_s > stale_after_s:
        reasons.append(f"no samples for {now_s - heard.last_sample_s:.0f} s")
    return Health("degraded", tuple(reasons)) if reasons else Health("healthy", ())
