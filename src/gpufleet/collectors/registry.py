"""Pick a GPU source by name: ``auto``, ``nvml``, ``sim`` (a small registry, no folder scanning)."""

from __future__ import annotations

from gpufleet.collectors.base import GpuSource
from gpufleet.model import GpuSample, GpuSourceStatus

SOURCES = ("auto", "nvml", "sim")


class SourceUnavailableError(RuntimeError):
    """The requested GPU source cannot run here; the message says why and what to do."""


class NoGpuSource:
    """Stands in when no GPU can be read: the agent still runs system monitoring."""

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
) -> GpuSource:
    """Open the GPU source called ``kind``.

    ``auto`` uses NVML when it sees at least one GPU and otherwise a source with no GPUs whose
    status says why, so the agent keeps monitoring the host.

    Raises:
        SourceUnavailableError: ``nvml`` was asked for explicitly and cannot run.
        ValueError: ``kind`` is not one of SOURCES, or the simulated model is unknown.
    """
    if kind == "sim":
        from gpufleet.collectors.sim import SimGpuSource

        return SimGpuSource(gpus=sim_gpus, model=sim_model, seed=sim_seed, node=node)
    if kind not in ("auto", "nvml"):
        raise ValueError(f"unknown GPU source {kind!r}; choose one of: {', '.join(SOURCES)}")
    from gpufleet.collectors.nvml import NvmlGpuSource, probe_nvml

    probe = probe_nvml()
    if probe.available:
        return NvmlGpuSource()
    if kind == "nvml":
        raise SourceUnavailableError(
            f"--source nvml: {probe.reason or 'no NVIDIA GPU visible'}; "
            "use --source auto to monitor the host only, or --source sim for simulated GPUs"
        )
    return NoGpuSource(probe)
