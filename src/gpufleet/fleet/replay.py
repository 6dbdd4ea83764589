"""Replay a recorded request stream onto a node inventory (``gpufleet allocate replay``).

Inputs are CSV files in the shape of public cluster traces (Alibaba's ``openb`` GPU trace):

* nodes: ``name`` (or ``sn``), ``gpu``, ``model``; optional ``cpu_milli``, ``memory_mib``,
  ``gpu_memory_mib``, ``zone``, ``weight``.
* requests: ``name``, ``num_gpu``, ``gpu_milli``; optional ``gpu_spec`` (acceptable models,
  ``|``-separated), ``cpu_milli``, ``memory_mib``, ``creation_time``, ``deletion_time``,
  ``zone``.

Requests are placed in order of ``creation_time`` (file order without it). By default
nothing departs, as in fragmentation studies that fill a cluster until requests fail; with
``departures`` a request's capacity is given back at its ``deletion_time``.

Figures (:class:`ReplayResult`): ``placed`` and ``failed`` requests, the allocated share of
all milli-GPUs when the first GPU request failed and at the end, ``fragmentation`` at the end
(:meth:`ClusterState.fragmentation`) and ``decisions_per_s`` (placement decisions, fit check
plus strategy, per second of time spent deciding).
"""

from __future__ import annotations

import csv
import heapq
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gpufleet.fleet.placement import ClusterState, NodeSpec, PlacementError, Request
from gpufleet.fleet.strategies import Strategy


