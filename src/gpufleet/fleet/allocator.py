"""Placing one live lease request on the fleet as the agents last reported it.

The hub builds a fresh :class:`~gpufleet.fleet.placement.ClusterState` per request from
the nodes that may take leases now (healthy, not drained, in an allowed pool), takes out
what leases already hold, blocks the GPUs the request must not get (another model, too
little memory, busy with processes the hub did not hand out, over a utilization filter,
lost), and lets the strategy choose among the nodes that fit. Pure: no store, no clock; a
few hundred nodes of eight GPUs take well under a millisecond (see the allocation bench).

When nothing fits, :class:`NoFitError` says why in numbers a user can act on: how many GPUs
each filter left out, and the most free matching GPUs any one node has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gpufleet.fleet.inventory import GpuInfo, NodeInventory, parse_capability
from gpufleet.fleet.lease_request import LeaseRequest
from gpufleet.fleet.placement import GPU_MILLI, ClusterState, NodeSpec, Request
from gpufleet.fleet.strategies import Strategy


@dataclass(frozen=True, slots=True)
class LiveNode:
    """A node that may take leases, as its agent last reported it."""

    cluster: str
    node: str
    inventory: NodeInventory
    zone: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    pool: str | None = None
    weight: float = 1.0

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.node}"


@dataclass(frozen=True, slots=True)
class Holding:
    """What one lease holds on a node (a hub lease, or one its agent reports enforcing)."""

    cluster: str
    node: str
    gpus: tuple[str, ...]
    milli_per_gpu: int = GPU_MILLI
    memory_budget_mib: int | None = None
    cpu_milli: int = 0
    memory_mib: int = 0


@dataclass(frozen=True, slots=True)
class LeasePlan:
    """Where a request goes: the node and its GPUs (index order)."""

    node: LiveNode
    gpus: tuple[GpuInfo, ...]
    milli_per_gpu: int


class NoFitError(Exception):
    """No node can take the request now; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_WHY = {
    "lost": "lost by their node",
    "model": "of another model",
    "capability": "below the compute capability asked",
    "memory": "with too little free memory",
    "budget": "without room for the memory budget",
    "utilization": "over the utilization filter",
    "busy": "busy with processes the hub did not hand out (include_busy takes them)",
}


def _has_filters(request: LeaseRequest) -> bool:
    """Whether ``request`` filters GPUs beyond lost and busy ones."""
    return bool(
        request.gpu_model
        or request.min_compute_capability is not None
        or request.gpu_memory_mib is not None
        or request.min_free_memory_mib is not None
        or request.max_gpu_utilization is not None
        or request.max_memory_utilization is not None
        or request.include_busy
    )


class _GpuFilter:
    """Why a request must not get a GPU; model and capability verdicts are memoized per
    distinct value (a fleet has few models), so a thousand nodes filter in milliseconds."""

    def __init__(self, request: LeaseRequest) -> None:
        self.request = request
        self.models = tuple(m.lower() for m in request.gpu_model)
        self._model_ok: dict[str, bool] = {}
        self._cc_ok: dict[str | None, bool] = {}

    def _model(self, name: str) -> bool:
        ok = self._model_ok.get(name)
        if ok is None:
            low = name.lower()
            ok = self._model_ok[name] = any(m in low for m in self.models)
        return ok

    def _capability(self, text: str | None) -> bool:
        ok = self._cc_ok.get(text)
        if ok is None:
            cc = parse_capability(text)
            least = self.request.min_compute_capability
            ok = self._cc_ok[text] = cc is not None and least is not None and cc >= least
        return ok

    def why_not(self, g: GpuInfo, held_milli: int, held_budget: int) -> str | None:
        """Why the request must not get GPU ``g`` (None when it may)."""
        request = self.request
        if g.lost:
            return "lost"
        if self.models and not self._model(g.name):
            return "model"
        if request.min_compute_capability is not None and not self._capability(g.cuda_capability):
            return "capability"
        free = g.mem_free_mib
        if request.gpu_memory_mib is not None:
            if request.shared:
                total = g.mem_total_mib
                if total is None or total - held_budget < request.gpu_memory_mib:
                    return "budget"
            elif free is None or free < request.gpu_memory_mib:
                return "memory"
        if request.min_free_memory_mib is not None and (
            free is None or free < request.min_free_memory_mib
        ):
            return "memory"
        if request.max_gpu_utilization is not None and (
            g.util_pct is None or g.util_pct > request.max_gpu_utilization
        ):
            return "utilization"
        if request.max_memory_utilization is not None and (
            g.mem_util_pct is None or g.mem_util_pct > request.max_memory_utilization
        ):
            return "utilization"
        if g.processes and not held_milli and not request.include_busy:
            return "busy"
        return None


