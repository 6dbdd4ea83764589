"""``/optimize/*``: recommendations by kind, and executing them (a dry run unless told).

Recommendation ids depend on kind and target only, so an id shown by
``/optimize/recommendations`` can be executed later: ``execute`` recomputes the
recommendations over its window and runs those named. Every execution, dry or real, is
logged in the store with who asked and what happened (``GET /optimize/executions``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from gpufleet.agent.executor import ExecutionRefusedError, Executor
from gpufleet.analysis.recommend import recommend
from gpufleet.analysis.recommend_types import RecommendationSet
from gpufleet.analysis.request import (
    KIND_GROUPS,
    analysis_window,
    kinds_of,
    pick_recommendations,
)
from gpufleet.analysis.wire import to_wire
from gpufleet.api.deps import Ctx, HistoryStore, idle_threshold
from gpufleet.api.routes.analysis import ScopeQ, Threshold, answer, body_scope
from gpufleet.api.schemas.analysis import ExecuteIn, RecommendIn
from gpufleet.store.base import Store

router = APIRouter(prefix="/optimize", tags=["optimize"])
execute_router = APIRouter(prefix="/optimize", tags=["optimize"])
"""Executing and its log (a hub guards it with an admin token, reading with a read one)."""


def _recommend(
    ctx: Ctx,
    store: Store,
    request: Request,
    req: RecommendIn | ExecuteIn,
    kinds: tuple[str, ...] | None,
) -> RecommendationSet:
    window = analysis_window(req.start, req.end)
    scope = body_scope(request, req.scope)
    return answer(
        lambda: recommend(
            store,
            window,
            scope=scope,
            idle_threshold_pct=idle_threshold(ctx, req.idle_threshold_pct),
            prices=ctx.settings.prices.to_table(),
            kinds=kinds,
        )
    )


def _of_group(group: str) -> Any:
    def endpoint(
        ctx: Ctx, store: HistoryStore, request: Request, body: RecommendIn | None = None
    ) -> Any:
        req = body or RecommendIn()
        if req.kinds is not None:
            raise HTTPException(
                422,
                detail=f"kinds is fixed here ({', '.join(KIND_GROUPS[group])}); "
                "use /optimize/recommendations to choose kinds",
            )
        return to_wire(_recommend(ctx, store, request, req, KIND_GROUPS[group]))

    kinds = ", ".join(KIND_GROUPS[group])
    endpoint.__doc__ = f"Recommendations of kind {kinds}, highest expected saving first."
    endpoint.__name__ = group.replace("-", "_")
    return endpoint


for _group in ("scale-up", "scale-down", "consolidate"):
    router.post(f"/{_group}")(_of_group(_group))


@router.get("/recommendations")
def recommendations(
    ctx: Ctx,
    store: HistoryStore,
    scope: ScopeQ,
    start: Annotated[str | None, Query(alias="from", description="default -7d")] = None,
    end: Annotated[str | None, Query(alias="to", description="default now")] = None,
    kind: Annotated[list[str] | None, Query(description="only these kinds (repeatable)")] = None,
    idle_threshold_pct: Threshold = None,
) -> Any:
    """Every recommendation (or those of ``kind``), with evidence, saving and confidence."""
    req = RecommendIn.model_validate(
        {"from": start, "to": end, "idle_threshold_pct": idle_threshold_pct}
    )
    window = analysis_window(req.start, req.end)
    found = answer(
        lambda: recommend(
            store,
            window,
            scope=scope,
            idle_threshold_pct=idle_threshold(ctx, idle_threshold_pct),
            prices=ctx.settings.prices.to_table(),
            kinds=kinds_of(kind),
        )
    )
    return to_wire(found)


@router.post("/recommendations")
def recommendations_post(
    ctx: Ctx, store: HistoryStore, request: Request, body: RecommendIn | None = None
) -> Any:
    """As ``GET /optimize/recommendations`` with the window and scope in a JSON body."""
    req = body or RecommendIn()
    return to_wire(_recommend(ctx, store, request, req, kinds_of(req.kinds)))


@execute_router.post("/execute")
def execute(ctx: Ctx, store: HistoryStore, body: ExecuteIn, request: Request) -> Any:
    """Run the named recommendations' actions through the configured executor.

    ``dry_run`` is true unless the body says false: then nothing is called and each action
    is logged as ``planned`` with what would be done. 404-style unknown ids are a 422 that
    lists the current recommendations.
    """
    found = _recommend(ctx, store, request, body, None)
    chosen = answer(lambda: pick_recommendations(found, body.recommendation_ids))
    who = body.requested_by or (
        f"api:{request.client.host}" if request.client is not None else "api"
    )
    executor = Executor(store, ctx.settings.executor)
    # An app may carry out some actions itself (a hub drains its own nodes).
    for action_type, (name, handler) in getattr(request.app.state, "action_handlers", {}).items():
        executor.register(action_type, handler, name)
    try:
        done = executor.execute(chosen, requested_by=who, dry_run=body.dry_run)
    except ExecutionRefusedError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return {
        "dry_run": body.dry_run,
        "executor": ctx.settings.executor.kind,
        "window": to_wire(found.window),
        "executions": to_wire(done),
    }


@execute_router.get("/executions")
def executions(
    store: HistoryStore,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    recommendation_id: str | None = None,
) -> Any:
    """The execution log, newest first: who asked, what ran, what happened."""
    rows = store.executions(limit=limit, recommendation_id=recommendation_id)
    return {"count": len(rows), "executions": to_wire(rows)}
