"""The analyst's tools: seed 001's names and parameters, each one call into
:mod:`gpufleet.analysis` (or the store's metadata) returning JSON-ready data.

Every result carries ``api``: the REST call (method, path, query or body) that returns the
same ``result`` from a running agent or hub, so an answer can be checked against the API
and a client can ask the API for more detail. Windows are passed to the API as explicit ISO
times, whole seconds, so both sides see the same window.

The tools never phrase anything; :mod:`gpufleet.analyst.answer` does, from these results
only. The same tools are served over MCP by :mod:`gpufleet.analyst.mcp_server`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpufleet.analysis.drilldown import drill_down
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.recommend import recommend
from gpufleet.analysis.scope import WORKLOAD_FILTER_KEYS, WORKLOAD_KEYS, Scope, Window
from gpufleet.analysis.trends import analyze_trends, compare_entities, compare_windows
from gpufleet.analysis.utilization import analyze_utilization
from gpufleet.analysis.waste import compute_waste
from gpufleet.analysis.wire import iso as wire_iso
from gpufleet.analysis.wire import to_wire, utilization_wire
from gpufleet.analyst.catalog import DIMENSION_KEYS, Catalog, read_catalog
from gpufleet.store.base import Store

DAY_S = 86_400.0
REALTIME_WINDOW_S = 120.0
""""Now" is the last two minutes of samples (one-minute rollups, so the last whole minute
and the one being written)."""


class ToolError(ValueError):
    """A tool was called with arguments it cannot use; the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class ApiCall:
    """The REST call that returns the same result."""

    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    """Query parameters (GET) or the JSON body (POST)."""

    def wire(self) -> dict[str, Any]:
        key = "body" if self.method == "POST" else "params"
        return {"method": self.method, "path": self.path, key: dict(self.params)}


@dataclass(frozen=True, slots=True)
class ToolResult:
    """One tool call: its name, arguments, the equivalent API call and what it returned."""

    tool: str
    args: Mapping[str, Any]
    api: ApiCall | None
    result: Any

    def wire(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "args": dict(self.args),
            "api": None if self.api is None else self.api.wire(),
            "result": self.result,
        }


def iso(ts_s: float) -> str:
    """``analysis.wire.iso`` of the whole second (what the API reads back as the same second)."""
    return wire_iso(math.floor(ts_s)) or ""


def _window_params(w: Window) -> dict[str, str]:
    return {"from": iso(w.start_s), "to": iso(w.end_s)}


def _scope_params(scope: Scope) -> dict[str, str]:
    return {k: v for k, v in to_wire(scope).items() if v is not None}


