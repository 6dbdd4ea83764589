"""Errors a user can cause become a 4xx whose ``detail`` says what to fix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.fleet.errors import AuthError, HubRequestError
from gpufleet.store.base import QueryTooLargeError, StoreError, StoreUnavailable
from gpufleet.timeparse import TimeParseError

# What a JSON body looks like, for the endpoints where a malformed one is likeliest.
_BODY_EXAMPLES = {
    "/api/gpu-analysis/chat": '{"query": "..."}',
    "/api/gpu-analysis/chat/stream": '{"query": "..."}',
}


def _body_detail(err: Mapping[str, Any], path: str) -> str | None:
    """Words for a body that is not a JSON object at all (None for other errors): pydantic
    says "0: JSON decode error" or "Input should be a valid dictionary"."""
    loc = tuple(err.get("loc", ()))
    if not loc or loc[0] != "body":
        return None
    example = _BODY_EXAMPLES.get(path.rstrip("/"))
    such = f" such as {example}" if example else ""
    kind = err.get("type")
    if kind == "json_invalid":
        reason = str((err.get("ctx") or {}).get("error") or "")
        why = [f"at character {loc[1]}"] if len(loc) > 1 else []
        why += [reason[:1].lower() + reason[1:]] if reason else []
        at = f" ({': '.join(why)})" if why else ""
        return f"the body is not valid JSON{at}: send a JSON object{such}"
    if kind in ("model_attributes_type", "dict_type") and len(loc) == 1:
        given = err.get("input")
        if isinstance(given, bytes | bytearray):  # not sent as JSON (a form, plain text)
            return f"the body must be a JSON object (Content-Type: application/json){such}"
        shown = {list: "an array", str: "a string", int: "a number", float: "a number"}
        what = shown.get(type(given), "null" if given is None else "another value")
        return f"the body must be a JSON object{such}, not {what}"
    if kind == "missing" and len(loc) == 1:
        return f"the request has no body: send a JSON object{such} (Content-Type: application/json)"
    return None


def _validation_detail(exc: RequestValidationError, path: str = "") -> str:
    parts = []
    for err in exc.errors():
        body = _body_detail(err, path)
        if body is not None:
            parts.append(body)
            continue
        loc = list(err.get("loc", ()))
        # The first part says where the value was (query string, body, path); a body field
        # may itself be called "query" (the analyst's question), so only the first goes.
        if loc and loc[0] in ("query", "body", "path", "header"):
            loc = loc[1:]
        where = ".".join(str(x) for x in loc)
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Map library errors to HTTP statuses with a readable ``detail``."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = _validation_detail(exc, request.url.path)
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(UnknownSubjectError)
    async def _unknown(_request: Request, exc: UnknownSubjectError) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(HistoryQueryError)
    async def _query(_request: Request, exc: HistoryQueryError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(TimeParseError)
    async def _time(_request: Request, exc: TimeParseError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(QueryTooLargeError)
    async def _too_large(_request: Request, exc: QueryTooLargeError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(AuthError)
    async def _auth(_request: Request, exc: AuthError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail}, headers=headers)

    @app.exception_handler(HubRequestError)
    async def _hub_request(_request: Request, exc: HubRequestError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail})

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"history unavailable: {exc}"})

    @app.exception_handler(StoreError)
    async def _store(_request: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"store error: {exc}"})
