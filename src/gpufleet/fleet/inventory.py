"""What a node has to hand out: its GPUs as the agent last read them, its CPU and memory.

Agents send this with every heartbeat (``inventory``); the hub places leases on it. It is
small on purpose (a few hundred bytes per GPU) so a heartbeat stays cheap, and it carries
what allocation filters need: model, compute capability, memory, utilization and whether
processes run on the GPU (work the hub did not hand out must be respected).

No web stack here: the agent builds it from a :class:`~gpufleet.model.Snapshot`, the hub
reads it back with :func:`inventory_from_wire`, which says which field is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpufleet.model import Snapshot

MIB = 1024 * 1024


class InventoryError(ValueError):
    """An inventory that is not what agents send; the message names the field."""


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One GPU of a node as allocation sees it."""

    uuid: str
    index: int
    name: str = ""
    pci_bus_id: str | None = None
    cuda_capability: str | None = None
    mem_total_mib: int | None = None
    mem_used_mib: int | None = None
    util_pct: float | None = None
    mem_util_pct: float | None = None
    processes: int = 0
    """Compute and graphics processes on the GPU now (any owner)."""
    lost: bool = False

    @property
    def mem_free_mib(self) -> int | None:
        if self.mem_total_mib is None or self.mem_used_mib is None:
            return None
        return max(0, self.mem_total_mib - self.mem_used_mib)

    @property
    def capability(self) -> tuple[int, int] | None:
        """``cuda_capability`` as a comparable pair (``"8.6"`` -> ``(8, 6)``)."""
        return parse_capability(self.cuda_capability)


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A model a server on the node answers for: its name, the server's base URL and its
    API (``openai``: ``/v1/models``; ``ollama``: ``/api/tags``, which also serves the
    OpenAI-compatible ``/v1`` routes)."""

    name: str
    url: str
    api: str = "openai"


@dataclass(frozen=True, slots=True)
class NodeInventory:
    """A node's GPUs, CPU cores and memory (None where the agent could not read them), and
    the models its servers answer for."""

    gpus: tuple[GpuInfo, ...] = ()
    cpu_cores: int | None = None
    mem_total_mib: int | None = None
    mem_available_mib: int | None = None
    models: tuple[ServedModel, ...] = ()


def parse_capability(text: str | None) -> tuple[int, int] | None:
    """``"9.0"`` -> ``(9, 0)``; None for None or a malformed value."""
    if not text:
        return None
    major, _, minor = text.partition(".")
    if not major.isdigit() or not (minor or "0").isdigit():
        return None
    return int(major), int(minor or "0")


def inventory_of(snapshot: Snapshot | None) -> dict[str, Any]:
    """The wire form of a snapshot's inventory (what a heartbeat carries)."""
    if snapshot is None:
        return {"gpus": []}
    gpus = []
    for g in snapshot.gpus:
        gpus.append(
            {
                "uuid": g.uuid,
                "index": g.index,
                "name": g.name or "",
                "pci_bus_id": g.pci_bus_id,
                "cuda_capability": g.cuda_capability,
                "mem_total_mib": None if g.mem_total_bytes is None else g.mem_total_bytes // MIB,
                "mem_used_mib": None if g.mem_used_bytes is None else g.mem_used_bytes // MIB,
                "util_pct": g.util_gpu_pct,
                "mem_util_pct": g.util_mem_pct,
                "processes": len(g.processes),
                "lost": g.lost,
            }
        )
    system = snapshot.system
    return {
        "gpus": gpus,
        "cpu_cores": None if system is None else system.cpu_count,
        "mem_total_mib": None if system is None else system.mem_total_bytes // MIB,
        "mem_available_mib": None if system is None else system.mem_available_bytes // MIB,
    }


def _opt_int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InventoryError(f"{where}{key} must be a whole number >= 0 or null, got {value!r}")
    return value


