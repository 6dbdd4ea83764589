"""Several resource managers sharing one budget, each told its share.

The cooperative strategy turns a limit such as ``max_gpu_memory_mb=16000`` into a budget
that every cooperative manager with the same budget shares: each member reports what it
uses, and the budget is split by weighted max-min fairness (water-filling). A member that
uses less than an even split keeps what it uses; the rest is split evenly (by weight)
between the others; while the members together stay within the budget, the spare is split
by weight too, so shares always add up to the budget. A member is over its limit only when
the members together are over budget and it uses more than its share, and then the message
says so (``share=True``).

Budgets:
- :class:`ProcessBudget` (``shared_budget(name)``): managers in one process, e.g. two models
  served side by side, each reporting its own usage through the manager's ``usage`` hook.
- :class:`MachineBudget`: processes of one user on one machine, through a JSON file under
  ``$XDG_RUNTIME_DIR/gpufleet/budgets`` (or ``/tmp/gpufleet-<uid>/budgets``) guarded by an
  ``flock``; members whose process has ended or who stopped reporting for ``stale_s`` are
  dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gpufleet.resources.limits import LIMIT_METRICS
from gpufleet.resources.strategies import Advice, Check

# Limits whose readings add up across members, so a budget of them can be split.
ADDITIVE_LIMITS = ("max_memory_mb", "max_cpu_percent", "max_gpu_memory_mb", "max_power_watts")

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Share:
    """One member's part of one budgeted limit.

    Attributes:
        limit: The limit, e.g. ``max_gpu_memory_mb``.
        share: What this member may use now.
        usage: What it reported.
        budget: The whole budget (the smallest limit any member set).
        total_usage: What all members use together.
        members: How many share it.
    """

    limit: str
    share: float
    usage: float
    budget: float
    total_usage: float
    members: int


def fair_shares(budget: float, demands: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Split ``budget`` between members by weighted max-min fairness.

    Args:
        budget: What there is.
        demands: member -> (usage, weight > 0).

    Returns:
        member -> share; the shares add up to ``budget``.
    """
    shares: dict[str, float] = {}
    active = dict(demands)
    remaining = budget
    while active:
        weight = sum(w for _, w in active.values())
        level = remaining / weight
        within = [m for m, (u, w) in active.items() if u <= level * w]
        if not within:
            for m, (_, w) in active.items():
                shares[m] = level * w
            return shares
        for m in within:
            shares[m] = active.pop(m)[0]
            remaining -= shares[m]
    # Everyone fits: share the spare by weight.
    weight = sum(w for _, w in demands.values())
    for m, (_, w) in demands.items():
        shares[m] += remaining * w / weight
    return shares


class Budget(Protocol):
    """Where cooperative members meet."""

    name: str

    def report(
        self, member: str, weight: float, usage: Mapping[str, float], limits: Mapping[str, float]
    ) -> dict[str, Share]:
        """Record what ``member`` uses and get its share of every budgeted limit."""
        ...

    def leave(self, member: str) -> None:
        """Remove ``member``; the others' shares grow at their next report."""
        ...


@dataclass
class _Member:
    weight: float
    usage: dict[str, float]
    limits: dict[str, float]
    pid: int
    seen_s: float


def _split(members: Mapping[str, _Member], member: str) -> dict[str, Share]:
    """``member``'s share of each limit every member with it budgets."""
    out: dict[str, Share] = {}
    for limit in members[member].limits:
        holders = {m: r for m, r in members.items() if limit in r.limits}
        budget = min(r.limits[limit] for r in holders.values())
        demands = {m: (max(0.0, r.usage.get(limit, 0.0)), r.weight) for m, r in holders.items()}
        shares = fair_shares(budget, demands)
        out[limit] = Share(
            limit=limit,
            share=shares[member],
            usage=demands[member][0],
            budget=budget,
            total_usage=sum(u for u, _ in demands.values()),
            members=len(holders),
        )
    return out


