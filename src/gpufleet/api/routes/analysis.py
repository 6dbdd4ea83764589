"""``/analysis/*``: utilization, trends, drill-down, waste, opportunities and the report.

Routes only translate HTTP to :mod:`gpufleet.analysis` calls and back; every number comes
from there. Windows default to the last 7 days (the report: 30). Unknown scope values,
group-by keys and bad windows are 422 with a detail that lists what exists (issue 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, cast, get_args

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from gpufleet.analysis.drilldown import DrillMetric, drill_down
from gpufleet.analysis.history import UnknownSubjectError
from gpufleet.analysis.opportunities import find_opportunities
from gpufleet.analysis.report import build_report, report_json
from gpufleet.analysis.report_html import render_html
from gpufleet.analysis.report_markdown import render_markdown
from gpufleet.analysis.request import (
    REPORT_SPAN_S,
    analysis_window,
    scope_of,
)
from gpufleet.analysis.scope import WORKLOAD_KEYS, Scope, Window
from gpufleet.analysis.trends import Granularity, Metric, analyze_trends, compare_entities
from gpufleet.analysis.trends import compare_windows as compare_two_windows
from gpufleet.analysis.utilization import analyze_utilization
from gpufleet.analysis.waste import compute_waste
from gpufleet.analysis.wire import to_wire, utilization_wire
from gpufleet.api.deps import Ctx, HistoryStore, idle_threshold
from gpufleet.api.schemas.analysis import ScopeIn, UtilizationIn, scope_from

router = APIRouter(prefix="/analysis", tags=["analysis"])

T = TypeVar("T")


def answer(call: Callable[[], T]) -> T:
    """Run an analysis; a scope value the store does not hold is a 422 listing what exists."""
    try:
        return call()
    except UnknownSubjectError as exc:
        raise HTTPException(422, detail=str(exc)) from None


NodeSelector = Callable[[Scope, str | None, str | None, str | None], Scope]
"""``(scope, cluster, pool, label) -> scope`` limited to the nodes a hub selects by pool and
label (``app.state.select_nodes``; an agent has none)."""


def body_scope(request: Request, levels: ScopeIn) -> Scope:
    """The scope of a request body; its node filters (``pool``, ``label``) only on a hub."""
    base = scope_from(levels)
    if levels.pool is None and levels.label is None:
        return base
    select: NodeSelector | None = getattr(request.app.state, "select_nodes", None)
    if select is None:
        raise HTTPException(
            422,
            detail="pool and label select a hub's nodes; an agent has neither: ask the hub, "
            "or scope by cluster and node",
        )
    return select(base, levels.cluster, levels.pool, levels.label)


def scope_query(
    cluster: str | None = None,
    node: str | None = None,
    gpu: Annotated[str | None, Query(description="GPU UUID, or index with node")] = None,
    namespace: str | None = None,
    user: str | None = None,
    workload: str | None = None,
    gpu_model: Annotated[str | None, Query(description="substring, e.g. h100")] = None,
    workload_kind: Annotated[
        str | None, Query(description="training, inference, notebook, batch, ... or unknown")
    ] = None,
) -> Scope:
    """The scope named by query parameters."""
    return scope_of(
        {
            "cluster": cluster,
            "node": node,
            "gpu": gpu,
            "namespace": namespace,
            "user": user,
            "workload": workload,
            "gpu_model": gpu_model,
            "workload_kind": workload_kind,
        }
    )


ScopeQ = Annotated[Scope, Depends(scope_query)]
From = Annotated[
    str | None, Query(alias="from", description="ISO 8601, epoch s, now, or -7d (default -7d)")
]
To = Annotated[str | None, Query(alias="to", description="default: now")]
Threshold = Annotated[
    float | None,
    Query(
        ge=0,
        le=100,
        description="idle below this utilization (default: the agent's idle_threshold_pct)",
    ),
]


@router.post("/utilization")
def utilization(
    ctx: Ctx, store: HistoryStore, request: Request, body: UtilizationIn | None = None
) -> Any:
    """Time-weighted utilization, allocation, idle GPU-hours and bottlenecks of a scope."""
    if request.query_params:
        names = ", ".join(sorted(request.query_params))
        raise HTTPException(
            422,
            detail="POST /analysis/utilization takes its options in the JSON body, not the "
            f'query string ({names}): e.g. {{"from": "-1d", "by": "namespace"}}',
        )
    req = body or UtilizationIn()
    window = analysis_window(req.start, req.end)
    result = answer(
        lambda: analyze_utilization(
            store,
            window,
            scope=body_scope(request, req.scope),
            by=req.by,
            idle_threshold_pct=idle_threshold(ctx, req.idle_threshold_pct),
            under_pct=req.under_pct,
            over_pct=req.over_pct,
        )
    )
    return utilization_wire(result)


@router.get("/trends")
def trends(
    ctx: Ctx,
    store: HistoryStore,
    scope: ScopeQ,
    start: From = None,
    end: To = None,
    granularity: Annotated[str, Query(description="hour, day or week")] = "day",
    metric: Annotated[
        str, Query(description=", ".join(get_args(Metric)) + " (default utilization)")
    ] = "utilization",
    horizon: Annotated[int | None, Query(ge=1, le=1000, description="buckets to forecast")] = None,
    idle_threshold_pct: Threshold = None,
    compare_from: Annotated[
        str | None, Query(description="a second window to compare with (its start)")
    ] = None,
    compare_to: Annotated[str | None, Query(description="the second window's end")] = None,
    compare_key: Annotated[
        str | None, Query(description="compare two entities of this level, e.g. namespace")
    ] = None,
    a: Annotated[str | None, Query(description="first entity (with compare_key)")] = None,
    b: Annotated[str | None, Query(description="second entity (with compare_key)")] = None,
) -> Any:
    """Series, robust slope, change against the previous window, change points, forecast.

    ``compare_from``/``compare_to`` add a comparison with any other window; ``compare_key``
    with ``a`` and ``b`` compares two entities (two namespaces, two GPU models) in the window.
    """
    window = analysis_window(start, end)
    idle_pct = idle_threshold(ctx, idle_threshold_pct)
    gran = cast(Granularity, granularity)
    met = cast(Metric, metric)
    result = answer(
        lambda: analyze_trends(
            store,
            window,
            scope=scope,
            granularity=gran,
            metric=met,
            idle_threshold_pct=idle_pct,
            horizon=horizon,
        )
    )
    out: dict[str, Any] = to_wire(result)
    if compare_from is not None or compare_to is not None:
        if compare_from is None or compare_to is None:
            raise HTTPException(422, detail="give both compare_from and compare_to")
        other = analysis_window(compare_from, compare_to)
        out["window_comparison"] = to_wire(
            answer(
                lambda: compare_two_windows(
                    store,
                    other,
                    window,
                    scope=scope,
                    metric=met,
                    idle_threshold_pct=idle_pct,
                )
            )
        )
    if compare_key is not None or a is not None or b is not None:
        if compare_key is None or a is None or b is None:
            raise HTTPException(422, detail="give compare_key, a and b together")
        key = compare_key
        first, second = a, b
        out["entity_comparison"] = to_wire(
            answer(
                lambda: compare_entities(
                    store,
                    window,
                    key,
                    first,
                    second,
                    scope=scope,
                    metric=met,
                    idle_threshold_pct=idle_pct,
                )
            )
        )
    return out


@router.get("/drilldown")
def drilldown(
    store: HistoryStore,
    scope: ScopeQ,
    start: From = None,
    end: To = None,
    before_from: Annotated[
        str | None, Query(description="reference window start (default: the window before)")
    ] = None,
    before_to: Annotated[str | None, Query(description="reference window end")] = None,
    metric: Annotated[str, Query(description="gpu_hours or utilization")] = "gpu_hours",
    levels: Annotated[
        str, Query(description="comma-separated, from namespace,user,workload")
    ] = ",".join(WORKLOAD_KEYS),
    top: Annotated[int, Query(ge=1, le=100)] = 5,
    expand: Annotated[int, Query(ge=1, le=20)] = 1,
) -> Any:
    """Attribute a change between two windows down namespace -> user -> workload."""
    after = analysis_window(start, end)
    if (before_from is None) != (before_to is None):
        raise HTTPException(422, detail="give both before_from and before_to, or neither")
    before = (
        analysis_window(before_from, before_to)
        if before_from is not None
        else Window(after.start_s - after.span_s, after.start_s)
    )
    walk = [lv.strip() for lv in levels.split(",") if lv.strip()]
    result = answer(
        lambda: drill_down(
            store,
            before,
            after,
            scope=scope,
            metric=cast(DrillMetric, metric),
            levels=walk,
            top=top,
            expand=expand,
        )
    )
    return to_wire(result)


@router.get("/waste")
def waste(
    ctx: Ctx,
    store: HistoryStore,
    scope: ScopeQ,
    start: From = None,
    end: To = None,
    by: Annotated[str | None, Query(description="group by (default namespace)")] = "namespace",
    idle_threshold_pct: Threshold = None,
    top_n: Annotated[int, Query(ge=0, le=1000, description="top wasting workloads")] = 10,
) -> Any:
    """Idle-allocated and unallocated GPU-hours and their cost at the price table."""
    window = analysis_window(start, end)
    result = answer(
        lambda: compute_waste(
            store,
            window,
            scope=scope,
            by=by or None,
            idle_threshold_pct=idle_threshold(ctx, idle_threshold_pct),
            prices=ctx.settings.prices.to_table(),
            top_n=top_n,
        )
    )
    return to_wire(result)


@router.get("/opportunities")
def opportunities(
    ctx: Ctx,
    store: HistoryStore,
    scope: ScopeQ,
    start: From = None,
    end: To = None,
    idle_threshold_pct: Threshold = None,
    under_pct: Annotated[float, Query(ge=0, le=100, description="under-utilized below")] = 20.0,
    top_n: Annotated[int, Query(ge=0, le=1000)] = 10,
) -> Any:
    """Where GPUs are held but not used: under-utilized workloads, top wasters, and the
    consolidation, sharing, right-sizing and reclaim recommendations with their savings."""
    window = analysis_window(start, end)
    found = answer(
        lambda: find_opportunities(
            store,
            window,
            scope=scope,
            idle_threshold_pct=idle_threshold(ctx, idle_threshold_pct),
            under_pct=under_pct,
            prices=ctx.settings.prices.to_table(),
            top_n=top_n,
        )
    )
    return to_wire(found)


@router.get("/report", response_model=None)
def report(
    ctx: Ctx,
    store: HistoryStore,
    scope: ScopeQ,
    start: Annotated[
        str | None, Query(alias="from", description="default: the last 30 days")
    ] = None,
    end: To = None,
    format: Annotated[
        Literal["json", "md", "html"], Query(description="json, md or html")
    ] = "json",
    target_util_pct: Annotated[float, Query(gt=0, le=100)] = 80.0,
    idle_threshold_pct: Threshold = None,
) -> Response | dict[str, Any]:
    """The FinOps report: utilization against target, savings, recommendations, trends."""
    window = analysis_window(start, end, default_span_s=REPORT_SPAN_S)
    built = answer(
        lambda: build_report(
            store,
            window,
            scope=scope,
            idle_threshold_pct=idle_threshold(ctx, idle_threshold_pct),
            prices=ctx.settings.prices.to_table(),
            target_util_pct=target_util_pct,
        )
    )
    if format == "md":
        return PlainTextResponse(render_markdown(built), media_type="text/markdown")
    if format == "html":
        return HTMLResponse(render_html(built))
    return report_json(built)
