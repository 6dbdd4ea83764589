"""Pick a GPU source by name: ``auto``, ``nvml``, ``sim`` (a small registry, no folder scanning)."""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType

from gpufleet.collectors.base import GpuSource
from gpufleet.model import GpuSample, GpuSourceStatus

SOURCES = ("auto", "nvml", "sim")


class SourceUnavailableError(RuntimeError):
    """The requested GPU source cannot run here; the message says why and what to do."""


class NoGpuSource:
    """Stands in when nvidia-ml-py is not installed: the agent still runs system monitoring."""

    name = "none"

    def __init__(self, status: GpuSourceStatus) -> None:
        self._status = status

    def status(self) -> GpuSourceStatus:
        """Why there are no GPUs."""
        return self._status

    def sample(self, now_s: float) -> tuple[GpuSample, ...]:
        """Always empty."""
        return ()

    def close(self) -> None:
        """Nothing to release."""


def open_gpu_source(
    kind: str,
    *,
    node: str,
    sim_gpus: int = 8,
    sim_model: str = "NVIDIA H100 80GB HBM3",
    sim_seed: int = 0,
    nvml: ModuleType | None = None,
    read_pcie: bool = True,
) -> GpuSource:
    """Open the GPU source called ``kind``.

    ``auto`` uses NVML whenever nvidia-ml-py can be imported, even if no driver or GPU answers
    yet: the NVML source retries starting on its own and its status says what it sees now.
    Only without nvidia-ml-py does ``auto`` give a source with no GPUs whose status says why,
    so the agent keeps monitoring the host.

    Args:
        kind: One of SOURCES.
        node: Node name (the simulator labels its GPUs with it).
        sim_gpus: Simulated GPUs.
        sim_model: Simulated GPU model.
        sim_seed: Simulator seed.
        nvml: The ``pynvml`` module or a stand-in; ``None`` imports ``pynvml``.
        read_pcie: Read PCIe throughput (NVML times it over 20 ms per call); the in-process
            resource manager turns it off to stay cheap.

    Raises:
        SourceUnavailableError: ``nvml`` was asked for explicitly and sees no GPU now.
        ValueError: ``kind`` is not one of SOURCES, or the simulated model is unknown.
    """
    if kind == "sim":
        from gpufleet.collectors.sim import SimGpuSource

        return SimGpuSource(gpus=sim_gpus, model=sim_model, seed=sim_seed, node=node)
    if kind not in ("auto", "nvml"):
        raise ValueError(f"unknown GPU source {kind!r}; choose one of: {', '.join(SOURCES)}")
    from gpufleet.collectors.nvml import NvmlGpuSource

    source = NvmlGpuSource(nvml, read_pcie=read_pcie)
    status = source.status()  # the first start attempt; later ones happen in sample()
    if kind == "nvml" and not status.available:
        source.close()
        raise SourceUnavailableError(
            f"--source nvml: {status.reason or 'no NVIDIA GPU visible'}; "
            "use --source auto to monitor the host only, or --source sim for simulated GPUs"
        )
    if not status.library_installed:
        source.close()
        return NoGpuSource(replace(status, source="none"))
    return source