class ReplayInputError(ValueError):
    """A CSV the replay cannot read; the message names the file, line and column."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    strategy: str
    nodes: int
    gpus: int
    requests: int
    placed: int
    failed: int
    allocated_gpu_fraction_at_first_failure: float | None
    """Allocated share when the first request asking for GPUs did not fit (None: none)."""
    first_failure: str | None
    allocated_gpu_fraction_final: float
    fragmentation: float
    decisions_per_s: float
    failed_by_reason: dict[str, int] = field(default_factory=dict)

    def wire(self) -> dict[str, object]:
        return {
            "strategy": self.strategy,
            "nodes": self.nodes,
            "gpus": self.gpus,
            "requests": self.requests,
            "placed": self.placed,
            "failed": self.failed,
            "failed_by_reason": dict(self.failed_by_reason),
            "allocated_gpu_fraction_at_first_failure": self.allocated_gpu_fraction_at_first_failure,
            "first_failure": self.first_failure,
            "allocated_gpu_fraction_final": self.allocated_gpu_fraction_final,
            "fragmentation": self.fragmentation,
            "decisions_per_s": self.decisions_per_s,
        }


# ---- reading --------------------------------------------------------------------------------


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ReplayInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise ReplayInputError(f"{path}: empty file (expected a header line)")
        for line, row in enumerate(reader, start=2):
            yield line, {k.strip(): (v or "").strip() for k, v in row.items() if k}


def _int(path: Path, line: int, row: dict[str, str], col: str, default: int | None) -> int | None:
    raw = row.get(col, "")
    if raw == "":
        return default
    try:
        return int(float(raw))
    except ValueError:
        raise ReplayInputError(f"{path}:{line}: {col} must be a number, got {raw!r}") from None


def read_nodes(path: Path) -> list[NodeSpec]:
    """The node inventory of a CSV (see the module docstring for the columns).

    Raises:
        ReplayInputError: a missing file or column, a bad number, a repeated name.
    """
    nodes: list[NodeSpec] = []
    seen: set[str] = set()
    for line, row in _rows(path):
        name = row.get("name") or row.get("sn") or ""
        if not name:
            raise ReplayInputError(f"{path}:{line}: a node needs a name (column name or sn)")
        if name in seen:
            raise ReplayInputError(f"{path}:{line}: node {name} is listed twice")
        seen.add(name)
        if "gpu" not in row:
            raise ReplayInputError(f"{path}: no gpu column (expected name,gpu,model)")
        try:
            weight = float(row.get("weight") or 1.0)
            nodes.append(
                NodeSpec(
                    name=name,
                    gpus=_int(path, line, row, "gpu", 0) or 0,
                    model=row.get("model", ""),
                    cpu_milli=_int(path, line, row, "cpu_milli", None),
                    memory_mib=_int(path, line, row, "memory_mib", None),
                    gpu_memory_mib=_int(path, line, row, "gpu_memory_mib", None),
                    zone=row.get("zone") or None,
                    weight=weight,
                )
            )
        except (PlacementError, ValueError) as exc:
            raise ReplayInputError(f"{path}:{line}: {exc}") from None
    if not nodes:
        raise ReplayInputError(f"{path}: no nodes")
    return nodes


def read_requests(path: Path) -> list[Request]:
    """The request stream of a CSV, in order of ``creation_time`` (stable).

    Raises:
        ReplayInputError: a missing file or column, a bad number, an impossible request.
    """
    out: list[tuple[float, int, Request]] = []
    for line, row in _rows(path):
        if "num_gpu" not in row:
            raise ReplayInputError(f"{path}: no num_gpu column (expected name,num_gpu,gpu_milli)")
        num_gpu = _int(path, line, row, "num_gpu", 1) or 0
        milli = _int(path, line, row, "gpu_milli", 1000)
        spec = tuple(s for s in row.get("gpu_spec", "").split("|") if s)
        created = float(_int(path, line, row, "creation_time", line) or 0)
        deleted = _int(path, line, row, "deletion_time", None)
        try:
            request = Request(
                name=row.get("name") or f"line-{line}",
                num_gpu=num_gpu,
                gpu_milli=1000 if milli is None else milli,
                gpu_spec=spec,
                cpu_milli=_int(path, line, row, "cpu_milli", 0) or 0,
                memory_mib=_int(path, line, row, "memory_mib", 0) or 0,
                zone=row.get("zone") or None,
                created_s=created,
                deleted_s=None if deleted is None else float(deleted),
            )
        except PlacementError as exc:
            raise ReplayInputError(f"{path}:{line}: {exc}") from None
        out.append((created, line, request))
    out.sort(key=lambda x: (x[0], x[1]))
    return [r for _, _, r in out]


# ---- replaying ------------------------------------------------------------------------------


def replay(
    nodes: Sequence[NodeSpec],
    requests: Iterable[Request],
    strategy: Strategy,
    *,
    departures: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Place ``requests`` in order onto ``nodes`` with ``strategy`` (see the module docstring).

    ``progress`` is called with the number of requests handled so far, every 1,000.
    """
    state = ClusterState(nodes)
    leaving: list[tuple[float, str]] = []
    placed = failed = handled = decisions = 0
    first_fraction: float | None = None
    first_name: str | None = None
    reasons: dict[str, int] = {}
    spent = 0.0
    seen: set[str] = set()
    clock = time.perf_counter
    for request in requests:
        if request.name in seen:
            raise ReplayInputError(f"request {request.name} appears twice in the stream")
        seen.add(request.name)
        while departures and leaving and leaving[0][0] <= request.created_s:
            state.release(heapq.heappop(leaving)[1])
        began = clock()
        candidates = state.candidates(request)
        chosen = strategy.choose(request, candidates, state) if candidates else None
        spent += clock() - began
        decisions += 1
        if chosen is None:
            failed += 1
            why = _why_not(state, request)
            reasons[why] = reasons.get(why, 0) + 1
            if first_fraction is None and request.num_gpu > 0:
                first_fraction = state.allocated_fraction()
                first_name = request.name
        else:
            state.place(chosen, request)
            placed += 1
            if departures and request.deleted_s is not None:
                heapq.heappush(leaving, (request.deleted_s, request.name))
        handled += 1
        if progress is not None and handled % 1000 == 0:
            progress(handled)
    return ReplayResult(
        strategy=strategy.name,
        nodes=len(nodes),
        gpus=sum(n.gpus for n in nodes),
        requests=handled,
        placed=placed,
        failed=failed,
        allocated_gpu_fraction_at_first_failure=first_fraction,
        first_failure=first_name,
        allocated_gpu_fraction_final=state.allocated_fraction(),
        fragmentation=state.fragmentation(),
        decisions_per_s=decisions / spent if spent > 0 else 0.0,
        failed_by_reason=dict(sorted(reasons.items())),
    )


def _why_not(state: ClusterState, request: Request) -> str:
    """A short reason a request fit nowhere (for the failure counts)."""
    if not state.eligible(request):
        return "no node of the model, zone or labels asked for"
    if request.num_gpu == 0:
        return "not enough CPU or memory"
    gpu_only = Request(
        name=request.name,
        num_gpu=request.num_gpu,
        gpu_milli=request.gpu_milli,
        gpu_spec=request.gpu_spec,
        gpu_memory_mib=request.gpu_memory_mib,
        zone=request.zone,
        strict_zone=request.strict_zone,
        labels=request.labels,
    )
    if state.candidates(gpu_only):
        return "not enough CPU or memory"
    if request.whole:
        nodes = state.eligible(request)
        if sum(state.full_free[i] for i in nodes) >= request.num_gpu:
            return "enough whole GPUs free, but not on one node"
        if sum(sum(state.free[i]) for i in nodes) >= request.num_gpu * 1000:
            return "enough capacity free, but split over partly used GPUs"
        return "not enough free GPUs"
    return "no GPU with that fraction free"


def load(nodes_csv: Path, requests_csv: Path) -> tuple[list[NodeSpec], list[Request]]:
    """Both CSVs, read and checked."""
    return read_nodes(nodes_csv), read_requests(requests_csv)


__all__ = ["ReplayInputError", "ReplayResult", "load", "read_nodes", "read_requests", "replay"]
