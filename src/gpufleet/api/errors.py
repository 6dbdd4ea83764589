"""Errors a user can cause become a 4xx whose ``detail`` says what to fix."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.fleet.errors import AuthError, HubRequestError
from gpufleet.store.base import QueryTooLargeError, StoreError, StoreUnavailable
from gpufleet.timeparse import TimeParseError


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
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
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _validation_detail(exc)})

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
