"""The records of a KV-cache recommendation: what the host has free, each setting change, the
whole recommendation (see :mod:`gpufleet.kvcache.recommend` for the rules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpufleet.model import SystemSample

GIB = 1024**3
DEFAULT_DISK_PATH = "/var/cache/lmcache/"


class NoKvCacheDataError(ValueError):
    """No source answered in the window, so there is nothing to recommend from."""


@dataclass(frozen=True, slots=True)
class HostResources:
    """What the host has free for LMCache's CPU and disk tiers."""

    mem_available_bytes: int | None = None
    mem_total_bytes: int | None = None
    disk_free_bytes: int | None = None
    disk_mount: str | None = None

    @classmethod
    def from_system(
        cls, system: SystemSample | None, disk_path: str = DEFAULT_DISK_PATH
    ) -> HostResources:
        """From the agent's host sample: free memory, and the free space of the filesystem
        holding ``disk_path`` (the longest mount prefix; the roomiest disk if none matches)."""
        if system is None:
            return cls()
        disks = sorted(system.disks, key=lambda d: len(d.mount), reverse=True)
        disk = next((d for d in disks if disk_path.startswith(d.mount)), None)
        if disk is None and disks:
            disk = max(disks, key=lambda d: d.free_bytes)
        return cls(
            mem_available_bytes=system.mem_available_bytes,
            mem_total_bytes=system.mem_total_bytes,
            disk_free_bytes=None if disk is None else disk.free_bytes,
            disk_mount=None if disk is None else disk.mount,
        )


@dataclass(frozen=True, slots=True)
class SettingChange:
    """One LMCache setting to change and why."""

    key: str
    current: Any
    recommended: Any
    reason: str


@dataclass(frozen=True, slots=True)
class Recommendation:
    """LMCache settings for the observed traffic, with the reasoning behind them."""

    verdict: str
    summary: str
    settings: dict[str, Any]
    """The whole recommended LMCache configuration (current settings with the changes)."""
    changes: tuple[SettingChange, ...]
    reasoning: tuple[str, ...]
    memory_saved_bytes: float | None
    memory_saved_basis: str
    host_memory_freed_bytes: float | None
    host_memory_added_bytes: float
    kv_transfer_config: dict[str, str]
    observed: dict[str, float | None] = field(default_factory=dict)
    mode: str = "in_process"
    """The vLLM connector ``kv_transfer_config`` is for: ``in_process`` or ``mp``."""

    @property
    def memory_saved_gb(self) -> float | None:
        """:attr:`memory_saved_bytes` in GiB (LMCache's unit), 2 decimals."""
        b = self.memory_saved_bytes
        return None if b is None else round(b / GIB, 2)