class Toolbox:
    """The tools over one store, at one "now" (see :func:`data_now`)."""

    def __init__(
        self,
        store: Store,
        *,
        now_s: float,
        idle_threshold_pct: float = 5.0,
        prices: PriceTable | None = None,
    ) -> None:
        self.store = store
        self.now_s = math.floor(now_s)
        self.idle_threshold_pct = idle_threshold_pct
        self.prices = prices
        self._catalogs: dict[tuple[float, float, str | None], Catalog] = {}

    # ---- helpers ---------------------------------------------------------------------------

    def window(
        self, days: float | None = None, start_s: float | None = None, end_s: float | None = None
    ) -> Window:
        """``[start_s, end_s)``, or the last ``days`` days before now (default 7)."""
        if start_s is not None and end_s is not None:
            if end_s <= start_s:
                raise ToolError("the time range must end after it starts")
            return Window(math.floor(start_s), math.floor(end_s))
        span = 7.0 if days is None else float(days)
        if not 0 < span <= 3650:
            raise ToolError(f"time_range_days must be between 0 and 3650; got {days}")
        return Window(self.now_s - span * DAY_S, self.now_s)

    def catalog(self, window: Window, cluster: str | None = None) -> Catalog:
        key = (window.start_s, window.end_s, cluster)
        found = self._catalogs.get(key)
        if found is None:
            found = self._catalogs[key] = read_catalog(
                self.store, window.start_s, window.end_s, cluster
            )
        return found

    # ---- seed 001's tools --------------------------------------------------------------------

    def query_gpu_usage_trend(
        self,
        *,
        dimension: str = "cluster",
        granularity: str = "day",
        time_range_days: float | None = None,
        dimension_value: str | None = None,
        metric_type: str = "utilization",
        cluster: str | None = None,
        scope: Scope | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> ToolResult:
        """Utilization or allocation-rate trend of a cluster, namespace or label value."""
        window = self.window(time_range_days, start_s, end_s)
        scope = scope or self._dimension_scope(dimension, dimension_value, cluster)
        result = analyze_trends(
            self.store,
            window,
            scope=scope,
            granularity=_granularity(granularity),  # type: ignore[arg-type]
            metric=_metric(metric_type),  # type: ignore[arg-type]
            idle_threshold_pct=self.idle_threshold_pct,
        )
        params = {
            **_window_params(window),
            **_scope_params(scope),
            "granularity": granularity,
            "metric": _metric(metric_type),
            "idle_threshold_pct": self.idle_threshold_pct,
        }
        args = {
            "dimension": dimension,
            "granularity": granularity,
            "time_range_days": time_range_days,
            "dimension_value": dimension_value,
            "metric_type": metric_type,
            "cluster": cluster,
        }
        return ToolResult(
            "query_gpu_usage_trend",
            args,
            ApiCall("GET", "/analysis/trends", params),
            to_wire(result),
        )

    def compare_periods(
        self, *, scope: Scope, first: Window, second: Window, metric_type: str = "utilization"
    ) -> ToolResult:
        """``metric`` of ``scope`` in ``first`` (the one asked about) against ``second``."""
        result = compare_windows(
            self.store,
            second,
            first,
            scope=scope,
            metric=_metric(metric_type),  # type: ignore[arg-type]
            idle_threshold_pct=self.idle_threshold_pct,
        )
        params = {
            **_window_params(first),
            **_scope_params(scope),
            "compare_from": iso(second.start_s),
            "compare_to": iso(second.end_s),
            "metric": _metric(metric_type),
            "idle_threshold_pct": self.idle_threshold_pct,
        }
        return ToolResult(
            "compare_periods",
            {"first": to_wire(first), "second": to_wire(second), "metric_type": metric_type},
            ApiCall("GET", "/analysis/trends", params),
            {"window_comparison": to_wire(result)},
        )

    def compare_entities(
        self,
        *,
        level: str,
        a: str,
        b: str,
        window: Window,
        scope: Scope,
        metric_type: str = "utilization",
    ) -> ToolResult:
        """``metric`` of two entities of one level over one window."""
        result = compare_entities(
            self.store,
            window,
            level,
            a,
            b,
            scope=scope,
            metric=_metric(metric_type),  # type: ignore[arg-type]
            idle_threshold_pct=self.idle_threshold_pct,
        )
        params = {
            **_window_params(window),
            **_scope_params(scope),
            "compare_key": level,
            "a": a,
            "b": b,
            "metric": _metric(metric_type),
            "idle_threshold_pct": self.idle_threshold_pct,
        }
        return ToolResult(
            "compare_entities",
            {"level": level, "a": a, "b": b, "metric_type": metric_type},
            ApiCall("GET", "/analysis/trends", params),
            {"entity_comparison": to_wire(result)},
        )

    def drill_down(
        self,
        *,
        scope: Scope,
        after: Window,
        before: Window,
        metric: str = "utilization",
        levels: tuple[str, ...] = WORKLOAD_KEYS,
    ) -> ToolResult:
        """Attribute a change between two windows down namespace -> user -> workload (or
        straight to the ``levels`` given: ``("workload",)`` for "which workloads?")."""
        result = drill_down(
            self.store,
            before,
            after,
            scope=scope,
            metric=metric,  # type: ignore[arg-type]
            levels=levels,
        )
        params = {
            **_window_params(after),
            **_scope_params(scope),
            "before_from": iso(before.start_s),
            "before_to": iso(before.end_s),
            "metric": metric,
            "levels": ",".join(levels),
        }
        return ToolResult(
            "drill_down",
            {
                "after": to_wire(after),
                "before": to_wire(before),
                "metric": metric,
                "levels": list(levels),
            },
            ApiCall("GET", "/analysis/drilldown", params),
            to_wire(result),
        )

    def analyze_workload_history(
        self,
        *,
        time_range_days: float | None = None,
        namespace: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        sort_by: str = "gpu_hours",
        limit: int = 10,
        cluster: str | None = None,
        user: str | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> ToolResult:
        """Workloads of a window with their GPU-hours, utilization and idle share.

        ``kind`` keeps one workload kind (training, inference, notebook, batch); ``status``
        ``running`` keeps workloads holding GPUs in the window's last hour, ``finished`` the
        others; ``sort_by`` is ``gpu_hours``, ``mean_gpu_util_pct`` or ``idle_gpu_hours``.
        """
        if sort_by not in ("gpu_hours", "mean_gpu_util_pct", "idle_gpu_hours"):
            raise ToolError(
                f"sort_by must be gpu_hours, mean_gpu_util_pct or idle_gpu_hours; got {sort_by!r}"
            )
        if status not in (None, "running", "finished"):
            raise ToolError(f"status must be running or finished; got {status!r}")
        if not 1 <= limit <= 1000:
            raise ToolError(f"limit must be between 1 and 1000; got {limit}")
        window = self.window(time_range_days, start_s, end_s)
        scope = Scope(cluster=cluster, namespace=namespace, user=user)
        result = analyze_utilization(
            self.store,
            window,
            scope=scope,
            by="workload",
            idle_threshold_pct=self.idle_threshold_pct,
        )
        wire = utilization_wire(result)
        rows = self.store.workload_usage_totals(
            start_s=window.start_s,
            end_s=window.end_s,
            cluster=cluster,
            namespace=namespace,
            user=user,
        )
        kinds = {f"{r.namespace}/{r.user}/{r.workload}": r.workload_kind for r in rows}
        last_hour = self.store.workload_usage(
            start_s=max(window.start_s, window.end_s - 3600.0),
            end_s=window.end_s,
            cluster=cluster,
            namespace=namespace,
            user=user,
        )
        running = {f"{r.namespace}/{r.user}/{r.workload}" for r in last_hour if r.gpu_s > 0}
        picked = []
        for group in wire["by"]:
            key = group["key"]
            g = {
                **group,
                "workload_kind": kinds.get(key),
                "status": "running" if key in running else "finished",
            }
            if kind is not None and g["workload_kind"] != kind:
                continue
            if status is not None and g["status"] != status:
                continue
            picked.append(g)
        picked.sort(key=lambda g: (-(g.get(sort_by) or 0.0), g["key"]))
        body = {
            "start": iso(window.start_s),
            "end": iso(window.end_s),
            "scope": {
                k: v
                for k, v in (("cluster", cluster), ("namespace", namespace), ("user", user))
                if v
            },
            "by": "workload",
            "idle_threshold_pct": self.idle_threshold_pct,
        }
        return ToolResult(
            "analyze_workload_history",
            {
                "time_range_days": time_range_days,
                "namespace": namespace,
                "kind": kind,
                "status": status,
                "sort_by": sort_by,
                "limit": limit,
                "cluster": cluster,
                "user": user,
            },
            ApiCall("POST", "/analysis/utilization", body),
            {"window": wire["window"], "workloads": picked[:limit], "total": len(picked)},
        )

    def rank_entities(
        self,
        *,
        scope: Scope,
        window: Window,
        by: str,
        metric_type: str = "utilization",
        order: str = "high",
    ) -> ToolResult:
        """The entities of one level ranked by utilization, allocation rate or GPU-hours
        (``order`` ``high``: highest first), from utilization grouped by that level."""
        metric = _metric(metric_type)
        result = analyze_utilization(
            self.store, window, scope=scope, by=by, idle_threshold_pct=self.idle_threshold_pct
        )
        wire = utilization_wire(result)
        field = {"allocation_rate": "allocation_rate", "gpu_hours": "gpu_hours"}.get(
            metric, "mean_gpu_util_pct"
        )
        rows = [g for g in wire["by"] if g.get(field) is not None]
        rows.sort(key=lambda g: (-g[field] if order == "high" else g[field], g["key"]))
        body = {
            "start": iso(window.start_s),
            "end": iso(window.end_s),
            "scope": _scope_params(scope),
            "by": by,
            "idle_threshold_pct": self.idle_threshold_pct,
        }
        return ToolResult(
            "rank_entities",
            {"by": by, "metric_type": metric_type, "order": order},
            ApiCall("POST", "/analysis/utilization", body),
            {"by": by, "field": field, "order": order, "ranked": rows},
        )

    def get_latest_snapshot(
        self, *, cluster: str | None = None, scope: Scope | None = None
    ) -> ToolResult:
        """GPUs seen in the last two minutes of samples: how many, how many allocated, how
        busy; ``scope`` narrows it to a node, GPU model, namespace, user, workload or kind
        (the GPUs they held then)."""
        window = Window(self.now_s - REALTIME_WINDOW_S, self.now_s)
        scope = scope or Scope(cluster=cluster)
        cluster = scope.cluster
        result = analyze_utilization(
            self.store, window, scope=scope, by="gpu", idle_threshold_pct=self.idle_threshold_pct
        )
        wire = utilization_wire(result)
        allocated = [g for g in wire["by"] if (g.get("allocation_rate") or 0.0) >= 0.5]
        extra: dict[str, Any] = {}
        if scope.workload_level:
            extra = self._held_now(window, scope, wire["by"])
        body = {
            "start": iso(window.start_s),
            "end": iso(window.end_s),
            "scope": _scope_params(scope),
            "by": "gpu",
            "idle_threshold_pct": self.idle_threshold_pct,
        }
        return ToolResult(
            "get_latest_snapshot",
            {"cluster": cluster, **_scope_params(scope)},
            ApiCall("POST", "/analysis/utilization", body),
            {
                "as_of": iso(self.now_s),
                "scope": _scope_params(scope),
                "gpus": wire["gpus"],
                "allocated_gpus": len(allocated),
                "allocation_rate": wire["allocation_rate"],
                "mean_gpu_util_pct": wire["mean_gpu_util_pct"],
                "by": wire["by"],
                "labels": {
                    g.uuid: f"{g.node} GPU {g.index}"
                    for g in self.store.inventory(cluster)
                    if any(b["key"] == g.uuid for b in wire["by"])
                },
                **extra,
            },
        )

    def _held_now(
        self, window: Window, scope: Scope, held_rows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Which of the GPUs a namespace / user / workload held are still allocated now.

        Workload attribution is stored per hour, so the scope's rows are the GPUs it held at
        some point of the current hour (a GPU freed or handed over at 15:10 is among them at
        15:31); the GPUs' own samples of the last two minutes say which are allocated now,
        and how busy they are now."""
        device = dataclasses.replace(scope, **dict.fromkeys(WORKLOAD_FILTER_KEYS))
        now_rows = utilization_wire(
            analyze_utilization(
                self.store,
                window,
                scope=device,
                by="gpu",
                idle_threshold_pct=self.idle_threshold_pct,
            )
        )["by"]
        now_by_key = {g["key"]: g for g in now_rows}
        held = [
            now_by_key[g["key"]]
            for g in held_rows
            if (now_by_key.get(g["key"], {}).get("allocation_rate") or 0.0) >= 0.5
        ]
        utils = [g["mean_gpu_util_pct"] for g in held if g.get("mean_gpu_util_pct") is not None]
        # Whom else each of them served this hour, at the scope's own level.
        level = next(
            k for k in ("workload", "user", "namespace", "workload_kind") if getattr(scope, k)
        )
        mine = getattr(scope, level)
        keys = {g["key"] for g in held}
        others: dict[str, set[str]] = {}
        for row in self.store.workload_usage(
            start_s=window.start_s, end_s=window.end_s, cluster=scope.cluster
        ):
            holder = getattr(row, level)
            if row.uuid in keys and holder is not None and holder != mine:
                others.setdefault(row.uuid, set()).add(str(holder))
        return {
            "attributed_since": iso(math.floor(window.start_s / 3600.0) * 3600.0),
            "held_this_hour": len(held_rows),
            "held_now": held,
            "held_now_gpus": len(held),
            "held_now_mean_gpu_util_pct": sum(utils) / len(utils) if utils else None,
            "freed": [g["key"] for g in held_rows if g["key"] not in keys],
            "also_held_by": {k: sorted(v) for k, v in sorted(others.items())},
        }

    def get_workload_metadata(
        self,
        *,
        cluster: str | None = None,
        time_range_days: float | None = None,
        namespace: str | None = None,
        user: str | None = None,
    ) -> ToolResult:
        """Namespaces, users, workloads and workload kinds with GPU-time in the window, busiest
        first; of one namespace or user when named."""
        window = self.window(time_range_days)
        if namespace is None and user is None:
            c = self.catalog(window, cluster)
        else:
            c = read_catalog(
                self.store, window.start_s, window.end_s, cluster, namespace=namespace, user=user
            )
        return ToolResult(
            "get_workload_metadata",
            {
                "cluster": cluster,
                "time_range_days": time_range_days,
                "namespace": namespace,
                "user": user,
            },
            None,
            {
                "window": to_wire(window),
                "namespace": namespace,
                "user": user,
                "namespaces": list(c.namespaces),
                "users": list(c.users),
                "kinds": list(c.workload_kinds),
                "workloads": len(c.workloads),
                "workload_names": list(c.workloads),
            },
        )

    def get_available_clusters(self) -> ToolResult:
        """Every cluster with data in the store (all time)."""
        clusters = sorted({g.cluster for g in self.store.inventory()})
        return ToolResult("get_available_clusters", {}, None, {"clusters": clusters})

    def get_available_namespaces(
        self, *, time_range_days: float | None = None, cluster: str | None = None
    ) -> ToolResult:
        """Namespaces with GPU allocation in the window, busiest first."""
        window = self.window(time_range_days)
        c = self.catalog(window, cluster)
        return ToolResult(
            "get_available_namespaces",
            {"time_range_days": time_range_days, "cluster": cluster},
            None,
            {"window": to_wire(window), "namespaces": list(c.namespaces)},
        )

    def get_available_dimension_keys(
        self,
        *,
        dimension_type: str = "label",
        time_range_days: float | None = None,
        cluster: str | None = None,
    ) -> ToolResult:
        """Keys a question can filter or group by, with how many values each has.

        gpufleet attributes GPU-time to namespace / user / workload (from Kubernetes, Slurm
        or a user map) and a workload kind; those are its label dimensions. Pod labels and
        annotations beyond these are not stored, so ``annotation`` has no keys.
        """
        if dimension_type not in ("label", "annotation"):
            raise ToolError(f"dimension_type must be label or annotation; got {dimension_type!r}")
        window = self.window(time_range_days)
        c = self.catalog(window, cluster)
        keys = {k: len(c.values(k)) for k in DIMENSION_KEYS} if dimension_type == "label" else {}
        return ToolResult(
            "get_available_dimension_keys",
            {
                "dimension_type": dimension_type,
                "time_range_days": time_range_days,
                "cluster": cluster,
            },
            None,
            {"window": to_wire(window), "dimension_type": dimension_type, "keys": keys},
        )

    # ---- waste, recommendations, alerts --------------------------------------------------

    def get_gpu_waste(
        self, *, scope: Scope, window: Window, by: str | None = "namespace", top_n: int = 5
    ) -> ToolResult:
        """Idle-allocated and unallocated GPU-hours and their cost."""
        result = compute_waste(
            self.store,
            window,
            scope=scope,
            by=by,
            idle_threshold_pct=self.idle_threshold_pct,
            prices=self.prices,
            top_n=top_n,
        )
        params = {
            **_window_params(window),
            **_scope_params(scope),
            "by": by or "",
            "idle_threshold_pct": self.idle_threshold_pct,
            "top_n": top_n,
        }
        return ToolResult(
            "get_gpu_waste",
            {"scope": to_wire(scope), "window": to_wire(window), "by": by, "top_n": top_n},
            ApiCall("GET", "/analysis/waste", params),
            to_wire(result),
        )

    def get_recommendations(self, *, scope: Scope, window: Window) -> ToolResult:
        """What to change, with evidence, expected monthly saving and confidence."""
        result = recommend(
            self.store,
            window,
            scope=scope,
            idle_threshold_pct=self.idle_threshold_pct,
            prices=self.prices,
        )
        params = {
            **_window_params(window),
            **_scope_params(scope),
            "idle_threshold_pct": self.idle_threshold_pct,
        }
        return ToolResult(
            "get_recommendations",
            {"scope": to_wire(scope), "window": to_wire(window)},
            ApiCall("GET", "/optimize/recommendations", params),
            to_wire(result),
        )

    def get_alerts(
        self, *, window: Window | None = None, active_only: bool = False, cluster: str | None = None
    ) -> ToolResult:
        """Alerts raised in the window (or still active, from the store), newest first.

        The API call is ``GET /alerts`` over the same window (its ``active=true`` reads a
        running agent's memory instead, so it is not used here).
        """
        alerts = self.store.alerts(
            start_s=None if window is None else window.start_s,
            end_s=None if window is None else window.end_s,
            active_only=active_only,
            cluster=cluster,
            limit=200,
        )
        params: dict[str, Any] = {"limit": 200}
        if window is not None:
            params.update(_window_params(window))
        return ToolResult(
            "get_alerts",
            {"window": None if window is None else to_wire(window), "active_only": active_only},
            ApiCall("GET", "/alerts", params),
            {"alerts": [to_wire(a) for a in alerts]},
        )

    # ---- internals -----------------------------------------------------------------------

    def _dimension_scope(self, dimension: str, value: str | None, cluster: str | None) -> Scope:
        if dimension == "cluster":
            return Scope(cluster=value or cluster)
        if dimension in ("namespace", "user", "workload", "node", "gpu_model"):
            if value is None:
                raise ToolError(f"dimension {dimension} needs a dimension_value")
            return Scope(cluster=cluster, **{dimension: value})
        if dimension == "label":
            if value is None or (":" not in value and "=" not in value):
                raise ToolError("dimension label needs a dimension_value like namespace:ml-team")
            key, _, val = value.replace("=", ":").partition(":")
            if key not in ("namespace", "user", "workload", "node"):
                raise ToolError(f"label key must be one of {', '.join(DIMENSION_KEYS[:4])}, node")
            return Scope(cluster=cluster, **{key: val})
        raise ToolError(
            f"dimension must be cluster, namespace, user, workload, node, gpu_model or label; "
            f"got {dimension!r}"
        )


def _granularity(text: str) -> str:
    if text not in ("hour", "day", "week"):
        raise ToolError(f"granularity must be hour, day or week; got {text!r}")
    return text


def _metric(text: str) -> str:
    if text not in ("utilization", "allocation_rate", "idle_fraction", "gpu_hours"):
        raise ToolError(
            "metric_type must be utilization, allocation_rate, idle_fraction or gpu_hours; "
            f"got {text!r}"
        )
    return text


def data_now(store: Store, wall_clock_s: float) -> float:
    """The analyst's "now": the latest sample in the store, or the wall clock if that is
    earlier (an imported or old history is answered as of its last sample)."""
    last = max((g.last_seen_s for g in store.inventory()), default=None)
    return wall_clock_s if last is None else min(last, wall_clock_s)


TOOL_NAMES: tuple[str, ...] = (
    "query_gpu_usage_trend",
    "analyze_workload_history",
    "get_latest_snapshot",
    "get_workload_metadata",
    "get_available_clusters",
    "get_available_namespaces",
    "get_available_dimension_keys",
    "get_gpu_waste",
    "get_recommendations",
    "get_alerts",
)
"""The tools offered to an LLM and over MCP (seed 001's seven, then waste, recommendations
and alerts)."""
