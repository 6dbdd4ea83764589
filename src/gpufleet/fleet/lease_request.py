"""An allocation request as the hub takes it (``POST /fleet/v1/leases``), read and checked.

Every field is optional but the meaning is exact:

* ``gpus`` (default 1): whole GPUs, all on one node. ``gpu_fraction`` (0 < f < 1, with
  ``gpus`` 1) asks for a share of one GPU instead: shared mode, with ``gpu_memory_mib`` as
  the memory budget. Sharing is by budget, not isolation: nothing stops a process from using
  more (see the README).
* ``gpu_memory_mib``: for whole GPUs, the least memory each GPU must have free now; for a
  fraction, the budget, which must fit beside the budgets already given out on that GPU.
* ``gpu_model``: acceptable models, each matched as a case-insensitive part of the GPU's name
  (``"H100"`` matches ``"NVIDIA H100 80GB HBM3"``); ``min_compute_capability`` (``"8.0"``).
* ``cpu_cores``, ``memory_mib``: host resources held beside the GPUs.
* ``zone`` (a preference; ``strict_zone`` makes it a requirement), ``labels`` (all must
  match), ``pool``.
* Filters as nvitop's ``select_devices``: ``min_free_memory_mib``, ``max_gpu_utilization``,
  ``max_memory_utilization`` (percent, from the agent's last reading). A GPU running
  processes the hub did not hand out is busy and is not given out, unless ``include_busy``.
* ``serves_model``: only nodes that serve this model (their agents' ``--model-server``).
* ``priority``, ``ttl_s`` (default 3600 s, 10 s to 7 days), ``strategy`` (the hub's default
  when absent), ``holder`` (who holds it; the token's name when absent), ``request_id``: a
  retry with the same id returns the lease the first call made instead of a second lease.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpufleet.fleet.inventory import parse_capability
from gpufleet.fleet.placement import GPU_MILLI
from gpufleet.fleet.strategies import STRATEGIES

DEFAULT_TTL_S = 3600.0
MIN_TTL_S = 10.0
MAX_TTL_S = 7 * 86400.0
MAX_GPUS = 64

_FIELDS = frozenset(
    {
        "request_id",
        "holder",
        "gpus",
        "gpu_fraction",
        "gpu_memory_mib",
        "gpu_model",
        "min_compute_capability",
        "cpu_cores",
        "memory_mib",
        "zone",
        "strict_zone",
        "labels",
        "pool",
        "priority",
        "ttl_s",
        "strategy",
        "min_free_memory_mib",
        "max_gpu_utilization",
        "max_memory_utilization",
        "include_busy",
        "serves_model",
    }
)


class LeaseRequestError(ValueError):
    """A request that cannot be read as given; the message names the field and the fix."""


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    gpus: int = 1
    gpu_fraction: float | None = None
    gpu_memory_mib: int | None = None
    gpu_model: tuple[str, ...] = ()
    min_compute_capability: tuple[int, int] | None = None
    cpu_cores: float = 0.0
    memory_mib: int = 0
    zone: str | None = None
    strict_zone: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    pool: str | None = None
    priority: int = 0
    ttl_s: float = DEFAULT_TTL_S
    strategy: str | None = None
    min_free_memory_mib: int | None = None
    max_gpu_utilization: float | None = None
    max_memory_utilization: float | None = None
    include_busy: bool = False
    serves_model: str | None = None
    """Only nodes whose model servers serve this model (as listed for model routing)."""
    holder: str | None = None
    request_id: str | None = None

    @property
    def milli_per_gpu(self) -> int:
        if self.gpu_fraction is None:
            return GPU_MILLI
        return max(1, round(self.gpu_fraction * GPU_MILLI))

    @property
    def shared(self) -> bool:
        return self.gpu_fraction is not None


def _number(body: Mapping[str, Any], key: str, *, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise LeaseRequestError(f"{key} must be a number, got {value!r}")
    if not low <= value <= high:
        raise LeaseRequestError(f"{key} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _whole(body: Mapping[str, Any], key: str, *, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise LeaseRequestError(f"{key} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise LeaseRequestError(f"{key} must be between {low} and {high}, got {value!r}")
    return value


def _text(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise LeaseRequestError(f"{key} must be a non-empty string of at most 200 characters")
    return value.strip()


def _flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise LeaseRequestError(f"{key} must be true or false, got {value!r}")
    return value


def lease_request_from_wire(body: Mapping[str, Any]) -> LeaseRequest:
    """Read a request body.

    Raises:
        LeaseRequestError: an unknown field, a value of the wrong type or out of range, or
            fields that do not go together (a fraction of more than one GPU).
    """
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise LeaseRequestError(
            f"unknown field(s) {', '.join(unknown)}; "
            f"a request may carry: {', '.join(sorted(_FIELDS))}"
        )
    gpus = _whole(body, "gpus", low=0, high=MAX_GPUS)
    gpus = 1 if gpus is None else gpus
    fraction = _number(body, "gpu_fraction", low=0.0, high=1.0)
    if fraction is not None:
        if fraction <= 0.0:
            raise LeaseRequestError("gpu_fraction must be above 0")
        if fraction >= 1.0:
            fraction = None  # a whole GPU
        elif gpus != 1:
            raise LeaseRequestError(
                f"gpu_fraction is a share of one GPU: ask for gpus 1, not {gpus}"
            )
    models = body.get("gpu_model")
    if isinstance(models, str):
        models = [models]
    if models is not None and (
        not isinstance(models, list) or not all(isinstance(m, str) and m.strip() for m in models)
    ):
        raise LeaseRequestError("gpu_model must be a model name or a list of them")
    capability = body.get("min_compute_capability")
    cc = None
    if capability is not None:
        cc = parse_capability(str(capability))
        if cc is None:
            raise LeaseRequestError(
                f"min_compute_capability must read like 8.0 or 9.0, got {capability!r}"
            )
    labels = body.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise LeaseRequestError("labels must be an object of string keys and string values")
    strategy = _text(body, "strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise LeaseRequestError(
            f"unknown strategy {strategy!r}; use one of: {', '.join(STRATEGIES)}"
        )
    strict = _flag(body, "strict_zone")
    zone = _text(body, "zone")
    if strict and zone is None:
        raise LeaseRequestError("strict_zone needs a zone")
    ttl = _number(body, "ttl_s", low=MIN_TTL_S, high=MAX_TTL_S)
    return LeaseRequest(
        gpus=gpus,
        gpu_fraction=fraction,
        gpu_memory_mib=_whole(body, "gpu_memory_mib", low=1, high=1 << 30),
        gpu_model=tuple(m.strip() for m in models or ()),
        min_compute_capability=cc,
        cpu_cores=_number(body, "cpu_cores", low=0.0, high=100_000.0) or 0.0,
        memory_mib=_whole(body, "memory_mib", low=0, high=1 << 40) or 0,
        zone=zone,
        strict_zone=strict,
        labels=dict(labels),
        pool=_text(body, "pool"),
        priority=_whole(body, "priority", low=-1000, high=1000) or 0,
        ttl_s=DEFAULT_TTL_S if ttl is None else ttl,
        strategy=strategy,
        min_free_memory_mib=_whole(body, "min_free_memory_mib", low=0, high=1 << 30),
        max_gpu_utilization=_number(body, "max_gpu_utilization", low=0.0, high=100.0),
        max_memory_utilization=_number(body, "max_memory_utilization", low=0.0, high=100.0),
        include_busy=_flag(body, "include_busy"),
        serves_model=_text(body, "serves_model"),
        holder=_text(body, "holder"),
        request_id=_text(body, "request_id"),
    )
