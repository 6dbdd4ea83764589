"""Why did a metric change between two windows? Attribute it down namespace -> user -> workload.

Both windows are read from the per-workload hourly rows (``Store.workload_usage``, prorated
to the windows), so every number is GPU-time *held by workloads*: unallocated GPU-time belongs
to no namespace and is left out, and utilization is that of held GPU-time (DESIGN.md's
time-weighted ``utilization.gpu``: ``util_sum / gpu_s``).

Contributions of the children of a node to the node's change ``after - before`` (they sum to
it exactly):

* ``gpu_hours``: a child's own change, ``g1_i - g0_i``.
* ``utilization``: the node's mean is ``U = sum_i w_i u_i`` with ``w_i`` the child's share of
  the node's GPU-time and ``u_i`` its utilization. With midpoints ``w̄_i = (w0_i + w1_i) / 2``,
  ``ū_i = (u0_i + u1_i) / 2`` and ``Ū = (U0 + U1) / 2``, the change splits exactly into

      contribution_i = (w1_i - w0_i) (ū_i - Ū)   [mix: share moved to/from a busier child]
                     + w̄_i (u1_i - u0_i)         [rate: the child itself got busier or idler]

  (the ``- Ū`` term sums to zero because the shares do, and it makes a child that gains
  share count as positive only when it is busier than the node's average). A child present
  in one window only takes the same ``u`` in both, so its whole contribution is mix. When
  the node has no GPU-time in a window its utilization change is undefined and the
  contributions are 0.

Children are ranked by contribution in the direction of the node's change (the biggest
drivers of a fall first); the top ``expand`` of them are drilled into, down ``levels``.

The earlier of the two windows must be covered by history for at least half of its span
(:func:`gpufleet.analysis.trends.history_coverage`: the part of it after the scope's GPUs were
first seen). When it is not, the tree is still built (``change`` and the contributions keep
their arithmetic) but it is not a comparison: every ``change_pct`` is None, each summary says
``not compared`` with the values only, and :attr:`DrillDown.note` (repeated in the root's
summary) says why.

Jobs: ``jobs_*`` count the distinct workloads with GPU-time in a window; ``jobs_started_*``
those of them not running in the hour before the window starts (for a window that starts
mid-hour, a job started in that first hour but before the window counts as started in it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.analysis.scope import HOUR_S, WORKLOAD_KEYS, Scope, Window, read_scope
from gpufleet.analysis.trends import history_coverage, scope_label
from gpufleet.store._gc import gc_paused
from gpufleet.store.base import Store, WorkloadUsage

DrillMetric = Literal["gpu_hours", "utilization"]
_METRICS = ("gpu_hours", "utilization")
_Job = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class DrillNode:
    """One entity (the scope, a namespace, a user or a workload) and its share of a change."""

    level: str
    """``namespace``, ``user``, ``workload``; for the root, the scope's most specific key
    (``cluster`` for the whole history)."""
    name: str
    path: str
    """``namespace/user/workload`` down to this node (the root's name for the root)."""
    before: float | None
    after: float | None
    """The metric in each window: GPU-hours, or utilization % (None without GPU-time)."""
    change: float | None
    """``after - before`` (percentage points for utilization)."""
    change_pct: float | None
    """Relative change in percent of ``before`` (None when ``before`` is 0 or missing, or the
    windows were not compared: see :attr:`DrillDown.note`)."""
    gpu_hours_before: float
    gpu_hours_after: float
    contribution: float
    """Part of the parent's change due to this node (the root: its own change, or 0)."""
    share_of_parent_change: float | None
    share_of_total_change: float | None
    """``contribution`` over the parent's / the root's change (None when that is 0)."""
    mix_effect: float | None
    rate_effect: float | None
    """Utilization only: the two terms of ``contribution`` (see the module docstring)."""
    weight_before: float | None
    weight_after: float | None
    """This node's share (0..1) of its parent's GPU-time in each window (the ``w`` of the
    module docstring; None for the root, or when the parent has no GPU-time there)."""
    jobs_before: int
    jobs_after: int
    jobs_started_before: int
    jobs_started_after: int
    child_level: str | None
    """Level of ``children``; None at the bottom, or when this node was not drilled into."""
    children: tuple[DrillNode, ...]
    """The top children, biggest drivers of the change first."""
    other_children: int
    other_contribution: float
    """How many children are not listed and what they contributed together."""
    summary: str
    """The node's numbers in one line, e.g. ``ml-team GPU-hours fell 31 % (222 -> 153);
    user_a: 12 -> 5 jobs``; ``ml-team GPU-hours (0 -> 153): not compared`` when the windows
    were not compared."""


@dataclass(frozen=True, slots=True)
class DrillDown:
    """The attribution tree of a change, and the chain of its biggest drivers."""

    before: Window
    after: Window
    scope: Scope
    metric: str
    unit: str
    """``gpu_hours`` or ``pct``."""
    levels: tuple[str, ...]
    """The levels drilled through (the scope's fixed levels left out)."""
    root: DrillNode
    path: tuple[DrillNode, ...]
    """The root, then the top contributor at each level below it."""
    history_coverage: float
    """Share (0..1) of the earlier window's span that history covers."""
    note: str
    """Why the windows were not compared (``only 2 minutes of history in the 30 days before
    ...; not compared``); empty when they were (see the module docstring)."""


@dataclass(slots=True)
class _Side:
    """One window's rows of a node."""

    rows: list[WorkloadUsage] = field(default_factory=list)
    gpu_s: float = 0.0
    util_sum: float = 0.0

    def add(self, row: WorkloadUsage) -> None:
        self.rows.append(row)
        self.gpu_s += row.gpu_s
        self.util_sum += row.util_sum

    def value(self, metric: str) -> float | None:
        if metric == "gpu_hours":
            return self.gpu_s / HOUR_S
        return self.util_sum / self.gpu_s if self.gpu_s > 0 else None

    def jobs(self) -> set[_Job]:
        return {(r.namespace, r.user, r.workload) for r in self.rows}


def _rows(store: Store, window: Window, scope: Scope) -> tuple[list[WorkloadUsage], set[_Job]]:
    """Workload rows of ``scope`` in ``window`` and the jobs running in the hour before it."""
    scoped = read_scope(store, window, scope, need_workloads=True, need_gpu_rows=False)
    first_hour = window.start_s - window.start_s % HOUR_S
    earlier = store.workload_usage(
        start_s=first_hour - HOUR_S, end_s=first_hour, cluster=scope.cluster
    )
    # Filtered here as well: a store may treat the end of the range as closed.
    running = {
        (r.namespace, r.user, r.workload)
        for r in earlier
        if first_hour - HOUR_S <= r.hour_s < first_hour
    }
    return scoped.workload_rows, running


def _verb(node: DrillNode) -> str:
    if node.before is None:
        return "had no GPU-time before"
    if node.after is None:
        return "had no GPU-time after"
    if not node.change:
        return "was unchanged"
    how = "rose" if node.change > 0 else "fell"
    return f"{how} {abs(node.change_pct):.0f} %" if node.change_pct is not None else how


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} %"


