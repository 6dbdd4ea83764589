"""What exists in the store: the names a question can mention, and the options a
clarification offers (seed 001, scenarios 5 and 6).

A :class:`Catalog` is read once per question from the inventory and the workload rows of a
window; the language layer matches words against it, so it only ever recognizes (and
offers) clusters, namespaces, users, workloads, nodes and GPU models that have data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from gpufleet.analysis.scope import model_name
from gpufleet.store.base import Store

DIMENSION_KEYS: tuple[str, ...] = ("namespace", "user", "workload", "workload_kind", "node")
"""Keys a question can filter or group by besides cluster and GPU model (the attribution
hierarchy, the workload's kind, the machine)."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """Names with data, each list ordered by GPU-hours in the window (busiest first)."""

    clusters: tuple[str, ...]
    nodes: tuple[str, ...]
    gpu_models: tuple[str, ...]
    namespaces: tuple[str, ...]
    users: tuple[str, ...]
    workloads: tuple[str, ...]
    workload_kinds: tuple[str, ...]
    start_s: float
    end_s: float
    namespace_of_user: dict[str, str] = field(default_factory=dict)
    """The namespace each user spent most GPU-time in (for "what about user_a?")."""

    def values(self, level: str) -> tuple[str, ...]:
        """The names of one level (``cluster``, ``namespace``, ...)."""
        return {
            "cluster": self.clusters,
            "node": self.nodes,
            "gpu_model": self.gpu_models,
            "namespace": self.namespaces,
            "user": self.users,
            "workload": self.workloads,
            "workload_kind": self.workload_kinds,
        }[level]


def read_catalog(
    store: Store,
    start_s: float,
    end_s: float,
    cluster: str | None = None,
    *,
    namespace: str | None = None,
    user: str | None = None,
) -> Catalog:
    """The names with data in ``[start_s, end_s)`` (GPUs: seen in it; workloads: ran in it);
    with ``namespace`` / ``user``, the users and workloads of that namespace / user only."""
    inventory = [
        g for g in store.inventory() if g.first_seen_s < end_s and g.last_seen_s >= start_s - 3600.0
    ]
    clusters = Counter(g.cluster for g in inventory)
    if cluster is not None:
        inventory = [g for g in inventory if g.cluster == cluster]
    rows = [
        r
        for r in store.workload_usage_totals(start_s=start_s, end_s=end_s, cluster=cluster)
        if (namespace is None or r.namespace == namespace) and (user is None or r.user == user)
    ]
    ns: dict[str, float] = {}
    users: dict[str, float] = {}
    workloads: dict[str, float] = {}
    kinds: dict[str, float] = {}
    user_ns: dict[str, dict[str, float]] = {}
    for r in rows:
        _add(ns, r.namespace, r.gpu_s)
        _add(users, r.user, r.gpu_s)
        _add(workloads, r.workload, r.gpu_s)
        if r.workload_kind:
            _add(kinds, r.workload_kind, r.gpu_s)
        _add(user_ns.setdefault(r.user, {}), r.namespace, r.gpu_s)
    return Catalog(
        clusters=tuple(sorted(clusters)),
        nodes=tuple(sorted({g.node for g in inventory})),
        gpu_models=tuple(sorted({model_name(g) for g in inventory})),
        namespaces=_ranked(ns),
        users=_ranked(users),
        workloads=_ranked(workloads),
        workload_kinds=_ranked(kinds),
        start_s=start_s,
        end_s=end_s,
        namespace_of_user={u: _ranked(c)[0] for u, c in user_ns.items()},
    )


def _add(totals: dict[str, float], key: str, value: float) -> None:
    totals[key] = totals.get(key, 0.0) + value


def _ranked(counts: dict[str, float]) -> tuple[str, ...]:
    return tuple(k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
