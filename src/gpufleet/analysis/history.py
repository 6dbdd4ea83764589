"""History queries shared by the API and the CLI: validate a request, then read the store.

Every check a user's input can fail raises a :class:`HistoryQueryError` whose message says
what to fix; callers turn it into HTTP 404/422 or a one-line CLI error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from gpufleet.store.base import (
    GPU_METRICS,
    SYSTEM_METRICS,
    GpuInventory,
    Resolution,
    Series,
    Store,
    pick_resolution,
)
from gpufleet.timeparse import parse_window

DEFAULT_SPAN_S = 3600.0


class HistoryQueryError(ValueError):
    """The request cannot be answered as asked (HTTP 422)."""


class UnknownSubjectError(HistoryQueryError):
    """A GPU, node or cluster the store has never seen (HTTP 404)."""


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """Series for one metric over a window, with each GPU's index for display."""

    metric: str
    resolution: Resolution
    start_s: float
    end_s: float
    series: list[Series]
    gpu_index: dict[str, int] = field(default_factory=dict)


def parse_resolution(text: str) -> Resolution:
    """``raw``, ``1m``, ``1h`` or ``auto``."""
    try:
        return Resolution(text)
    except ValueError:
        accepted = ", ".join(r.value for r in Resolution)
        raise HistoryQueryError(f"unknown resolution {text!r}; use one of: {accepted}") from None


def _check_scope(inventory: list[GpuInventory], cluster: str | None, node: str | None) -> None:
    if cluster is not None and all(i.cluster != cluster for i in inventory):
        known = sorted({i.cluster for i in inventory}) or ["none yet"]
        raise UnknownSubjectError(
            f"no cluster {cluster!r} in history; clusters: {', '.join(known)}"
        )
    if node is not None and all(i.node != node for i in inventory):
        known = sorted({i.node for i in inventory})
        shown = ", ".join(known[:20]) or "none yet"
        raise UnknownSubjectError(f"no node {node!r} in history; nodes: {shown}")


def resolve_gpu(
    inventory: list[GpuInventory],
    gpu: str,
    *,
    cluster: str | None = None,
    node: str | None = None,
    default_node: str | None = None,
) -> str:
    """The UUID meant by ``gpu`` (a UUID, or an index on ``node``).

    An index that exists on several nodes needs ``node``; ``default_node`` (the agent's own)
    breaks the tie when given.
    """
    scoped = [
        i
        for i in inventory
        if (cluster is None or i.cluster == cluster) and (node is None or i.node == node)
    ]
    if any(i.uuid == gpu for i in scoped):
        return gpu
    if gpu.isdigit():
        hits = [i for i in scoped if i.index == int(gpu)]
        if len(hits) > 1 and default_node is not None:
            hits = [i for i in hits if i.node == default_node] or hits
        if len(hits) == 1:
            return hits[0].uuid
        if len(hits) > 1:
            nodes = ", ".join(sorted({i.node for i in hits})[:10])
            raise HistoryQueryError(
                f"GPU index {gpu} exists on several nodes ({nodes}); name one with node"
            )
    known = ", ".join(f"{i.node}:{i.index}" for i in scoped[:20]) or "none recorded yet"
    raise UnknownSubjectError(f"GPU {gpu!r} has no history; known GPUs: {known}")


def query_history(
    store: Store,
    *,
    metric: str,
    host: bool,
    start: str | None = None,
    end: str | None = None,
    resolution: str = "auto",
    gpu: str | None = None,
    cluster: str | None = None,
    node: str | None = None,
    default_node: str | None = None,
    now_s: float | None = None,
    raw_interval_s: float | None = None,
) -> HistoryResult:
    """One metric over a window: GPU series (``host=False``) or host series.

    Raises:
        HistoryQueryError: bad metric, time, resolution or an ambiguous GPU index.
        UnknownSubjectError: GPU, node or cluster never seen.
        TimeParseError: unreadable ``start``/``end``.
        QueryTooLargeError: raw resolution over a window too long for it.
        StoreError: the store cannot answer.
    """
    known = SYSTEM_METRICS if host else GPU_METRICS
    if metric not in known:
        kind = "host" if host else "GPU"
        raise HistoryQueryError(f"unknown {kind} metric {metric!r}; use one of: {', '.join(known)}")
    if host and gpu is not None:
        raise HistoryQueryError(f"gpu does not apply to the host metric {metric!r}")
    res = parse_resolution(resolution)
    now = time.time() if now_s is None else now_s
    start_s, end_s = parse_window(start, end, now_s=now, default_span_s=DEFAULT_SPAN_S)
    if res is Resolution.AUTO:
        if raw_interval_s is None:
            res = pick_resolution(start_s, end_s, now, store.retention)
        else:
            res = pick_resolution(start_s, end_s, now, store.retention, raw_interval_s)
    inventory = store.inventory()
    _check_scope(inventory, cluster, node)
    index = {i.uuid: i.index for i in inventory}
    if host:
        series = store.system_series(
            metric=metric, start_s=start_s, end_s=end_s, resolution=res, cluster=cluster, node=node
        )
    else:
        uuid = None
        if gpu is not None:
            uuid = resolve_gpu(
                inventory, gpu, cluster=cluster, node=node, default_node=default_node
            )
        series = store.gpu_series(
            metric=metric,
            start_s=start_s,
            end_s=end_s,
            resolution=res,
            cluster=cluster,
            node=node,
            uuid=uuid,
        )
    return HistoryResult(
        metric=metric, resolution=res, start_s=start_s, end_s=end_s, series=series, gpu_index=index
    )