class ProcessBudget:
    """A budget shared by managers in this process."""

    def __init__(self, name: str, *, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._members: dict[str, _Member] = {}

    def report(
        self, member: str, weight: float, usage: Mapping[str, float], limits: Mapping[str, float]
    ) -> dict[str, Share]:
        with self._lock:
            self._members[member] = _Member(
                weight, dict(usage), dict(limits), os.getpid(), self._clock()
            )
            return _split(self._members, member)

    def leave(self, member: str) -> None:
        with self._lock:
            self._members.pop(member, None)

    def members(self) -> tuple[str, ...]:
        """Who shares it now."""
        with self._lock:
            return tuple(self._members)


_PROCESS_BUDGETS: dict[str, ProcessBudget] = {}
_PROCESS_BUDGETS_LOCK = threading.Lock()


def shared_budget(name: str = "default") -> ProcessBudget:
    """The process-wide budget called ``name`` (created on first use)."""
    with _PROCESS_BUDGETS_LOCK:
        budget = _PROCESS_BUDGETS.get(name)
        if budget is None:
            budget = _PROCESS_BUDGETS[name] = ProcessBudget(name)
        return budget


def default_budget_dir() -> Path:
    """``$XDG_RUNTIME_DIR/gpufleet/budgets``, else ``/tmp/gpufleet-<uid>/budgets``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "gpufleet" / "budgets"
    return Path("/tmp") / f"gpufleet-{os.getuid()}" / "budgets"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MachineBudget:
    """A budget shared by processes on this machine through a locked JSON file.

    Args:
        name: Letters, digits, ``_.-``; processes using the same name share.
        directory: Where the budget files live (all sharers must agree).
        stale_s: A member that has not reported for this long is dropped.
        clock: Epoch seconds.

    Raises:
        ValueError: a name that is not a plain file name.
    """

    def __init__(
        self,
        name: str = "default",
        *,
        directory: str | Path | None = None,
        stale_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _NAME.match(name):
            raise ValueError(f"budget name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        self.name = name
        self.directory = Path(directory) if directory is not None else default_budget_dir()
        self.path = self.directory / f"{name}.json"
        self.stale_s = stale_s
        self._clock = clock

    @contextlib.contextmanager
    def _locked(self) -> Any:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.directory / f"{self.name}.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, _Member]:
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        now = self._clock()
        members: dict[str, _Member] = {}
        for member, rec in (raw.get("members") or {}).items():
            try:
                m = _Member(
                    float(rec["weight"]),
                    {k: float(v) for k, v in rec["usage"].items()},
                    {k: float(v) for k, v in rec["limits"].items()},
                    int(rec["pid"]),
                    float(rec["seen_s"]),
                )
            except (KeyError, TypeError, ValueError):
                continue  # a record another version wrote badly: drop it, keep the rest
            if now - m.seen_s <= self.stale_s and _alive(m.pid):
                members[member] = m
        return members

    def _save(self, members: Mapping[str, _Member]) -> None:
        body = {
            "members": {
                m: {
                    "weight": r.weight,
                    "usage": r.usage,
                    "limits": r.limits,
                    "pid": r.pid,
                    "seen_s": r.seen_s,
                }
                for m, r in members.items()
            }
        }
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self.path)

    def report(
        self, member: str, weight: float, usage: Mapping[str, float], limits: Mapping[str, float]
    ) -> dict[str, Share]:
        with self._locked():
            members = self._load()
            members[member] = _Member(weight, dict(usage), dict(limits), os.getpid(), self._clock())
            self._save(members)
            return _split(members, member)

    def leave(self, member: str) -> None:
        with self._locked():
            members = self._load()
            if members.pop(member, None) is not None:
                self._save(members)

    def members(self) -> tuple[str, ...]:
        """Who shares it now."""
        with self._locked():
            return tuple(self._load())


class CooperativeStrategy:
    """Share budgeted limits with the other members of ``budget``; hold readings to shares.

    Args:
        budget: Where members meet (default: the process-wide budget ``default``).
        limits: The limits to budget (default: those set among :data:`ADDITIVE_LIMITS`);
            other limits are held as set.
        weight: This member's weight in the split (2 gets twice the share of 1).
        member: A name for this member (default: pid and a random suffix).
        on_share: Called with the shares whenever one changes by more than 1 % of its
            budget or the number of members changes.
    """

    name = "cooperative"

    def __init__(
        self,
        budget: Budget | None = None,
        *,
        limits: Iterable[str] | None = None,
        weight: float = 1.0,
        member: str | None = None,
        on_share: Callable[[dict[str, Share]], None] | None = None,
    ) -> None:
        if weight <= 0:
            raise ValueError("weight must be positive")
        chosen = tuple(limits) if limits is not None else ADDITIVE_LIMITS
        unknown = [x for x in chosen if x not in ADDITIVE_LIMITS]
        if unknown:
            raise ValueError(
                f"cannot budget {', '.join(unknown)}: choose from {', '.join(ADDITIVE_LIMITS)}"
            )
        self.budget = budget if budget is not None else shared_budget()
        self.budgeted = chosen
        self.weight = weight
        self.member = member or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.on_share = on_share
        self.shares: dict[str, Share] = {}

    def advise(self, check: Check) -> Advice:
        limits = {k: v for k, v in check.limits.items() if k in self.budgeted}
        if not limits:
            return Advice(check.base_interval_s)
        usage = {}
        for limit in limits:
            value = check.metrics.value(LIMIT_METRICS[limit][0])
            usage[limit] = value if value is not None else 0.0
        shares = self.budget.report(self.member, self.weight, usage, limits)
        if self.on_share is not None and self._changed(shares):
            self.on_share(dict(shares))
        self.shares = shares
        # Over its share counts only while the members together are over budget.
        thresholds = {
            limit: s.share if s.total_usage > s.budget else s.budget for limit, s in shares.items()
        }
        shared = frozenset(k for k, s in shares.items() if s.total_usage > s.budget)
        return Advice(check.base_interval_s, thresholds=thresholds, shared=shared)

    def _changed(self, shares: Mapping[str, Share]) -> bool:
        if shares.keys() != self.shares.keys():
            return True
        for limit, s in shares.items():
            old = self.shares[limit]
            if s.members != old.members or abs(s.share - old.share) > 0.01 * s.budget:
                return True
        return False

    def close(self) -> None:
        self.budget.leave(self.member)
