"""Observable gauges over a callable that returns named readings (``{"gpu_mem_used_bytes": ..}``).

For in-process users such as a resource manager: they already hold readings under gpufleet's
unit-suffixed names, and want them in whatever OpenTelemetry provider the application set up.
The callable is read once per export, whatever the number of gauges; a reading that is None
has no data point that time.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from gpufleet import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, Observation

__all__ = ["DEFAULT_PREFIX", "register_resource_metrics", "resource_meter", "unit_for"]

DEFAULT_PREFIX = "gpufleet.resource."
"""Prepended to each reading's key to name its gauge."""

Readings = Mapping[str, float | None]
AttributeValue = str | int | float | bool

# Unit suffixes of DESIGN.md's field names, and their UCUM units.
_UNITS: tuple[tuple[str, str], ...] = (
    ("_bytes_per_s", "By/s"),
    ("_bytes", "By"),
    ("_pct", "%"),
    ("_mhz", "MHz"),
    ("_w", "W"),
    ("_c", "Cel"),
    ("_s", "s"),
)

# The API's instrument-name syntax: a letter, then up to 254 of [A-Za-z0-9_.-/].
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-/]{0,254}$")


def unit_for(key: str) -> str:
    """The UCUM unit a reading's name says (``_bytes`` -> ``By``, ``_pct`` -> ``%``,
    ``_w`` -> ``W``, ``_c`` -> ``Cel``, ``_mhz`` -> ``MHz``, ``_s`` -> ``s``); ``1`` else."""
    for suffix, unit in _UNITS:
        if key.endswith(suffix):
            return unit
    return "1"


class _SharedRead:
    """Calls ``read`` once per export round, however many gauges ask.

    Each gauge's callback runs once per collection, so a gauge asking twice means a new
    round has begun: only then is ``read`` called again.
    """

    def __init__(self, read: Callable[[], Readings]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._value: Readings | None = None
        self._served: set[str] = set()

    def get(self, key: str) -> Readings:
        with self._lock:
            if self._value is None or key in self._served:
                self._value = dict(self._read())
                self._served = set()
            self._served.add(key)
            return self._value


def register_resource_metrics(
    meter: Meter,
    read: Callable[[], Readings],
    *,
    keys: Iterable[str] | None = None,
    prefix: str = DEFAULT_PREFIX,
    attributes: Mapping[str, AttributeValue] | None = None,
    units: Mapping[str, str] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> list[object]:
    """Register one observable gauge per reading that ``read`` returns.

    Args:
        meter: Where to register (e.g. ``metrics.get_meter_provider().get_meter(...)``, or
            :func:`resource_meter`).
        read: Returns the current readings by name; called once per export. A value of None
            (not supported, not known yet) gives no data point; a key missing from one call's
            result likewise.
        keys: The reading names to register. None: the keys of one call of ``read`` now.
        prefix: Prepended to each key to form the instrument name.
        attributes: Put on every data point (e.g. ``{"host.name": ...}``).
        units: UCUM unit per key, overriding the one :func:`unit_for` reads off its suffix.
        descriptions: Description per key.

    Returns:
        The gauges, in the order of ``keys``.

    Raises:
        ValueError: a key does not make a valid instrument name.
    """
    from opentelemetry.metrics import Observation

    names = list(keys) if keys is not None else list(read())
    for key in names:
        if not _NAME.match(prefix + key):
            raise ValueError(
                f"reading {key!r} gives the instrument name {prefix + key!r}, which is not "
                "valid: names start with a letter and hold only letters, digits, _ . - /"
            )
    shared = _SharedRead(read)
    fixed = dict(attributes or {})

    def callback_for(key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_options: CallbackOptions) -> Iterable[Observation]:
            value = shared.get(key).get(key)
            return [] if value is None else [Observation(float(value), fixed)]

        return callback

    return [
        meter.create_observable_gauge(
            prefix + key,
            callbacks=[callback_for(key)],
            unit=(units or {}).get(key, unit_for(key)),
            description=(descriptions or {}).get(key, ""),
        )
        for key in names
    ]


def resource_meter(meter_provider: object | None = None) -> Meter:
    """gpufleet's meter on ``meter_provider``, or on the global provider when None."""
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.metrics import MeterProvider

    provider = meter_provider if meter_provider is not None else otel_metrics.get_meter_provider()
    if not isinstance(provider, MeterProvider):
        raise TypeError(f"expected an opentelemetry MeterProvider, got {type(provider).__name__}")
    return provider.get_meter("gpufleet", __version__)
