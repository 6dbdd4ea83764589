"""How alert messages name GPUs, sizes, durations and the processes holding a GPU."""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.model import UNKNOWN, GpuProcess, GpuSample

_MAX_HOLDERS_NAMED = 3

THROTTLE_ALERT_REASONS: dict[str, str] = {
    "sw_power_cap": "software power cap",
    "hw_power_brake_slowdown": "hardware power brake",
    "hw_thermal_slowdown": "hardware thermal slowdown",
    "sw_thermal_slowdown": "software thermal slowdown",
}
"""Throttle reasons that mean the GPU is held back by power or heat, with readable names."""

XID_HINTS: dict[int, str] = {
    13: "graphics engine exception, often an application bug",
    31: "GPU memory page fault, often an application bug",
    43: "GPU stopped processing",
    45: "preemptive cleanup after an earlier error",
    48: "double-bit ECC error",
    63: "ECC page retirement or row remapping",
    64: "ECC page retirement or row remapping failure",
    74: "NVLink error",
    79: "GPU has fallen off the bus",
    92: "high single-bit ECC error rate",
    94: "contained ECC error",
    95: "uncontained ECC error",
}
"""Short explanations of common XID codes (NVIDIA's XID catalogue has the full list)."""


def gpu_label(gpu: GpuSample) -> str:
    """``GPU 3 (GPU-ab12…)``: the display index plus enough of the UUID to tell GPUs apart."""
    short = gpu.uuid if len(gpu.uuid) <= 8 else gpu.uuid[:8] + "…"
    return f"GPU {gpu.index} ({short})"


def format_bytes(value: float) -> str:
    """Binary units with one decimal, e.g. ``12.0 GiB``."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024.0:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024.0
    return f"{size:.1f} TiB"


def format_duration(seconds: float) -> str:
    """``45 s``, ``30 min`` or ``2.5 h``: the unit a person would say."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def describe_process(proc: GpuProcess) -> str:
    """Who holds a GPU, most specific attribution first: ``train-llm of alice (pid 42, …)``."""
    attr = proc.attribution
    user = attr.user if attr.user != UNKNOWN else attr.unix_user
    details = [f"pid {proc.pid}"]
    if proc.name:
        details.append(proc.name)
    if proc.used_memory_bytes is not None:
        details.append(format_bytes(proc.used_memory_bytes))
    inner = ", ".join(details)
    if attr.workload != UNKNOWN:
        owner = f"{attr.workload} of {user}" if user else attr.workload
        return f"{owner} ({inner})"
    if user:
        return f"{user} ({inner})"
    return inner


def join_holders(procs: Sequence[GpuProcess]) -> str:
    """The first few holders described, and how many more there are."""
    named = [describe_process(p) for p in procs[:_MAX_HOLDERS_NAMED]]
    if len(procs) > _MAX_HOLDERS_NAMED:
        named.append(f"{len(procs) - _MAX_HOLDERS_NAMED} more")
    return "; ".join(named)
