"""Reading gpufleet's JSON into typed results: small coercions shared by every result type.

A missing required key or a value of the wrong kind raises ``KeyError`` / ``TypeError`` /
``ValueError``; the request runner turns those into
:class:`~gpufleet.client.errors.UnexpectedResponse`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, KeysView, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

Json = Mapping[str, Any]


def obj(value: Any) -> Json:
    """``value`` as a JSON object (an empty one for null)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def opt_float(value: Any) -> float | None:
    """A number or null (``True``/``False`` are not numbers here)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def num(value: Any) -> float:
    """A required number."""
    out = opt_float(value)
    if out is None:
        raise TypeError("expected a number, got null")
    return out


def opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value)


def integer(value: Any) -> int:
    out = opt_int(value)
    if out is None:
        raise TypeError("expected an integer, got null")
    return out


def opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def strs(value: Any) -> tuple[str, ...]:
    """A list of strings (null: empty)."""
    return tuple(str(v) for v in (value or ()))


def floats(value: Any) -> tuple[float, ...]:
    return tuple(num(v) for v in (value or ()))


def many(value: Any, build: Callable[[Json], T]) -> tuple[T, ...]:
    """Each object of a JSON list built with ``build`` (null: empty)."""
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(f"expected a JSON list, got {type(value).__name__}")
    return tuple(build(obj(v)) for v in value)


def opt_ts(value: Any) -> float | None:
    """An ISO 8601 timestamp of the wire (or epoch seconds) as epoch seconds; null: None."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:  # the wire is UTC (DESIGN.md) even where it forgets to say so
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def ts(value: Any) -> float:
    """A required timestamp as epoch seconds."""
    out = opt_ts(value)
    if out is None:
        raise TypeError("expected a timestamp, got null")
    return out


class JsonKeys:
    """Lets a result with ``.raw`` be read like the JSON it came from: ``result["key"]``,
    ``"key" in result``, ``result.get("key")``, ``result.keys()`` and iterating its keys,
    for code written against the plain dicts seed 000 describes. The typed fields stay the
    way to read it; these give the server's JSON exactly as sent."""

    __slots__ = ()
    raw: Json

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __contains__(self, key: object) -> bool:
        return key in self.raw

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def keys(self) -> KeysView[str]:
        return self.raw.keys()