def _describe(node: DrillNode, metric: str, not_compared: str = "") -> str:
    """The node's change in words, with the jobs of its top user when it has one; only its
    values and ``not_compared`` (the reason) when the windows were not compared."""
    b, a = node.before, node.after
    if not_compared:
        if metric == "gpu_hours":
            values = f"({(b or 0.0):.0f} -> {(a or 0.0):.0f})"
            what = "GPU-hours"
        else:
            values = f"({_pct(b)} -> {_pct(a)})"
            what = "utilization"
        return f"{node.name} {what} {values}: {not_compared}"
    if metric == "gpu_hours":
        nums = f"({(b or 0.0):.0f} -> {(a or 0.0):.0f})"
        what = "GPU-hours"
    else:
        nums = (
            f"({b:.1f} % -> {a:.1f} %, {node.change:+.1f} pp)"
            if b is not None and a is not None and node.change is not None
            else f"({_pct(b)} -> {_pct(a)})"
        )
        what = "utilization"
    text = f"{node.name} {what} {_verb(node)} {nums}"
    if node.level == "user":
        text += f"; {node.jobs_started_before} -> {node.jobs_started_after} jobs started"
    users = [c for c in node.children if c.level == "user"]
    if users:
        top = users[0]
        text += f"; {top.name}: {top.jobs_started_before} -> {top.jobs_started_after} jobs"
    elif node.children:
        top = node.children[0]
        share = top.share_of_parent_change
        part = f" ({100 * share:.0f} % of the change)" if share is not None else ""
        text += f"; top {top.level}: {top.name}{part}"
    return text


@dataclass(frozen=True, slots=True)
class _Ctx:
    metric: str
    levels: tuple[str, ...]
    top: int
    expand: int
    running: tuple[set[_Job], set[_Job]]
    """Jobs running in the hour before each window (so not started in it)."""
    root_change: float | None
    note: str
    """Why the windows are not compared (see :attr:`DrillDown.note`); empty when they are."""


