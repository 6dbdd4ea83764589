"""Endpoint builders of ``/analysis/*``, ``/optimize/*`` and the analyst
(``/api/gpu-analysis/*``). Windows default to the server's (the last 7 days; the report
30); the server stays the authority on every value, the checks here only catch what is
plainly wrong before a request is sent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gpufleet.client._core import Call, TimeArg, one_of, seg, time_arg
from gpufleet.client._wire import integer, obj
from gpufleet.client.errors import InvalidArgument
from gpufleet.client.scope import LEVELS, ScopeArg, scope_of
from gpufleet.client.types_analysis import (
    ChatReply,
    ChatSessions,
    ChatTranscript,
    Drilldown,
    Execution,
    ExecutionResult,
    Opportunities,
    Recommendation,
    Recommendations,
    Report,
    Trends,
    Utilization,
    Waste,
    executions_of,
)

GRANULARITIES: tuple[str, ...] = ("hour", "day", "week")
TREND_METRICS: tuple[str, ...] = ("utilization", "allocation_rate", "gpu_hours", "idle_fraction")
DRILL_METRICS: tuple[str, ...] = ("gpu_hours", "utilization")
DRILL_LEVELS: tuple[str, ...] = ("namespace", "user", "workload")
REPORT_FORMATS: tuple[str, ...] = ("md", "html")
RECOMMENDATION_KINDS: tuple[str, ...] = (
    "scale_down",
    "scale_up",
    "consolidate",
    "mig_or_share",
    "right_size",
    "reclaim_idle",
)
CHAT = "/api/gpu-analysis"


def _window(start: TimeArg, end: TimeArg) -> dict[str, str | None]:
    return {"from": time_arg(start, "start"), "to": time_arg(end, "end")}


def _pct(value: float | None, name: str) -> float | None:
    if value is not None and not 0 <= value <= 100:
        raise InvalidArgument(f"{name} must be between 0 and 100, got {value}")
    return value


def _query(
    start: TimeArg, end: TimeArg, scope: ScopeArg, idle_threshold_pct: float | None
) -> dict[str, Any]:
    """Query parameters of a GET analysis: window, scope levels, idle threshold."""
    return {
        **_window(start, end),
        **scope_of(scope).given(),
        "idle_threshold_pct": _pct(idle_threshold_pct, "idle_threshold_pct"),
    }


def _body(
    start: TimeArg, end: TimeArg, scope: ScopeArg, idle_threshold_pct: float | None, **more: Any
) -> dict[str, Any]:
    """A POST body: window, ``scope`` object, and the options that were given (a null
    would be refused where the server has a default)."""
    body: dict[str, Any] = {k: v for k, v in _window(start, end).items() if v is not None}
    given = scope_of(scope).given()
    if given:
        body["scope"] = given
    if idle_threshold_pct is not None:
        body["idle_threshold_pct"] = _pct(idle_threshold_pct, "idle_threshold_pct")
    body.update({k: v for k, v in more.items() if v is not None})
    return body


# ---- /analysis -------------------------------------------------------------------------------


def utilization(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    by: str | None = None,
    idle_threshold_pct: float | None = None,
    under_pct: float | None = None,
    over_pct: float | None = None,
) -> Call[Utilization]:
    """Time-weighted utilization, allocation, idle GPU-hours and bottlenecks
    (``POST /analysis/utilization``).

    Args:
        start: window start (default: 7 days ago).
        end: window end (default: now).
        scope: the part of the fleet (:class:`~gpufleet.client.Scope` or a mapping).
        by: break down by one of :data:`~gpufleet.client.scope.LEVELS`.
        idle_threshold_pct: idle below this (default: the server's setting).
        under_pct: under-utilized below this mean (server default 20).
        over_pct: over-utilized above this mean (server default 90).
    """
    one_of(by, LEVELS, "group-by key")
    body = _body(
        start,
        end,
        scope,
        idle_threshold_pct,
        by=by,
        under_pct=_pct(under_pct, "under_pct"),
        over_pct=_pct(over_pct, "over_pct"),
    )
    return Call("POST", "/analysis/utilization", lambda d: Utilization.from_wire(obj(d)), body=body)


def trends(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    granularity: str = "day",
    metric: str = "utilization",
    horizon: int | None = None,
    idle_threshold_pct: float | None = None,
    compare_from: TimeArg = None,
    compare_to: TimeArg = None,
    compare_key: str | None = None,
    a: str | None = None,
    b: str | None = None,
) -> Call[Trends]:
    """A metric per bucket with its slope, change points and forecast
    (``GET /analysis/trends``).

    ``compare_from``/``compare_to`` add a comparison with another window
    (``raw["window_comparison"]``); ``compare_key`` with ``a`` and ``b`` compares two
    entities of one level (``raw["entity_comparison"]``).
    """
    one_of(granularity, GRANULARITIES, "granularity")
    one_of(metric, TREND_METRICS, "trend metric")
    one_of(compare_key, LEVELS, "compare_key")
    if (compare_from is None) != (compare_to is None):
        raise InvalidArgument("give both compare_from and compare_to, or neither")
    if (compare_key, a, b).count(None) not in (0, 3):
        raise InvalidArgument("give compare_key, a and b together")
    params = _query(start, end, scope, idle_threshold_pct) | {
        "granularity": granularity,
        "metric": metric,
        "horizon": horizon,
        "compare_from": time_arg(compare_from, "compare_from"),
        "compare_to": time_arg(compare_to, "compare_to"),
        "compare_key": compare_key,
        "a": a,
        "b": b,
    }
    return Call("GET", "/analysis/trends", lambda d: Trends.from_wire(obj(d)), params)


def drilldown(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    before_from: TimeArg = None,
    before_to: TimeArg = None,
    metric: str = "gpu_hours",
    levels: Sequence[str] = DRILL_LEVELS,
    top: int = 5,
    expand: int = 1,
) -> Call[Drilldown]:
    """Attribute a change between two windows down namespace -> user -> workload
    (``GET /analysis/drilldown``); the reference window defaults to the one before."""
    one_of(metric, DRILL_METRICS, "drill-down metric")
    walk = [levels] if isinstance(levels, str) else list(levels)
    for level in walk:
        one_of(level, DRILL_LEVELS, "drill-down level")
    if (before_from is None) != (before_to is None):
        raise InvalidArgument("give both before_from and before_to, or neither")
    params = _query(start, end, scope, None) | {
        "before_from": time_arg(before_from, "before_from"),
        "before_to": time_arg(before_to, "before_to"),
        "metric": metric,
        "levels": ",".join(walk),
        "top": top,
        "expand": expand,
    }
    return Call("GET", "/analysis/drilldown", lambda d: Drilldown.from_wire(obj(d)), params)


def waste(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    by: str | None = "namespace",
    idle_threshold_pct: float | None = None,
    top_n: int = 10,
) -> Call[Waste]:
    """Idle-allocated and unallocated GPU-hours and their cost (``GET /analysis/waste``);
    ``by=None`` for no breakdown."""
    one_of(by, LEVELS, "group-by key")
    params = _query(start, end, scope, idle_threshold_pct) | {"by": by or "", "top_n": top_n}
    return Call("GET", "/analysis/waste", lambda d: Waste.from_wire(obj(d)), params)


def opportunities(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    idle_threshold_pct: float | None = None,
    under_pct: float = 20.0,
    top_n: int = 10,
) -> Call[Opportunities]:
    """Under-utilized workloads, top wasters and what to do with their savings
    (``GET /analysis/opportunities``)."""
    params = _query(start, end, scope, idle_threshold_pct) | {
        "under_pct": _pct(under_pct, "under_pct"),
        "top_n": top_n,
    }
    return Call("GET", "/analysis/opportunities", lambda d: Opportunities.from_wire(obj(d)), params)


def _report_params(
    start: TimeArg,
    end: TimeArg,
    scope: ScopeArg,
    target_util_pct: float,
    idle_threshold_pct: float | None,
    fmt: str,
) -> dict[str, Any]:
    if not 0 < target_util_pct <= 100:
        raise InvalidArgument(f"target_util_pct must be in (0, 100], got {target_util_pct}")
    return _query(start, end, scope, idle_threshold_pct) | {
        "format": fmt,
        "target_util_pct": target_util_pct,
    }


def report(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    target_util_pct: float = 80.0,
    idle_threshold_pct: float | None = None,
) -> Call[Report]:
    """The FinOps report as data (``GET /analysis/report``; default window 30 days)."""
    params = _report_params(start, end, scope, target_util_pct, idle_threshold_pct, "json")
    return Call("GET", "/analysis/report", lambda d: Report.from_wire(obj(d)), params)


def report_text(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    format: str = "md",
    scope: ScopeArg = None,
    target_util_pct: float = 80.0,
    idle_threshold_pct: float | None = None,
) -> Call[str]:
    """The FinOps report as Markdown (``format="md"``) or HTML (``"html"``) to forward."""
    one_of(format, REPORT_FORMATS, "report format")
    params = _report_params(start, end, scope, target_util_pct, idle_threshold_pct, format)
    return Call("GET", "/analysis/report", str, params, text=True)


# ---- /optimize -------------------------------------------------------------------------------


def _kinds(kinds: Iterable[str] | str | None) -> list[str] | None:
    if kinds is None:
        return None
    chosen = [kinds] if isinstance(kinds, str) else list(kinds)
    for kind in chosen:
        one_of(kind, RECOMMENDATION_KINDS, "recommendation kind")
    return chosen


def recommendations(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    kinds: Iterable[str] | str | None = None,
    idle_threshold_pct: float | None = None,
) -> Call[Recommendations]:
    """Every recommendation (or those of ``kinds``), highest expected saving first, with
    evidence and confidence (``GET /optimize/recommendations``)."""
    params = _query(start, end, scope, idle_threshold_pct) | {"kind": _kinds(kinds)}
    return Call(
        "GET", "/optimize/recommendations", lambda d: Recommendations.from_wire(obj(d)), params
    )


def _of_group(
    group: str,
    start: TimeArg,
    end: TimeArg,
    scope: ScopeArg,
    idle_threshold_pct: float | None,
) -> Call[Recommendations]:
    body = _body(start, end, scope, idle_threshold_pct)
    return Call(
        "POST", f"/optimize/{group}", lambda d: Recommendations.from_wire(obj(d)), body=body
    )


def scale_up(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    idle_threshold_pct: float | None = None,
) -> Call[Recommendations]:
    """Recommendations to add GPUs (``POST /optimize/scale-up``)."""
    return _of_group("scale-up", start, end, scope, idle_threshold_pct)


def scale_down(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    idle_threshold_pct: float | None = None,
) -> Call[Recommendations]:
    """Recommendations to remove GPUs (``POST /optimize/scale-down``)."""
    return _of_group("scale-down", start, end, scope, idle_threshold_pct)


def consolidate(
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    idle_threshold_pct: float | None = None,
) -> Call[Recommendations]:
    """Recommendations to pack workloads or share GPUs (``POST /optimize/consolidate``)."""
    return _of_group("consolidate", start, end, scope, idle_threshold_pct)


Chosen = Recommendations | Recommendation | Iterable[Recommendation | str] | str


def _ids(chosen: Chosen) -> list[str]:
    if isinstance(chosen, Recommendations):
        items: Iterable[Recommendation | str] = chosen.recommendations
    elif isinstance(chosen, Recommendation | str):
        items = [chosen]
    else:
        items = chosen
    ids = [x.id if isinstance(x, Recommendation) else str(x) for x in items]
    if not ids:
        raise InvalidArgument("nothing to execute: give at least one recommendation or id")
    return ids


def execute(
    recommendations: Chosen,
    start: TimeArg = None,
    end: TimeArg = None,
    *,
    scope: ScopeArg = None,
    dry_run: bool = True,
    requested_by: str | None = None,
    idle_threshold_pct: float | None = None,
) -> Call[ExecutionResult]:
    """Run the actions of recommendations through the server's executor
    (``POST /optimize/execute``); a dry run (only logged as ``planned``) unless
    ``dry_run=False``.

    Args:
        recommendations: a :class:`Recommendations` result, some of its
            :class:`Recommendation` items, or their ids. The server recomputes the
            recommendations and runs those named; given a :class:`Recommendations` without
            ``start``/``end``, its window is used so the same ones are found.
        start: window the server recomputes over (default: the given result's, else 7 days).
        end: its end.
        scope: the scope they were computed for.
        dry_run: only plan (the default).
        requested_by: who asks (logged; default: the client's address).
        idle_threshold_pct: the idle threshold they were computed with.

    Raises:
        RequestRejected: an id the server does not recommend now (the detail lists the
            current ones), or a real run without an executor configured.
    """
    ids = _ids(recommendations)
    if isinstance(recommendations, Recommendations) and start is None and end is None:
        start, end = recommendations.window.start_s, recommendations.window.end_s
    body = _body(
        start,
        end,
        scope,
        idle_threshold_pct,
        recommendation_ids=ids,
        dry_run=bool(dry_run),
        requested_by=requested_by,
    )
    return Call("POST", "/optimize/execute", lambda d: ExecutionResult.from_wire(obj(d)), body=body)


def executions(
    limit: int = 100, recommendation_id: str | None = None
) -> Call[tuple[Execution, ...]]:
    """The execution log, newest first (``GET /optimize/executions``)."""
    params = {"limit": limit, "recommendation_id": recommendation_id}
    return Call("GET", "/optimize/executions", lambda d: executions_of(obj(d)), params)


# ---- analyst ---------------------------------------------------------------------------------


def chat_body(query: str, session_id: str | None, cluster: str | None) -> dict[str, Any]:
    """The body of ``/chat`` and ``/chat/stream``."""
    if not isinstance(query, str) or not query.strip():
        raise InvalidArgument("query must be a non-empty question")
    body: dict[str, Any] = {"query": query}
    if session_id is not None:
        body["session_id"] = session_id
    if cluster is not None:
        body["cluster_name"] = cluster
    return body


def ask(
    query: str, *, session_id: str | None = None, cluster: str | None = None
) -> Call[ChatReply]:
    """Ask the analyst a question in English or Chinese (``POST /api/gpu-analysis/chat``);
    pass the reply's ``session_id`` back to ask a follow-up.

    Raises:
        NotFoundError: an unknown ``session_id``.
        ConflictError: the session is answering another question.
    """
    body = chat_body(query, session_id, cluster)
    return Call("POST", f"{CHAT}/chat", lambda d: ChatReply.from_wire(obj(d)), body=body)


def sessions(limit: int = 100) -> Call[ChatSessions]:
    """Conversations, most recently updated first (``GET /api/gpu-analysis/sessions``)."""
    return Call(
        "GET", f"{CHAT}/sessions", lambda d: ChatSessions.from_wire(obj(d)), {"limit": limit}
    )


def session(session_id: str) -> Call[ChatTranscript]:
    """A conversation's turns with their replies."""
    return Call(
        "GET", f"{CHAT}/sessions/{seg(session_id)}", lambda d: ChatTranscript.from_wire(obj(d))
    )


def delete_session(session_id: str) -> Call[int]:
    """Delete a conversation; returns how many turns it had.

    Raises:
        NotFoundError: there is no such session.
    """
    return Call(
        "DELETE",
        f"{CHAT}/sessions/{seg(session_id)}",
        lambda d: integer(obj(d)["deleted_turns"]),
    )


def chat_stream(
    query: str, *, session_id: str | None = None, cluster: str | None = None
) -> Call[str]:
    """The request of ``POST /api/gpu-analysis/chat/stream`` (its body is read as
    server-sent events by the clients, not parsed as one document)."""
    body = chat_body(query, session_id, cluster)
    return Call("POST", f"{CHAT}/chat/stream", str, body=body)
