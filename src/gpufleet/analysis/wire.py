"""Analysis results as JSON-ready data: one converter for the API, the CLI and reports.

Results are frozen dataclasses with epoch seconds inside (DESIGN.md "Contracts"); on the wire
times are UTC ISO 8601. :func:`to_wire` walks a result and

* turns dataclasses into dicts of their fields (properties are left out) and tuples into lists;
* renames epoch-second time fields to their wire names with an ISO 8601 value in whole UTC
  seconds (``start_s`` -> ``start``, ``ts_s`` -> ``ts``; see :data:`TIME_FIELDS` and
  :func:`iso`);
* writes a :class:`~gpufleet.analysis.scope.Window` as ``{"start", "end", "label"}`` and a
  :class:`~gpufleet.analysis.scope.Scope` with only the levels that are set;
* turns NaN and infinities into ``null`` (JSON has no such numbers) and rounds nothing.

Durations keep their ``_s`` names and values (``gpu_s``, ``elapsed_s``): only the fields listed
in :data:`TIME_FIELDS` are points in time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gpufleet.analysis.scope import Scope, Window
from gpufleet.analysis.utilization import UtilizationResult

TIME_FIELDS: Mapping[str, str] = {
    "start_s": "start",
    "end_s": "end",
    "ts_s": "ts",
    "ref_s": "ref",
    "first_ts_s": "first_ts",
    "last_ts_s": "last_ts",
    "bucket_s": "bucket",
    "generated_s": "generated_at",
    "requested_s": "requested_at",
    "finished_s": "finished_at",
}
"""Epoch-second fields that are points in time, and their names on the wire."""


def iso(ts_s: float | None) -> str | None:
    """Epoch seconds as ``2026-11-23T10:00:00Z``, in whole seconds (a fraction is dropped, as
    a clock shows it); None and non-finite values give None."""
    if ts_s is None or not math.isfinite(ts_s):
        return None
    return datetime.fromtimestamp(math.floor(ts_s), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_wire(window: Window) -> dict[str, Any]:
    """A window as ``{"start", "end", "label", "hours"}``."""
    return {
        "start": iso(window.start_s),
        "end": iso(window.end_s),
        "label": window.label(),
        "hours": window.span_s / 3600.0,
    }


def scope_wire(scope: Scope) -> dict[str, Any]:
    """The levels of ``scope`` that are set (an empty dict is the whole fleet); ``nodes`` is a
    list."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(scope):
        v = getattr(scope, f.name)
        if v:
            out[f.name] = v.split(",") if f.name == "nodes" else v
    return out


def to_wire(value: Any) -> Any:
    """``value`` as JSON-ready data (see the module docstring)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Window):
        return window_wire(value)
    if isinstance(value, Scope):
        return scope_wire(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if f.name in TIME_FIELDS and (item is None or isinstance(item, int | float)):
                out[TIME_FIELDS[f.name]] = iso(item)
            else:
                out[f.name] = to_wire(item)
        return out
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [to_wire(v) for v in items]
    raise TypeError(f"cannot put a {type(value).__name__} on the wire")


def utilization_wire(result: UtilizationResult) -> dict[str, Any]:
    """A utilization result on the wire: ``by`` is the list of groups, ``group_key`` its key.

    The shape issue 3 fixes for ``analyze utilization --json`` and the API alike: top-level
    ``mean_gpu_util_pct``, ``idle_fraction``, ``gpu_hours``, ``idle_gpu_hours``, ``samples``,
    and ``by`` as ``[{key, mean_gpu_util_pct, idle_fraction, gpu_hours, idle_gpu_hours, ...}]``
    (empty without a group-by key).
    """
    out: dict[str, Any] = to_wire(result)
    out["group_key"] = out.pop("by")
    out["by"] = out.pop("groups")
    return out
