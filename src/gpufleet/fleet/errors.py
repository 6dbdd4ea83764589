"""The hub's refusals: what the API turns into 401/403 and 4xx answers with a ``detail``."""

from __future__ import annotations


class AuthError(Exception):
    """A call without a valid token (401) or without the scope it needs (403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class HubRequestError(ValueError):
    """A request that cannot be done as asked (422/404/409); the message says what to fix."""

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
