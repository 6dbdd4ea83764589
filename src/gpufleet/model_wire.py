"""Records of :mod:`gpufleet.model` as JSON-ready dicts and back, checked field by field.

This is how a sample travels from an agent to a hub: ``snapshot_to_wire`` gives plain dicts,
lists, numbers, strings and None; ``snapshot_from_wire`` rebuilds the frozen records and
refuses anything that is not exactly their shape (an unknown field, a string where a number
belongs, a missing required field), naming the place (``gpus[3].processes[0].pid``) so a
bad batch is rejected with a reason instead of being stored wrong. Stdlib only, like
``model`` (agents push from machines without the web stack).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from gpufleet.model import Snapshot

T = TypeVar("T")


class WireError(ValueError):
    """A wire record that is not the shape of its model record; the message says where."""


def to_wire(record: object) -> dict[str, Any]:
    """A model record as a dict of JSON values (tuples become lists)."""
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError(f"not a model record: {record!r}")
    return dataclasses.asdict(record)


def snapshot_to_wire(snapshot: Snapshot) -> dict[str, Any]:
    """``snapshot`` as a JSON-ready dict (see :func:`snapshot_from_wire`)."""
    return to_wire(snapshot)


def snapshot_from_wire(data: object) -> Snapshot:
    """The :class:`~gpufleet.model.Snapshot` ``data`` describes.

    Raises:
        WireError: ``data`` is not a snapshot's shape; the message names the field.
    """
    return from_wire(Snapshot, data)


def from_wire(cls: type[T], data: object, where: str = "") -> T:
    """Rebuild the model record ``cls`` from ``data`` (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise WireError(f"{where or 'record'}: expected an object, got {_kind(data)}")
    fields = _fields(typing.cast(type, cls))
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise WireError(f"{where or 'record'}: unknown field(s) {', '.join(map(str, unknown))}")
    values: dict[str, Any] = {}
    for name, (hint, required) in fields.items():
        at = f"{where}.{name}" if where else name
        if name not in data:
            if required:
                raise WireError(f"{at}: missing")
            continue
        values[name] = _value(hint, data[name], at)
    return cls(**values)


@cache
def _fields(cls: type) -> dict[str, tuple[Any, bool]]:
    """Each field's resolved type and whether it has no default."""
    hints = get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out[f.name] = (hints[f.name], required)
    return out


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _value(hint: Any, value: object, at: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise WireError(f"{at}: must not be null")
        (inner,) = [o for o in options if o is not type(None)]
        return _value(inner, value, at)
    if value is None:
        raise WireError(f"{at}: must not be null")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise WireError(f"{at}: expected a list, got {_kind(value)}")
        (item, _) = get_args(hint)
        return tuple(_value(item, v, f"{at}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(hint):
        return from_wire(typing.cast(type, hint), value, at)
    if hint is bool:
        if not isinstance(value, bool):
            raise WireError(f"{at}: expected true or false, got {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise WireError(f"{at}: expected an integer, got {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WireError(f"{at}: expected a number, got {_kind(value)}")
        if not math.isfinite(value):
            raise WireError(f"{at}: must be a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise WireError(f"{at}: expected a string, got {_kind(value)}")
        return value
    raise TypeError(f"{at}: no wire form for {hint!r}")  # a model field of a new type
