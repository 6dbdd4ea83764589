"""Validation of history query parameters shared by the GPU and host routers."""

from __future__ import annotations

import time

from fastapi import HTTPException

from gpufleet.store.base import Resolution, Store, pick_resolution
from gpufleet.timeparse import parse_window

DEFAULT_SPAN_S = 3600.0


def resolve_window(
    start: str | None, end: str | None, resolution: str, store: Store
) -> tuple[float, float, Resolution]:
    """``(start_s, end_s, resolution)``; AUTO resolved with the store's retention.

    Raises:
        HTTPException: 422 for an unknown resolution (TimeParseError for bad times is
            mapped to 422 by the app's handlers).
    """
    try:
        res = Resolution(resolution)
    except ValueError:
        accepted = ", ".join(r.value for r in Resolution)
        raise HTTPException(
            422, detail=f"unknown resolution {resolution!r}; use one of: {accepted}"
        ) from None
    now = time.time()
    start_s, end_s = parse_window(start, end, now_s=now, default_span_s=DEFAULT_SPAN_S)
    if res is Resolution.AUTO:
        res = pick_resolution(start_s, end_s, now, store.retention)
    return start_s, end_s, res


def check_metric(metric: str, known: tuple[str, ...]) -> str:
    """422 unless ``metric`` is one of ``known``."""
    if metric not in known:
        raise HTTPException(
            422, detail=f"unknown metric {metric!r}; use one of: {', '.join(known)}"
        )
    return metric
