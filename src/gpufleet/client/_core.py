"""What the sync and async clients share: a :class:`Call` says what to send and how to read
the answer; :func:`send_kwargs` turns it into httpx arguments and :func:`decode` turns the
response into a typed result or an :class:`~gpufleet.client.errors.ApiError`. Neither client
builds a request or reads a response any other way.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from gpufleet import __version__
from gpufleet.client.errors import (
    InvalidArgument,
    UnexpectedResponse,
    error_from_response,
)
from gpufleet.client.types_analysis import ChatEvent

T = TypeVar("T")

USER_AGENT = f"gpufleet-client/{__version__}"
DEFAULT_TIMEOUT_S = 30.0

QueryValue = str | int | float | bool | Sequence[str] | None
TimeArg = str | float | int | datetime | None
"""A time the server reads: ISO 8601, epoch seconds, ``now`` or relative (``-7d``); a
``datetime`` (naive means UTC) or a number is sent as ISO 8601 / epoch seconds."""

_NO_BODY: Any = object()


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and how to read its answer.

    Attributes:
        method: HTTP method.
        path: path below the base URL, segments already quoted (see :func:`seg`).
        parse: builds the result from the decoded JSON (or the text with ``text``).
        params: query parameters; None values are left out, sequences repeat the key.
        body: JSON body (absent unless given).
        text: the answer is text (Markdown, HTML, Prometheus), not JSON.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    params: Mapping[str, QueryValue] = field(default_factory=dict)
    body: Any = _NO_BODY
    text: bool = False


def seg(value: str | int) -> str:
    """A path segment, quoted so ``/`` or ``?`` in an id cannot change the route."""
    text = str(value)
    if not text:
        raise InvalidArgument("an id in the path must not be empty")
    return quote(text, safe="")


def time_arg(value: TimeArg, name: str) -> str | None:
    """A window bound as the server reads it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        raise InvalidArgument(f"{name} must be a time, not {value!r}")
    if isinstance(value, int | float):
        return repr(float(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise InvalidArgument(
        f"{name} must be ISO 8601, epoch seconds, 'now' or relative like -7d, got {value!r}"
    )


def one_of(value: str | None, allowed: Iterable[str], name: str) -> str | None:
    """``value`` if None or among ``allowed``; otherwise an :class:`InvalidArgument`
    listing what is."""
    choices = tuple(allowed)
    if value is not None and value not in choices:
        raise InvalidArgument(f"unknown {name} {value!r}; use one of: {', '.join(choices)}")
    return value


def clean_params(params: Mapping[str, QueryValue]) -> list[tuple[str, str]]:
    """Query pairs: None left out, booleans as ``true``/``false``, sequences repeated."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif isinstance(value, str | int | float):
            out.append((key, str(value)))
        else:
            out.extend((key, str(v)) for v in value)
    return out


def client_headers(token: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    """Default headers: user agent, JSON accept, and ``Authorization: Bearer <token>``."""
    out = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token is not None:
        if not token.strip():
            raise InvalidArgument("token must not be empty (leave it None to send none)")
        out["Authorization"] = f"Bearer {token.strip()}"
    out.update(headers or {})
    return out


def send_kwargs(call: Call[Any]) -> dict[str, Any]:
    """Arguments of ``httpx.Client.request`` / ``build_request`` for ``call``."""
    kwargs: dict[str, Any] = {"method": call.method, "url": call.path}
    params = clean_params(call.params)
    if params:
        kwargs["params"] = params
    if call.body is not _NO_BODY:
        kwargs["json"] = call.body
    if call.text:
        kwargs["headers"] = {"Accept": "*/*"}
    return kwargs


def decode(call: Call[T], response: httpx.Response) -> T:
    """The typed result of a response whose body has been read.

    Raises:
        ApiError: a non-2xx status (the subclass for it), with the server's detail.
        UnexpectedResponse: a 2xx answer that cannot be read as ``call`` expects.
    """
    if not response.is_success:
        raise error_from_response(response)
    method, url = response.request.method, str(response.request.url)
    if call.text:
        return call.parse(response.text)
    try:
        data = response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise UnexpectedResponse(method, url, f"not JSON ({kind})") from None
    try:
        return call.parse(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnexpectedResponse(
            method, url, f"{type(exc).__name__}: {exc} (is it a gpufleet server?)"
        ) from exc


class SseParser:
    """Server-sent events from lines, as the WHATWG spec reads them: ``event:`` and
    ``data:`` fields (several ``data`` lines joined by newlines), ``:`` comments, a blank
    line dispatching. Each event's data is JSON (gpufleet sends nothing else)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ChatEvent | None:
        """One line (without its end); the event it completes, if any."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def close(self) -> ChatEvent | None:
        """At end of stream: an event whose blank line never came."""
        return self._dispatch()

    def _dispatch(self) -> ChatEvent | None:
        if not self._data and not self._event:
            return None
        text = "\n".join(self._data)
        event = self._event or "message"
        self._event, self._data = "", []
        try:
            data: Any = json.loads(text) if text else None
        except ValueError:
            data = text
        return ChatEvent(event, data)


def events_of(lines: Iterable[str]) -> Iterator[ChatEvent]:
    """Every event of a stream of lines."""
    parser = SseParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
    last = parser.close()
    if last is not None:
        yield last


async def aevents_of(lines: AsyncIterator[str]) -> AsyncIterator[ChatEvent]:
    """Every event of an async stream of lines (:func:`events_of`'s twin)."""
    parser = SseParser()
    async for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
    last = parser.close()
    if last is not None:
        yield last


def http_options(
    base_url: str, token: str | None, timeout_s: float, headers: Mapping[str, str] | None
) -> dict[str, Any]:
    """What both clients give their ``httpx.Client`` / ``httpx.AsyncClient``.

    Raises:
        InvalidArgument: a base URL that is not ``http(s)://host[:port][/prefix]``, or a
            timeout that is not positive.
    """
    url = httpx.URL(base_url.strip()) if isinstance(base_url, str) else None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise InvalidArgument(
            f"base_url must look like http://host:port (an agent or a hub), got {base_url!r}"
        )
    if not timeout_s > 0:
        raise InvalidArgument(f"timeout_s must be positive, got {timeout_s}")
    return {
        "base_url": str(url).rstrip("/"),
        "headers": client_headers(token, headers),
        "timeout": httpx.Timeout(timeout_s),
    }


def stream_kwargs(call: Call[Any]) -> dict[str, Any]:
    """:func:`send_kwargs` for a server-sent-event stream."""
    kwargs = send_kwargs(call)
    kwargs["headers"] = {"Accept": "text/event-stream"}
    return kwargs
