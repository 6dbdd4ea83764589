"""Where a GPU request fits: the node inventory, what is free on it, and placing requests.

The allocation engine is a pure library (no I/O, no clock): the hub uses it for live leases
and ``gpufleet allocate replay`` for a recorded request stream. Capacity is counted in
**milli-GPUs** (1000 = one whole GPU), as public cluster traces do, so a fractional request
(``gpu_milli`` < 1000, one GPU, shared mode) and whole-GPU requests use one ledger.

A request fits a node when the node's model is acceptable (``gpu_spec``), its zone and labels
match, it has the CPU and memory asked for (where the inventory records them), and either
``num_gpu`` wholly free GPUs (whole-GPU requests) or one GPU with ``gpu_milli`` free
(fractional ones). Which node among those that fit is the strategy's choice
(:mod:`gpufleet.fleet.strategies`); on the node, whole-GPU requests take the lowest-indexed
free GPUs and a fractional request takes the GPU with the least room that still fits it
(so whole GPUs stay whole).

Fractional placement shares a GPU by a memory and time budget that the GPU does not enforce:
it is not isolation (see the README).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

GPU_MILLI = 1000
"""One whole GPU in milli-GPUs."""


class PlacementError(ValueError):
    """A node or request that cannot be used as given; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node of the inventory: its GPUs and, where known, CPU and memory."""

    name: str
    gpus: int
    model: str = ""
    cpu_milli: int | None = None
    """CPU in milli-cores; None when the inventory does not say (then never a limit)."""
    memory_mib: int | None = None
    gpu_memory_mib: int | None = None
    """Memory of each GPU, for requests with a per-GPU memory minimum."""
    zone: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    weight: float = 1.0
    """For the ``weighted`` strategy: a node of weight 2 gets twice the requests of weight 1."""

    def __post_init__(self) -> None:
        if not self.name:
            raise PlacementError("a node needs a name")
        if self.gpus < 0:
            raise PlacementError(f"node {self.name}: gpus must be 0 or more, got {self.gpus}")
        if self.weight <= 0:
            raise PlacementError(f"node {self.name}: weight must be above 0, got {self.weight}")


@dataclass(frozen=True, slots=True)
class Request:
    """What a request asks for (seed 003's allocation request, trace columns' names)."""

    name: str
    num_gpu: int = 1
    gpu_milli: int = GPU_MILLI
    """Per GPU: 1000 for whole GPUs; less for a fraction of one GPU (``num_gpu`` 1)."""
    gpu_spec: tuple[str, ...] = ()
    """Acceptable GPU models (any when empty)."""
    cpu_milli: int = 0
    memory_mib: int = 0
    gpu_memory_mib: int | None = None
    """Minimum memory of each GPU."""
    zone: str | None = None
    strict_zone: bool = False
    """Only ``zone`` (else ``zone`` is a preference, for the ``geographic`` strategy)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
    created_s: float = 0.0
    deleted_s: float | None = None

    def __post_init__(self) -> None:
        if self.num_gpu < 0:
            raise PlacementError(f"request {self.name}: num_gpu must be 0 or more")
        if not 0 <= self.gpu_milli <= GPU_MILLI:
            raise PlacementError(
                f"request {self.name}: gpu_milli must be 0..{GPU_MILLI}, got {self.gpu_milli}"
            )
        if self.num_gpu > 1 and self.gpu_milli != GPU_MILLI:
            raise PlacementError(
                f"request {self.name}: a fraction of a GPU ({self.gpu_milli} milli) is for one "
                f"GPU; {self.num_gpu} GPUs must be whole (gpu_milli {GPU_MILLI})"
            )
        if self.cpu_milli < 0 or self.memory_mib < 0:
            raise PlacementError(f"request {self.name}: cpu_milli and memory_mib must be >= 0")

    @property
    def gpu_demand_milli(self) -> int:
        """Milli-GPUs the request takes when placed."""
        if self.num_gpu == 0:
            return 0
        return self.num_gpu * self.gpu_milli if self.whole else self.gpu_milli

    @property
    def whole(self) -> bool:
        return self.gpu_milli == GPU_MILLI or self.num_gpu == 0


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a request went: the node, its GPUs by index and the milli-GPUs taken of each."""

    request: str
    node: str
    gpu_indices: tuple[int, ...]
    milli_per_gpu: int


class ClusterState:
    """Free capacity of every node, updated as requests are placed and released.

    Per node it keeps the free milli of each GPU, the count of wholly free GPUs and the most
    free milli on any one GPU, so that checking whether a request fits is two list lookups.
    """

    def __init__(self, nodes: Sequence[NodeSpec]) -> None:
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise PlacementError(f"node names must be unique; repeated: {', '.join(dup[:5])}")
        self.nodes = list(nodes)
        self.index = {n.name: i for i, n in enumerate(self.nodes)}
        self.free: list[list[int]] = [[GPU_MILLI] * n.gpus for n in self.nodes]
        self.full_free: list[int] = [n.gpus for n in self.nodes]
        self.max_free: list[int] = [GPU_MILLI if n.gpus else 0 for n in self.nodes]
        inf = 1 << 62
        self.free_cpu: list[int] = [inf if n.cpu_milli is None else n.cpu_milli for n in nodes]
        self.free_mem: list[int] = [inf if n.memory_mib is None else n.memory_mib for n in nodes]
        self.total_milli = sum(n.gpus for n in self.nodes) * GPU_MILLI
        self.used_milli = 0
        self.node_used: list[int] = [0] * len(self.nodes)
        self.placements: dict[str, Placement] = {}
        self._held: dict[str, tuple[int, int]] = {}
        """CPU and memory each placed request holds, to give back on release."""
        self._static: dict[tuple[object, ...], list[int]] = {}

    # ---- what fits --------------------------------------------------------------------------

    def eligible(self, request: Request) -> list[int]:
        """Nodes whose fixed properties suit ``request`` (model, zone, labels, GPU memory),
        cached per distinct combination: a request stream has few."""
        key = (
            request.gpu_spec,
            request.zone if request.strict_zone else None,
            tuple(sorted(request.labels.items())),
            request.gpu_memory_mib,
            request.num_gpu > 0,
        )
        found = self._static.get(key)
        if found is None:
            spec = {s.lower() for s in request.gpu_spec}
            found = [
                i
                for i, n in enumerate(self.nodes)
                if (not spec or n.model.lower() in spec)
                and (not request.strict_zone or n.zone == request.zone)
                and all(n.labels.get(k) == v for k, v in request.labels.items())
                and (
                    request.gpu_memory_mib is None
                    or (n.gpu_memory_mib is not None and n.gpu_memory_mib >= request.gpu_memory_mib)
                )
                and (request.num_gpu == 0 or n.gpus > 0)
            ]
            self._static[key] = found
        return found

    def candidates(self, request: Request) -> list[int]:
        """Indices of the nodes ``request`` fits on now."""
        nodes = self.eligible(request)
        cpu, mem = request.cpu_milli, request.memory_mib
        fc, fm = self.free_cpu, self.free_mem
        if request.num_gpu == 0:
            return [i for i in nodes if fc[i] >= cpu and fm[i] >= mem]
        if request.whole:
            need, ff = request.num_gpu, self.full_free
            if cpu or mem:
                return [i for i in nodes if ff[i] >= need and fc[i] >= cpu and fm[i] >= mem]
            return [i for i in nodes if ff[i] >= need]
        need, mf = request.gpu_milli, self.max_free
        if cpu or mem:
            return [i for i in nodes if mf[i] >= need and fc[i] >= cpu and fm[i] >= mem]
        return [i for i in nodes if mf[i] >= need]

    def gpus_for(self, i: int, request: Request) -> tuple[int, ...]:
        """The GPUs of node ``i`` that ``request`` would take (it must fit)."""
        free = self.free[i]
        if request.num_gpu == 0:
            return ()
        if request.whole:
            return tuple([g for g, f in enumerate(free) if f == GPU_MILLI][: request.num_gpu])
        need = request.gpu_milli
        best = min((f, g) for g, f in enumerate(free) if f >= need)
        return (best[1],)

    # ---- changes ------------------------------------------------------------------------------

    def place(self, i: int, request: Request) -> Placement:
        """Take ``request``'s capacity on node ``i``.

        Raises:
            PlacementError: the request is already placed, or does not fit node ``i``.
        """
        if request.name in self.placements:
            raise PlacementError(f"request {request.name} is already placed")
        if i not in self.candidates(request):
            raise PlacementError(f"request {request.name} does not fit on {self.nodes[i].name}")
        gpus = self.gpus_for(i, request)
        milli = request.gpu_milli if request.num_gpu else 0
        for g in gpus:
            self.free[i][g] -= milli
        self._refresh(i)
        self.free_cpu[i] -= request.cpu_milli
        self.free_mem[i] -= request.memory_mib
        taken = milli * len(gpus)
        self.used_milli += taken
        self.node_used[i] += taken
        placed = Placement(request.name, self.nodes[i].name, gpus, milli)
        self.placements[request.name] = placed
        self._held[request.name] = (request.cpu_milli, request.memory_mib)
        return placed

    def release(self, name: str) -> Placement | None:
        """Give back a placed request's capacity (None when it is not placed: idempotent)."""
        placed = self.placements.pop(name, None)
        if placed is None:
            return None
        i = self.index[placed.node]
        for g in placed.gpu_indices:
            self.free[i][g] += placed.milli_per_gpu
        self._refresh(i)
        cpu, mem = self._held.pop(name)
        self.free_cpu[i] += cpu
        self.free_mem[i] += mem
        taken = placed.milli_per_gpu * len(placed.gpu_indices)
        self.used_milli -= taken
        self.node_used[i] -= taken
        return placed

    def hold(self, i: int, takes: Sequence[tuple[int, int]]) -> None:
        """Take ``(gpu, milli)`` pairs of node ``i`` outside any placement: leases placed
        earlier, or GPUs busy with work the engine did not place (``GPU_MILLI`` blocks one
        whole). Never takes more than is free."""
        free = self.free[i]
        total = 0
        for g, milli in takes:
            taken = max(0, min(milli, free[g]))
            free[g] -= taken
            total += taken
        self.used_milli += total
        self.node_used[i] += total
        self._refresh(i)

    def _refresh(self, i: int) -> None:
        free = self.free[i]
        self.full_free[i] = free.count(GPU_MILLI)
        self.max_free[i] = max(free, default=0)

    # ---- measures -----------------------------------------------------------------------------

    def allocated_fraction(self) -> float:
        """Allocated milli-GPUs / all milli-GPUs (0 for an inventory without GPUs)."""
        return self.used_milli / self.total_milli if self.total_milli else 0.0

    def fragmentation(self) -> float:
        """The share of free GPU capacity stranded on partly used GPUs: free milli on GPUs
        that are neither wholly free nor full, over all free milli (0 when nothing is free).
        Such capacity can serve only fractional requests, never a whole GPU."""
        free_total = self.total_milli - self.used_milli
        if free_total <= 0:
            return 0.0
        stranded = sum(f for gpus in self.free for f in gpus if 0 < f < GPU_MILLI)
        return stranded / free_total

    def load(self, i: int) -> float:
        """Allocated share of node ``i``'s GPUs (1.0 for a node without GPUs)."""
        total = self.nodes[i].gpus * GPU_MILLI
        return self.node_used[i] / total if total else 1.0
