"""What the client raises: one base class, one subclass per HTTP failure a caller handles.

Every :class:`ApiError` carries the server's ``detail`` (gpufleet says there what to fix),
the status code, and the method and URL of the request; its message is the detail itself,
prefixed with where it came from.
"""

# The names say what happened (the brief's and the API's words), not "...Error" each.
# ruff: noqa: N818

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class GpufleetError(Exception):
    """Base of every error the client raises."""


class InvalidArgument(GpufleetError, ValueError):
    """An argument the client refuses before sending anything (an unknown group key, a bad
    time); the server stays the authority on everything else."""


class ConnectionFailed(GpufleetError):
    """The server could not be reached (refused, DNS, TLS, reset)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"could not reach {url}: {reason}")


class RequestTimedOut(GpufleetError):
    """The server did not answer within the client's ``timeout_s``."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"no answer from {url} in time: {reason}")


class UnexpectedResponse(GpufleetError):
    """A 2xx answer that is not what a gpufleet server sends (not JSON, missing fields)."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        self.method = method
        self.url = url
        self.reason = reason
        super().__init__(f"{method} {url}: unexpected answer: {reason}")


class ApiError(GpufleetError):
    """The server answered with a non-2xx status.

    Attributes:
        status_code: the HTTP status.
        detail: the server's ``detail`` as text (a FastAPI list of validation errors is
            joined into one readable line).
        detail_raw: the ``detail`` exactly as sent (a string, a list, or None when the body
            had none).
        method: the request's method.
        url: the request's full URL.
    """

    def __init__(
        self, status_code: int, detail: str, method: str, url: str, detail_raw: Any = None
    ) -> None:
        self.status_code = status_code
        self.detail = detail
        self.detail_raw = detail_raw
        self.method = method
        self.url = url
        super().__init__(f"{method} {url} -> {status_code}: {detail}")


class AuthError(ApiError):
    """401 (no or a bad token) or 403 (a token without the scope the call needs)."""


class NotFoundError(ApiError):
    """404: the GPU, lease, task, session... does not exist (the detail lists what does)."""


class ConflictError(ApiError):
    """409: the request cannot be met now (no GPU free for a lease, a session busy)."""


class RequestRejected(ApiError):
    """422: a parameter or body the server refused; the detail names it and what to send."""


class Unavailable(ApiError):
    """503: the server cannot answer now (no sample yet, no GPUs, history off or down)."""


_BY_STATUS: Mapping[int, type[ApiError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFoundError,
    409: ConflictError,
    422: RequestRejected,
    503: Unavailable,
}


def _loc_text(loc: object) -> str:
    parts = [str(x) for x in loc] if isinstance(loc, list | tuple) else []
    # FastAPI's first element says where the value was, not which value it was.
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


def detail_text(detail: Any) -> str:
    """A ``detail`` as one readable line: a string as is, FastAPI's list of validation
    errors as ``"where: message; ..."``, anything else as JSON-ish text."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                where = _loc_text(item.get("loc"))
                msg = str(item.get("msg", "invalid"))
                parts.append(f"{where}: {msg}" if where else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return "" if detail is None else str(detail)


def error_from_response(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` subclass for a non-2xx ``response`` (its body already read)."""
    raw: Any = None
    text = ""
    try:
        body = response.json()
    except ValueError:
        body = None
        text = response.text.strip()[:500]
    if isinstance(body, Mapping) and "detail" in body:
        raw = body["detail"]
        text = detail_text(raw)
    elif body is not None:
        text = detail_text(body)[:500]
    if not text:
        text = response.reason_phrase or f"HTTP {response.status_code}"
    cls = _BY_STATUS.get(response.status_code, ApiError)
    request = response.request
    return cls(response.status_code, text, request.method, str(request.url), raw)


def transport_error(exc: httpx.TransportError, method: str, url: str) -> GpufleetError:
    """The client error for a request that got no HTTP answer at all."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return RequestTimedOut(url, f"{method} timed out ({reason})")
    return ConnectionFailed(url, reason)