def _opt_float(obj: Mapping[str, Any], key: str, where: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InventoryError(f"{where}{key} must be a number or null, got {value!r}")
    return float(value)


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise InventoryError(f"{where}{key} must be a string or null, got {value!r}")
    return value


def inventory_from_wire(obj: object) -> NodeInventory:
    """Read a heartbeat's ``inventory`` back.

    Raises:
        InventoryError: a field of the wrong type, a GPU without a uuid, or repeated GPUs.
    """
    if obj is None:
        return NodeInventory()
    if not isinstance(obj, Mapping):
        raise InventoryError("inventory must be an object")
    raw = obj.get("gpus") or []
    if not isinstance(raw, list):
        raise InventoryError("inventory.gpus must be a list")
    gpus = []
    for i, g in enumerate(raw):
        where = f"inventory.gpus[{i}]."
        if not isinstance(g, Mapping):
            raise InventoryError(f"inventory.gpus[{i}] must be an object")
        uuid, index = g.get("uuid"), g.get("index")
        if not isinstance(uuid, str) or not uuid:
            raise InventoryError(f"{where}uuid must be a non-empty string")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise InventoryError(f"{where}index must be a whole number >= 0, got {index!r}")
        gpus.append(
            GpuInfo(
                uuid=uuid,
                index=index,
                name=_opt_str(g, "name", where) or "",
                pci_bus_id=_opt_str(g, "pci_bus_id", where),
                cuda_capability=_opt_str(g, "cuda_capability", where),
                mem_total_mib=_opt_int(g, "mem_total_mib", where),
                mem_used_mib=_opt_int(g, "mem_used_mib", where),
                util_pct=_opt_float(g, "util_pct", where),
                mem_util_pct=_opt_float(g, "mem_util_pct", where),
                processes=_opt_int(g, "processes", where) or 0,
                lost=bool(g.get("lost", False)),
            )
        )
    if len({g.uuid for g in gpus}) != len(gpus) or len({g.index for g in gpus}) != len(gpus):
        raise InventoryError("inventory.gpus repeats a GPU (uuid or index)")
    return NodeInventory(
        gpus=tuple(sorted(gpus, key=lambda g: g.index)),
        cpu_cores=_opt_int(obj, "cpu_cores", "inventory."),
        mem_total_mib=_opt_int(obj, "mem_total_mib", "inventory."),
        mem_available_mib=_opt_int(obj, "mem_available_mib", "inventory."),
        models=_models_from_wire(obj.get("models")),
    )


def _models_from_wire(raw: object) -> tuple[ServedModel, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InventoryError("inventory.models must be a list")
    out = []
    for i, m in enumerate(raw):
        where = f"inventory.models[{i}]"
        if not isinstance(m, Mapping):
            raise InventoryError(f"{where} must be an object")
        name, url, api = m.get("name"), m.get("url"), m.get("api", "openai")
        if not isinstance(name, str) or not name or len(name) > 300:
            raise InventoryError(f"{where}.name must be a model name")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InventoryError(f"{where}.url must be an http:// or https:// URL")
        if api not in ("openai", "ollama"):
            raise InventoryError(f"{where}.api must be openai or ollama, got {api!r}")
        out.append(ServedModel(name=name, url=url.rstrip("/"), api=str(api)))
    return tuple(out)


def inventory_wire(inv: NodeInventory) -> dict[str, Any]:
    """The wire form of a read-back inventory (what the hub stores and shows)."""
    return {
        "gpus": [
            {
                "uuid": g.uuid,
                "index": g.index,
                "name": g.name,
                "pci_bus_id": g.pci_bus_id,
                "cuda_capability": g.cuda_capability,
                "mem_total_mib": g.mem_total_mib,
                "mem_used_mib": g.mem_used_mib,
                "util_pct": g.util_pct,
                "mem_util_pct": g.mem_util_pct,
                "processes": g.processes,
                "lost": g.lost,
            }
            for g in inv.gpus
        ],
        "cpu_cores": inv.cpu_cores,
        "mem_total_mib": inv.mem_total_mib,
        "mem_available_mib": inv.mem_available_mib,
        "models": [{"name": m.name, "url": m.url, "api": m.api} for m in inv.models],
    }
