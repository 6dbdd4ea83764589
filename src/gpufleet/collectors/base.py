"""Protocols every collector implements; they yield records from ``gpufleet.model``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gpufleet.model import GpuSample, GpuSourceStatus, SystemSample


@runtime_checkable
class GpuSource(Protocol):
    """A source of GPU readings (NVML, the simulator, or nothing)."""

    name: str

    def status(self) -> GpuSourceStatus:
        """What the source can see; cheap, no hardware call after start-up."""
        ...

    def sample(self, now_s: float) -> tuple[GpuSample, ...]:
        """Read every GPU once. Never raises for a single GPU's failure."""
        ...

    def close(self) -> None:
        """Release the library / handles."""
        ...


@runtime_checkable
class SystemSource(Protocol):
    """A source of host readings."""

    def sample(self, now_s: float) -> SystemSample:
        """Read CPU, memory, disks and network once; rates are per second since the last call."""
        ...