def plan_lease(
    request: LeaseRequest,
    nodes: Sequence[LiveNode],
    holdings: Sequence[Holding],
    strategy: Strategy,
) -> LeasePlan:
    """Choose a node and GPUs for ``request``.

    Raises:
        NoFitError: no node has what the request asks for now.
    """
    if not nodes:
        raise NoFitError("no node can take leases now")
    if request.serves_model is not None:
        model = request.serves_model
        nodes = [n for n in nodes if any(m.name == model for m in n.inventory.models)]
        if not nodes:
            raise NoFitError(f"no node that can take leases now serves model {model!r}")
    ordered = sorted(nodes, key=lambda n: n.key)
    specs = [
        NodeSpec(
            name=n.key,
            gpus=len(n.inventory.gpus),
            cpu_milli=None if n.inventory.cpu_cores is None else n.inventory.cpu_cores * 1000,
            memory_mib=n.inventory.mem_total_mib,
            zone=n.zone,
            labels=dict(n.labels),
            weight=n.weight,
        )
        for n in ordered
    ]
    state = ClusterState(specs)
    held: dict[str, dict[str, tuple[int, int]]] = {}
    for h in holdings:
        key = f"{h.cluster}/{h.node}"
        i = state.index.get(key)
        if i is None:
            continue
        state.free_cpu[i] -= h.cpu_milli
        state.free_mem[i] -= h.memory_mib
        on_node = held.setdefault(key, {})
        for uuid in h.gpus:
            milli, budget = on_node.get(uuid, (0, 0))
            on_node[uuid] = (milli + h.milli_per_gpu, budget + (h.memory_budget_mib or 0))
    filtered = _has_filters(request)
    gpu_filter = _GpuFilter(request)
    left_out: Counter[str] = Counter()
    held_gpus = 0
    none = (0, 0)
    for i, n in enumerate(ordered):
        on_node = held.get(specs[i].name, {})
        takes = []
        for g_pos, g in enumerate(n.inventory.gpus):
            milli, budget = on_node.get(g.uuid, none) if on_node else none
            # Each GPU is counted once: under the first reason it is left out, else as held.
            if filtered or g.lost or (g.processes and not milli):
                why = gpu_filter.why_not(g, milli, budget)
                if why is not None:
                    takes.append((g_pos, GPU_MILLI))
                    left_out[why] += 1
                    continue
            if milli:
                takes.append((g_pos, milli))
                held_gpus += 1
        if takes:
            state.hold(i, takes)
    wanted = Request(
        name="request",
        num_gpu=request.gpus,
        gpu_milli=request.milli_per_gpu,
        cpu_milli=round(request.cpu_cores * 1000),
        memory_mib=request.memory_mib,
        zone=request.zone,
        strict_zone=request.strict_zone,
        labels=dict(request.labels),
    )
    candidates = state.candidates(wanted)
    if not candidates:
        raise NoFitError(_no_fit_reason(request, wanted, state, left_out, held_gpus))
    i = strategy.choose(wanted, candidates, state)
    node = ordered[i]
    positions = state.gpus_for(i, wanted)
    return LeasePlan(
        node=node,
        gpus=tuple(node.inventory.gpus[p] for p in positions),
        milli_per_gpu=request.milli_per_gpu if request.gpus else 0,
    )


def _no_fit_reason(
    request: LeaseRequest,
    wanted: Request,
    state: ClusterState,
    left_out: Counter[str],
    held_gpus: int,
) -> str:
    eligible = state.eligible(wanted)
    n_nodes = len(state.nodes)
    if not eligible:
        parts = []
        if request.strict_zone:
            parts.append(f"zone {request.zone}")
        if request.labels:
            parts.append("labels " + ", ".join(f"{k}={v}" for k, v in request.labels.items()))
        what = " and ".join(parts) or "GPUs"
        return f"none of the {n_nodes} node(s) that can take leases has {what}"
    if request.gpus == 0:
        need = "the CPU and memory asked"
    elif request.shared:
        need = f"{request.gpu_fraction:g} of a GPU free"
    else:
        need = f"{request.gpus} free matching GPU(s)"
    best_i = max(eligible, key=lambda i: state.full_free[i] if wanted.whole else state.max_free[i])
    best = state.full_free[best_i] if wanted.whole else state.max_free[best_i] / GPU_MILLI
    text = f"no node has {need}"
    if request.gpus:
        text += f"; the most on one node is {best:g} ({state.nodes[best_i].name})"
    if (request.cpu_cores or request.memory_mib) and request.gpus:
        text += " before CPU and memory are counted"
    notes = [f"{held_gpus} held by leases"] if held_gpus else []
    notes += [f"{k} {_WHY[why]}" for why, k in left_out.most_common()]
    if notes:
        total = sum(spec.gpus for spec in state.nodes)
        text += f". Of the {total} GPU(s) on those nodes, left out: {'; '.join(notes)}"
    return text
