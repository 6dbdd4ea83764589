"""A store that remembers what it read, for work that asks the same question several times.

A report runs utilization, waste, trends, drill-down and recommendations over one window;
each reads the window's usage rows and the inventory. :class:`MemoStore` wraps any
:class:`~gpufleet.store.base.Store` and answers a repeated ``inventory`` call, or a
usage read (``gpu_usage``, ``workload_usage`` and their ``_totals``) with the same arguments,
from memory, so the rows are read once. Rows are frozen dataclasses and every answer is a
fresh list, so callers cannot change what another caller gets. Writes go to the wrapped store
and forget everything remembered.

Meant to live as long as one piece of work (a report, a request), not as a cache of a live
store: it never notices rows written by others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Hashable, Sequence
from typing import Any, TypeVar

from gpufleet.model import Alert, ChatSession, ChatTurn, Execution, Snapshot
from gpufleet.store.base import (
    GpuInventory,
    GpuUsage,
    Resolution,
    Retention,
    Series,
    Store,
    StoreHealth,
    WorkloadUsage,
)

T = TypeVar("T")


class MemoStore:
    """``store`` with its usage and inventory reads remembered (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.inner = store
        self.backend: str = store.backend
        self.retention: Retention = store.retention
        self._memo: dict[Hashable, list[Any]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def idle_threshold_pct(self) -> object:
        """The wrapped store's rollup idle threshold (see ``scope.stored_idle_threshold``)."""
        return getattr(self.inner, "idle_threshold_pct", None)

    def _remembered(self, key: Hashable, read: Callable[[], list[T]]) -> list[T]:
        with self._lock:
            rows = self._memo.get(key)
            if rows is not None:
                self.hits += 1
                return list(rows)
        fresh = read()
        with self._lock:
            self.misses += 1
            self._memo[key] = list(fresh)
        return list(fresh)

    def forget(self) -> None:
        """Drop everything remembered."""
        with self._lock:
            self._memo.clear()

    # ---- reads that are remembered ------------------------------------------------------

    def inventory(self, cluster: str | None = None) -> list[GpuInventory]:
        """As :meth:`Store.inventory`, remembered per cluster."""
        return self._remembered(("inventory", cluster), lambda: self.inner.inventory(cluster))

    def gpu_usage(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution = Resolution.HOUR,
        cluster: str | None = None,
        node: str | None = None,
    ) -> list[GpuUsage]:
        """As :meth:`Store.gpu_usage`, remembered per argument set."""
        key = ("gpu_usage", start_s, end_s, resolution, cluster, node)
        return self._remembered(
            key,
            lambda: self.inner.gpu_usage(
                start_s=start_s, end_s=end_s, resolution=resolution, cluster=cluster, node=node
            ),
        )

    def gpu_usage_totals(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution = Resolution.HOUR,
        cluster: str | None = None,
        node: str | None = None,
        per_s: float | None = None,
        offset_s: float = 0.0,
        per_gpu: bool = True,
    ) -> list[GpuUsage]:
        """As :meth:`Store.gpu_usage_totals`, remembered per argument set."""
        key = (
            "gpu_usage_totals",
            start_s,
            end_s,
            resolution,
            cluster,
            node,
            per_s,
            offset_s,
            per_gpu,
        )
        return self._remembered(
            key,
            lambda: self.inner.gpu_usage_totals(
                start_s=start_s,
                end_s=end_s,
                resolution=resolution,
                cluster=cluster,
                node=node,
                per_s=per_s,
                offset_s=offset_s,
                per_gpu=per_gpu,
            ),
        )

    def workload_usage(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        namespace: str | None = None,
        user: str | None = None,
    ) -> list[WorkloadUsage]:
        """As :meth:`Store.workload_usage`, remembered per argument set."""
        key = ("workload_usage", start_s, end_s, cluster, namespace, user)
        return self._remembered(
            key,
            lambda: self.inner.workload_usage(
                start_s=start_s, end_s=end_s, cluster=cluster, namespace=namespace, user=user
            ),
        )

    def gpu_memory_use(
        self,
        *,
        start_s: float,
        end_s: float,
        resolution: Resolution,
        uuids: Collection[str],
    ) -> tuple[float | None, float | None]:
        """As :meth:`Store.gpu_memory_use` (not remembered: one small answer)."""
        return self.inner.gpu_memory_use(
            start_s=start_s, end_s=end_s, resolution=resolution, uuids=uuids
        )

    def workload_usage_totals(
        self,
        *,
        start_s: float,
        end_s: float,
        cluster: str | None = None,
        namespace: str | None = None,
        user: str | None = None,
    ) -> list[WorkloadUsage]:
        """As :meth:`Store.workload_usage_totals`, remembered per argument set."""
        key = ("workload_usage_totals", start_s, end_s, cluster, namespace, user)
        return self._remembered(
            key,
            lambda: self.inner.workload_usage_totals(
                start_s=start_s, end_s=end_s, cluster=cluster, namespace=namespace, user=user
            ),
        )

    # ---- everything else goes straight through --------------------------------------------

    def write_snapshots(self, snapshots: Sequence[Snapshot], *, keep_raw: bool = True) -> None:
        """Write through, then forget what was remembered."""
        try:
            self.inner.write_snapshots(snapshots, keep_raw=keep_raw)
        finally:
            self.forget()

    def gpu_series(
        self,
        *,
        metric: str,
        start_s: float,
        end_s: float,
        resolution: Resolution,
        cluster: str | None = None,
        node: str | None = None,
        uuid: str | None = None,
    ) -> list[Series]:
        """As :meth:`Store.gpu_series` (not remembered: series are read once)."""
        return self.inner.gpu_series(
            metric=metric,
            start_s=start_s,
            end_s=end_s,
            resolution=resolution,
            cluster=cluster,
            node=node,
            uuid=uuid,
        )

    def system_series(
        self,
        *,
        metric: str,
        start_s: float,
        end_s: float,
        resolution: Resolution,
        cluster: str | None = None,
        node: str | None = None,
    ) -> list[Series]:
        """As :meth:`Store.system_series`."""
        return self.inner.system_series(
            metric=metric,
            start_s=start_s,
            end_s=end_s,
            resolution=resolution,
            cluster=cluster,
            node=node,
        )

    def save_alert(self, alert: Alert) -> Alert:
        """As :meth:`Store.save_alert`."""
        return self.inner.save_alert(alert)

    def alerts(
        self,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        active_only: bool = False,
        limit: int = 500,
        node: str | None = None,
        cluster: str | None = None,
    ) -> list[Alert]:
        """As :meth:`Store.alerts`."""
        return self.inner.alerts(
            start_s=start_s,
            end_s=end_s,
            active_only=active_only,
            limit=limit,
            node=node,
            cluster=cluster,
        )

    def save_execution(self, execution: Execution) -> Execution:
        """As :meth:`Store.save_execution`."""
        return self.inner.save_execution(execution)

    def executions(
        self,
        *,
        limit: int = 100,
        recommendation_id: str | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> list[Execution]:
        """As :meth:`Store.executions` (not remembered: the log changes as actions run)."""
        return self.inner.executions(
            limit=limit, recommendation_id=recommendation_id, start_s=start_s, end_s=end_s
        )

    def save_chat_turn(self, turn: ChatTurn) -> ChatTurn:
        """As :meth:`Store.save_chat_turn`."""
        return self.inner.save_chat_turn(turn)

    def chat_turns(self, session_id: str) -> list[ChatTurn]:
        """As :meth:`Store.chat_turns`."""
        return self.inner.chat_turns(session_id)

    def chat_sessions(self, *, limit: int = 100) -> list[ChatSession]:
        """As :meth:`Store.chat_sessions`."""
        return self.inner.chat_sessions(limit=limit)

    def delete_chat_session(self, session_id: str) -> int:
        """As :meth:`Store.delete_chat_session`."""
        return self.inner.delete_chat_session(session_id)

    def apply_retention(self, now_s: float) -> dict[str, int]:
        """Apply retention on the wrapped store, then forget what was remembered."""
        try:
            return self.inner.apply_retention(now_s)
        finally:
            self.forget()

    def health(self) -> StoreHealth:
        """As :meth:`Store.health`."""
        return self.inner.health()

    def close(self) -> None:
        """Close the wrapped store."""
        self.forget()
        self.inner.close()
