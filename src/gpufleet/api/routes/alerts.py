"""``/alerts``: active alerts from memory, past ones from the store."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from gpufleet.api.deps import Ctx
from gpufleet.api.schemas.alerts import AlertList, AlertOut
from gpufleet.timeparse import iso, parse_window

router = APIRouter(tags=["alerts"])


@router.get("/alerts", response_model=AlertList)
def alerts(
    ctx: Ctx,
    active: Annotated[bool, Query(description="only alerts still firing")] = False,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> AlertList:
    """Alerts, newest first. Without a store only the active ones (from memory) are known."""
    start_s, end_s = parse_window(start, end, now_s=time.time(), default_span_s=7 * 86_400.0)
    firing = [] if ctx.alerts is None else ctx.alerts.active()
    if active or ctx.store is None:
        items = sorted(firing, key=lambda a: a.fired_s, reverse=True)[:limit]
        source = "memory"
    else:
        items = ctx.store.alerts(start_s=start_s, end_s=end_s, active_only=False, limit=limit)
        source = "store"
    return AlertList(
        start=iso(start_s),
        end=iso(end_s),
        source=source,
        active_count=len(firing),
        count=len(items),
        alerts=[AlertOut.from_alert(a) for a in items],
    )
