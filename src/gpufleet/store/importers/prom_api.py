"""A small client for Prometheus's HTTP API (``/api/v1/series`` and ``/api/v1/query_range``).

Every failure (unreachable server, an HTTP error, a body that is not the API's JSON
envelope, ``"status": "error"``) becomes an :class:`ImportFailedError` naming the URL and
what to check, so a wrong ``--url`` reads as such rather than as a traceback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from gpufleet.store.importers.report import ImportFailedError

MAX_POINTS_PER_SERIES = 11_000
"""Prometheus refuses a range query whose ``(end - start) / step`` exceeds this."""

REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series of a range query: its labels and its ``(ts_s, value)`` points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


class PrometheusApi:
    """Queries one Prometheus server; warnings it returns are collected in ``warnings``."""

    def __init__(self, url: str, transport: httpx.BaseTransport | None = None) -> None:
        """Prepare a client for the server at ``url`` (its root, e.g. http://host:9090)."""
        self.url = url.rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ImportFailedError(
                f"Prometheus URL {url!r} must start with http:// or https:// "
                "(e.g. http://localhost:9090)"
            )
        self.warnings: list[str] = []
        self._client = httpx.Client(transport=transport, timeout=REQUEST_TIMEOUT_S)

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def series_count(self, match: str, start_s: float, end_s: float) -> int:
        """Distinct series matching ``match`` with samples in ``[start_s, end_s]``."""
        data = self._get(
            "/api/v1/series", {"match[]": match, "start": _num(start_s), "end": _num(end_s)}
        )
        if not isinstance(data, list):
            raise self._malformed("/api/v1/series", "data is not a list")
        return len(data)

    def query_range(
        self, query: str, start_s: float, end_s: float, step_s: float
    ) -> list[RangeSeries]:
        """Evaluate ``query`` at ``start_s, start_s + step_s, ... <= end_s``.

        Non-finite values (NaN, +Inf) are kept; the caller decides what they mean.

        Raises:
            ImportFailedError: more than :data:`MAX_POINTS_PER_SERIES` steps (a caller bug),
                or any failure of the request.
        """
        if (end_s - start_s) / step_s > MAX_POINTS_PER_SERIES:
            raise ImportFailedError(
                f"a range query of {(end_s - start_s) / step_s:.0f} steps exceeds "
                f"Prometheus's limit of {MAX_POINTS_PER_SERIES} points per series"
            )
        params = {
            "query": query,
            "start": _num(start_s),
            "end": _num(end_s),
            "step": _num(step_s),
        }
        data = self._get("/api/v1/query_range", params)
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            raise self._malformed("/api/v1/query_range", "the result is not a matrix")
        out: list[RangeSeries] = []
        try:
            for item in data["result"]:
                labels = {str(k): str(v) for k, v in item["metric"].items()}
                points = [(float(ts), float(value)) for ts, value in item.get("values", ())]
                out.append(RangeSeries(labels, points))
        except (KeyError, TypeError, ValueError) as exc:
            raise self._malformed(
                "/api/v1/query_range", f"unexpected series shape ({exc})"
            ) from exc
        return out

    def _get(self, path: str, params: dict[str, str]) -> Any:
        where = f"{self.url}{path}"
        try:
            response = self._client.get(where, params=params)
        except httpx.TimeoutException as exc:
            raise ImportFailedError(
                f"Prometheus at {self.url} did not answer within {REQUEST_TIMEOUT_S:g} s "
                f"({type(exc).__name__}); import a shorter range or a larger step"
            ) from exc
        except httpx.HTTPError as exc:
            raise ImportFailedError(
                f"cannot reach Prometheus at {self.url}: {exc}; check the URL "
                "(e.g. http://localhost:9090) and that Prometheus is running"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            hint = (
                "it needs credentials, which the importer does not send"
                if response.status_code in (401, 403)
                else "check that the URL is the Prometheus server's root, the address "
                "whose /api/v1/query_range answers"
            )
            raise ImportFailedError(
                f"{where} answered HTTP {response.status_code} without a Prometheus API "
                f"response: {hint}"
            )
        if body["status"] != "success":
            raise ImportFailedError(
                f"Prometheus at {self.url} refused {path} (HTTP {response.status_code}, "
                f"{body.get('errorType', 'error')}): {body.get('error', 'no reason given')}; "
                "check the start, end and step of the import"
            )
        self.warnings.extend(str(w) for w in body.get("warnings") or ())
        return body.get("data")

    def _malformed(self, path: str, what: str) -> ImportFailedError:
        return ImportFailedError(
            f"{self.url}{path} answered with an unexpected body ({what}); is it a "
            "Prometheus-compatible server?"
        )


def _num(value: float) -> str:
    # Prometheus takes float seconds; repr keeps sub-second steps exact.
    if not math.isfinite(value):
        raise ImportFailedError(f"times and steps must be finite numbers, not {value}")
    return repr(float(value))