@dataclass(frozen=True, slots=True)
class _Part:
    """A child's contribution to its parent's change, and its utilization terms."""

    contribution: float
    parent_change: float | None
    mix: float | None = None
    rate: float | None = None


def _node(
    ctx: _Ctx,
    level: str,
    name: str,
    path: str,
    sides: tuple[_Side, _Side],
    depth: int,
    part: _Part | None,
    drill: bool,
) -> DrillNode:
    """Build a node (``part`` None for the root) and, when ``drill``, its children."""
    metric = ctx.metric
    b, a = sides[0].value(metric), sides[1].value(metric)
    change = a - b if a is not None and b is not None else None
    if part is None:
        part = _Part(change or 0.0, change)
    child_level = ctx.levels[depth] if drill and depth < len(ctx.levels) else None
    children = _children(ctx, child_level, path, sides, depth, change) if child_level else []
    jobs_b, jobs_a = sides[0].jobs(), sides[1].jobs()
    node = DrillNode(
        level=level,
        name=name,
        path=path,
        before=b,
        after=a,
        change=change,
        change_pct=(100.0 * change / abs(b) if change is not None and b and not ctx.note else None),
        gpu_hours_before=sides[0].gpu_s / HOUR_S,
        gpu_hours_after=sides[1].gpu_s / HOUR_S,
        contribution=part.contribution,
        share_of_parent_change=(
            part.contribution / part.parent_change if part.parent_change else None
        ),
        share_of_total_change=part.contribution / ctx.root_change if ctx.root_change else None,
        mix_effect=part.mix,
        rate_effect=part.rate,
        weight_before=None,
        weight_after=None,
        jobs_before=len(jobs_b),
        jobs_after=len(jobs_a),
        jobs_started_before=len(jobs_b - ctx.running[0]),
        jobs_started_after=len(jobs_a - ctx.running[1]),
        child_level=child_level,
        children=tuple(children[: ctx.top]),
        other_children=len(children[ctx.top :]),
        other_contribution=sum(c.contribution for c in children[ctx.top :]),
        summary="",
    )
    # The root says why the windows were not compared; the nodes below only that they were not.
    why = (ctx.note if depth == 0 else "not compared") if ctx.note else ""
    return replace(node, summary=_describe(node, metric, why))


def _parts(
    metric: str, groups: dict[str, tuple[_Side, _Side]], sides: tuple[_Side, _Side]
) -> dict[str, _Part]:
    """Each child's contribution to the change of the parent made of ``sides``."""
    b, a = sides[0].value(metric), sides[1].value(metric)
    change = a - b if a is not None and b is not None else None
    if metric == "gpu_hours":
        return {k: _Part((s1.gpu_s - s0.gpu_s) / HOUR_S, change) for k, (s0, s1) in groups.items()}
    if b is None or a is None:  # utilization change undefined: nothing to attribute
        return {k: _Part(0.0, None) for k in groups}
    g0, g1 = sides[0].gpu_s, sides[1].gpu_s
    out = {}
    for k, (s0, s1) in groups.items():
        c0, c1 = s0.value(metric), s1.value(metric)
        # A child in one window only keeps its utilization: all of its effect is mix.
        u0 = c0 if c0 is not None else c1
        u1 = c1 if c1 is not None else c0
        if u0 is None or u1 is None:
            continue
        mix = (s1.gpu_s / g1 - s0.gpu_s / g0) * ((u0 + u1) / 2.0 - (b + a) / 2.0)
        rate = (s0.gpu_s / g0 + s1.gpu_s / g1) / 2.0 * (u1 - u0)
        out[k] = _Part(mix + rate, change, mix, rate)
    return out


def _children(
    ctx: _Ctx,
    level: str,
    path: str,
    sides: tuple[_Side, _Side],
    depth: int,
    change: float | None,
) -> list[DrillNode]:
    groups: dict[str, tuple[_Side, _Side]] = {}
    for i, side in enumerate(sides):
        for r in side.rows:
            groups.setdefault(str(getattr(r, level)), (_Side(), _Side()))[i].add(r)
    parts = _parts(ctx.metric, groups, sides)

    # Biggest drivers in the direction of the change first; by size (GPU-time in both
    # windows) when nothing changed or nothing could be compared, and between equal drivers.
    def size(k: str) -> float:
        return groups[k][0].gpu_s + groups[k][1].gpu_s

    if change:
        sign = 1.0 if change > 0 else -1.0
        order = sorted(parts, key=lambda k: (-sign * parts[k].contribution, -size(k), k))
    else:
        order = sorted(parts, key=lambda k: (-abs(parts[k].contribution), -size(k), k))
    g0, g1 = sides[0].gpu_s, sides[1].gpu_s
    return [
        replace(
            _node(ctx, level, k, f"{path}/{k}", groups[k], depth + 1, parts[k], rank < ctx.expand),
            weight_before=groups[k][0].gpu_s / g0 if g0 > 0 else None,
            weight_after=groups[k][1].gpu_s / g1 if g1 > 0 else None,
        )
        for rank, k in enumerate(order)
    ]


