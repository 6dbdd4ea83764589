"""Which part of the fleet an analysis covers: the same levels the server's ``scope``
takes, checked here so a misspelt level fails before any request is sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from gpufleet.client.errors import InvalidArgument

LEVELS: tuple[str, ...] = (
    "cluster",
    "node",
    "gpu",
    "namespace",
    "user",
    "workload",
    "gpu_model",
    "workload_kind",
)
"""Levels an analysis can be scoped or grouped by (the server's ``GROUP_KEYS``)."""
NODE_FILTERS: tuple[str, ...] = ("pool", "label")
"""Hub-only filters: the nodes of a pool, or those with a ``key=value`` label."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Levels to narrow an analysis to; every one optional (none: the whole fleet).

    ``gpu`` is a UUID, or an index together with ``node``; ``gpu_model`` a substring
    (``h100``); ``pool`` and ``label`` (``key=value``) only on a hub.
    """

    cluster: str | None = None
    node: str | None = None
    gpu: str | None = None
    namespace: str | None = None
    user: str | None = None
    workload: str | None = None
    gpu_model: str | None = None
    workload_kind: str | None = None
    pool: str | None = None
    label: str | None = None

    def given(self) -> dict[str, str]:
        """The levels that are set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


ScopeArg = Scope | Mapping[str, str | None] | None


def scope_of(scope: ScopeArg) -> Scope:
    """``scope`` as a :class:`Scope`; a mapping with an unknown level is refused.

    Raises:
        InvalidArgument: a key that is no level, or a value that is not a string.
    """
    if scope is None:
        return Scope()
    if isinstance(scope, Scope):
        return scope
    unknown = sorted(k for k in scope if k not in (*LEVELS, *NODE_FILTERS))
    if unknown:
        raise InvalidArgument(
            f"unknown scope level(s) {', '.join(unknown)}; use: {', '.join(LEVELS)}"
            f" (on a hub also {', '.join(NODE_FILTERS)})"
        )
    bad = sorted(k for k, v in scope.items() if v is not None and not isinstance(v, str))
    if bad:
        raise InvalidArgument(f"scope values must be strings: {', '.join(bad)}")
    return Scope(**{k: v for k, v in scope.items() if v is not None})