def _root_name(scope: Scope, rows: Sequence[WorkloadUsage]) -> tuple[str, str]:
    """(level, name) of the root: the scope's most specific key, or the cluster."""
    for key in ("workload", "user", "namespace", "gpu_model", "gpu", "node", "cluster"):
        if getattr(scope, key) is not None:
            return key, scope_label(scope)
    clusters = sorted({r.cluster for r in rows})
    return "cluster", clusters[0] if len(clusters) == 1 else "all"


@gc_paused()
def drill_down(
    store: Store,
    before: Window,
    after: Window,
    *,
    scope: Scope = Scope(),  # noqa: B008 - Scope is frozen, a shared default is safe
    metric: DrillMetric = "gpu_hours",
    levels: Sequence[str] = WORKLOAD_KEYS,
    top: int = 5,
    expand: int = 1,
) -> DrillDown:
    """Attribute the change of ``scope``'s ``metric`` from ``before`` to ``after`` downwards.

    Args:
        store: the history.
        before: the earlier window (or any reference window).
        after: the window compared with it; changes are ``after - before``.
        scope: what to explain; levels it already fixes (a named namespace) are skipped.
        metric: ``gpu_hours`` held, or ``utilization`` of held GPU-time.
        levels: the hierarchy to walk, from ``namespace``, ``user``, ``workload``.
        top: children listed per node (the rest are summed in ``other_contribution``).
        expand: children drilled into per node, biggest drivers first.

    When history covers less than half of the earlier window, the result is no comparison:
    see the module docstring and :attr:`DrillDown.note`.

    Raises:
        HistoryQueryError: an unknown metric or level, or ``top``/``expand`` below 1.
        UnknownSubjectError: the scope has data in neither window.
        StoreError: the store cannot answer.
    """
    if metric not in _METRICS:
        raise HistoryQueryError(f"unknown metric {metric!r}; use one of: {', '.join(_METRICS)}")
    bad = [lv for lv in levels if lv not in WORKLOAD_KEYS]
    if bad or len(set(levels)) != len(levels):
        raise HistoryQueryError(
            f"levels must be distinct values of {', '.join(WORKLOAD_KEYS)}; got {list(levels)}"
        )
    if top < 1 or expand < 1:
        raise HistoryQueryError(f"top and expand must be at least 1; got {top} and {expand}")
    sides = (_Side(), _Side())
    running: list[set[_Job]] = []
    errors: list[UnknownSubjectError] = []
    for side, window in zip(sides, (before, after), strict=True):
        try:
            rows, run = _rows(store, window, scope)
        except UnknownSubjectError as exc:
            # Absent from one window is a change to or from nothing.
            rows, run = [], set()
            errors.append(exc)
        for r in rows:
            side.add(r)
        running.append(run)
    if len(errors) == 2:
        raise errors[0]
    # Only the levels below the narrowest one the scope fixes: a user's drill-down goes to
    # its workloads, not up to the namespaces it ran in.
    fixed = [WORKLOAD_KEYS.index(lv) for lv in WORKLOAD_KEYS if getattr(scope, lv) is not None]
    walk = tuple(
        lv
        for lv in levels
        if getattr(scope, lv) is None and WORKLOAD_KEYS.index(lv) > max(fixed, default=-1)
    )
    b, a = sides[0].value(metric), sides[1].value(metric)
    coverage, note = history_coverage(
        store, before if before.start_s <= after.start_s else after, scope
    )
    ctx = _Ctx(
        metric=metric,
        levels=walk,
        top=top,
        expand=expand,
        running=(running[0], running[1]),
        root_change=a - b if a is not None and b is not None else None,
        note=note,
    )
    level, name = _root_name(scope, sides[0].rows + sides[1].rows)
    root = _node(ctx, level, name, name, sides, 0, None, drill=True)
    path = [root]
    while path[-1].children:
        path.append(path[-1].children[0])
    return DrillDown(
        before=before,
        after=after,
        scope=scope,
        metric=metric,
        unit="gpu_hours" if metric == "gpu_hours" else "pct",
        levels=walk,
        root=root,
        path=tuple(path),
        history_coverage=coverage,
        note=note,
    )
