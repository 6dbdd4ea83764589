"""Readers for one GPU's NVML fields; every call goes through :class:`NvmlQuery`.

Internal to ``gpufleet.collectors.nvml``. Readers return ``None`` for what NVML cannot give
and let :class:`GpuLostError` through, so the source can mark just that GPU lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gpufleet.collectors.nvml_query import (
    LOG,
    ULLONG_MAX,
    GpuLostError,
    NvmlQuery,
    decode_text,
)
from gpufleet.model import GpuProcess, MigInstance

# Clock-event ("throttle") reason bits from nvml.h, named as nvidia-smi's -q output names them.
THROTTLE_REASONS: tuple[tuple[int, str], ...] = (
    (0x001, "gpu_idle"),
    (0x002, "applications_clocks_setting"),
    (0x004, "sw_power_cap"),
    (0x008, "hw_slowdown"),
    (0x010, "sync_boost"),
    (0x020, "sw_thermal_slowdown"),
    (0x040, "hw_thermal_slowdown"),
    (0x080, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
)

# Newest first; nvidia-ml-py's unsuffixed name is the v1 API in releases before 11.
COMPUTE_PROCESS_FUNCTIONS = (
    "nvmlDeviceGetComputeRunningProcesses_v3",
    "nvmlDeviceGetComputeRunningProcesses_v2",
    "nvmlDeviceGetComputeRunningProcesses",
)
GRAPHICS_PROCESS_FUNCTIONS = (
    "nvmlDeviceGetGraphicsRunningProcesses_v3",
    "nvmlDeviceGetGraphicsRunningProcesses_v2",
    "nvmlDeviceGetGraphicsRunningProcesses",
)
# CurrentClocksThrottleReasons is deprecated and goes away with CUDA 14.
THROTTLE_FUNCTIONS = (
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons",
)
TEMPERATURE_FUNCTIONS = ("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature")

MAX_XID_EVENTS_PER_POLL = 64
"""Bound on one poll, so a GPU storming XIDs cannot stall a sample."""

PSTATE_UNKNOWN = 32


def as_int(value: object) -> int | None:
    """An integer reading, or ``None`` for a missing or not-available one."""
    if isinstance(value, bool) or not isinstance(value, int) or value == ULLONG_MAX:
        return None
    return value


def as_float(value: object, *, multiply_by: float = 1.0, divide_by: float = 1.0) -> float | None:
    """A numeric reading converted to a unit, or ``None`` for a missing one, NaN or infinity.

    Dividing (rather than multiplying by a reciprocal) keeps ``250500 mW`` exactly ``250.5 W``.
    """
    number: float | None = as_int(value)
    if number is None and isinstance(value, float):
        number = value
    if number is None:
        return None
    converted = number * multiply_by / divide_by
    return converted if math.isfinite(converted) else None


def decode_throttle_reasons(mask: int) -> tuple[str, ...]:
    """Names of the reason bits set in ``mask``, in nvml.h order; unknown bits are dropped.

    Args:
        mask: ``nvmlDeviceGetCurrentClocksEventReasons`` result.

    Returns:
        E.g. ``("sw_power_cap", "hw_thermal_slowdown")``; ``()`` when clocks run free.
    """
    return tuple(name for bit, name in THROTTLE_REASONS if mask & bit)


def read_throttle_reasons(q: NvmlQuery, handle: Any) -> tuple[str, ...] | None:
    """Active clock-event reasons by name, ``None`` when the GPU cannot report them."""
    mask = as_int(q.first_of("clock_event_reasons", THROTTLE_FUNCTIONS, handle))
    return None if mask is None else decode_throttle_reasons(mask)


@dataclass(frozen=True, slots=True)
class GpuIdentity:
    """What does not change while a GPU is attached; read once per handle."""

    uuid: str
    name: str | None
    pci_bus_id: str | None
    cuda_capability: str | None
    temp_slowdown_c: float | None
    temp_shutdown_c: float | None


def read_identity(q: NvmlQuery, handle: Any) -> GpuIdentity | None:
    """Read a GPU's identity and fixed limits; ``None`` when it has no UUID to key it on.

    Raises:
        GpuLostError: The GPU stopped answering.
    """
    uuid = decode_text(q.confirm("nvmlDeviceGetUUID", handle))
    if uuid is None:
        return None
    pci = q("nvmlDeviceGetPciInfo", handle)
    capability = q("nvmlDeviceGetCudaComputeCapability", handle)
    cuda_capability = None
    if isinstance(capability, tuple | list) and len(capability) == 2:
        cuda_capability = f"{capability[0]}.{capability[1]}"
    threshold = "nvmlDeviceGetTemperatureThreshold"
    return GpuIdentity(
        uuid=uuid,
        name=decode_text(q("nvmlDeviceGetName", handle)),
        pci_bus_id=decode_text(getattr(pci, "busId", None)),
        cuda_capability=cuda_capability,
        temp_slowdown_c=as_float(
            q(threshold, handle, q.constant("NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", 1))
        ),
        temp_shutdown_c=as_float(
            q(threshold, handle, q.constant("NVML_TEMPERATURE_THRESHOLD_SHUTDOWN", 0))
        ),
    )


def read_mig(q: NvmlQuery, handle: Any) -> tuple[bool | None, tuple[MigInstance, ...]]:
    """MIG mode and, when enabled, the MIG devices with their memory.

    Returns:
        ``(None, ())`` on GPUs without MIG, ``(False, ())`` with MIG off.

    Raises:
        GpuLostError: The GPU stopped answering.
    """
    modes = q("nvmlDeviceGetMigMode", handle)
    if not isinstance(modes, tuple | list) or not modes:
        return None, ()
    if modes[0] != q.constant("NVML_DEVICE_MIG_ENABLE", 1):
        return False, ()
    instances: list[MigInstance] = []
    for slot in range(as_int(q("nvmlDeviceGetMaxMigDeviceCount", handle)) or 0):
        # Empty slots answer NOT_FOUND (None here): MIG devices need not be contiguous.
        mig = q("nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
        if mig is None:
            continue
        uuid = decode_text(q("nvmlDeviceGetUUID", mig))
        if uuid is None:
            continue
        memory = q("nvmlDeviceGetMemoryInfo", mig)
        name = decode_text(q("nvmlDeviceGetName", mig)) or ""
        # Names read "NVIDIA A100-SXM4-40GB MIG 1g.5gb"; the profile is the last part.
        profile = name.rsplit("MIG ", 1)[1] if "MIG " in name else None
        instances.append(
            MigInstance(
                uuid=uuid,
                gpu_instance_id=as_int(q("nvmlDeviceGetGpuInstanceId", mig)),
                compute_instance_id=as_int(q("nvmlDeviceGetComputeInstanceId", mig)),
                profile=profile,
                mem_total_bytes=as_int(getattr(memory, "total", None)),
                mem_used_bytes=as_int(getattr(memory, "used", None)),
            )
        )
    return True, tuple(instances)


@dataclass
class ProcessReader:
    """Compute and graphics processes of one GPU, with names and per-process SM utilization.

    Keeps the newest process-utilization timestamp seen on this GPU, so each sample asks NVML
    only for samples taken since the previous one, and caches process names by pid.
    """

    last_util_ts_us: int = 0
    names: dict[int, str | None] = field(default_factory=dict)

    def read(self, q: NvmlQuery, handle: Any) -> tuple[GpuProcess, ...]:
        """Processes on the GPU behind ``handle``; ``()`` when NVML cannot list them.

        Raises:
            GpuLostError: The GPU is lost or needs a reset; a driver that merely fails the
                process query (``UNKNOWN``, ``NO_PERMISSION``) gives ``()`` instead.
        """
        compute = _list_processes(q, "compute_processes", COMPUTE_PROCESS_FUNCTIONS, handle)
        graphics = _list_processes(q, "graphics_processes", GRAPHICS_PROCESS_FUNCTIONS, handle)
        if not compute and not graphics:
            self.names.clear()
            return ()
        sm_util = self._sm_util_by_pid(q, handle)
        rows: dict[int, GpuProcess] = {}
        # A pid in both lists holds a compute context; listing it once keeps memory sums right.
        for kind, infos in (("graphics", graphics), ("compute", compute)):
            for info in infos:
                pid = as_int(getattr(info, "pid", None))
                if pid is None:
                    continue
                rows[pid] = GpuProcess(
                    pid=pid,
                    name=self._name(q, pid),
                    used_memory_bytes=as_int(getattr(info, "usedGpuMemory", None)),
                    sm_util_pct=sm_util.get(pid),
                    kind=kind,
                )
        for gone in self.names.keys() - rows.keys():
            del self.names[gone]
        return tuple(rows[pid] for pid in sorted(rows))

    def _name(self, q: NvmlQuery, pid: int) -> str | None:
        if pid not in self.names:
            self.names[pid] = decode_text(q("nvmlSystemGetProcessName", pid))
        return self.names[pid]

    def _sm_util_by_pid(self, q: NvmlQuery, handle: Any) -> dict[int, float]:
        samples = q("nvmlDeviceGetProcessUtilization", handle, self.last_util_ts_us)
        latest: dict[int, tuple[int, float]] = {}
        for sample in samples or ():
            pid = as_int(getattr(sample, "pid", None))
            ts_us = as_int(getattr(sample, "timeStamp", None))
            sm = as_int(getattr(sample, "smUtil", None))
            if pid is None or ts_us is None:
                continue
            self.last_util_ts_us = max(self.last_util_ts_us, ts_us)
            # Values above 100 are NVML's "invalid" markers, not readings.
            if sm is not None and sm <= 100 and ts_us >= latest.get(pid, (-1, 0.0))[0]:
                latest[pid] = (ts_us, float(sm))
        return {pid: sm for pid, (_ts, sm) in latest.items()}


def _list_processes(
    q: NvmlQuery, family: str, functions: tuple[str, ...], handle: Any
) -> list[Any]:
    # Some drivers fail only the process list (UNKNOWN) while the GPU reports fine: NvmlQuery
    # turns that into None, and the source confirms the GPU still answers.
    infos = q.first_of(family, functions, handle)
    return list(infos) if isinstance(infos, list | tuple) else []


class XidWatcher:
    """An NVML event set for one GPU's XID critical errors, polled without waiting.

    On GPUs or drivers without XID events the watcher stays empty and polls return ``()``.

    Args:
        q: The NVML choke point.
        handle: The GPU's handle.

    Raises:
        GpuLostError: The GPU stopped answering while registering.
    """

    def __init__(self, q: NvmlQuery, handle: Any) -> None:
        self._q = q
        self._mask = q.constant("nvmlEventTypeXidCriticalError", 0x8)
        self._set: Any = q("nvmlEventSetCreate")
        if self._set is not None and not q.succeeds(
            "nvmlDeviceRegisterEvents", handle, self._mask, self._set
        ):
            self.close()

    @property
    def active(self) -> bool:
        """Whether XID events are being collected for this GPU."""
        return self._set is not None

    def poll(self) -> tuple[int, ...]:
        """XID codes raised since the previous poll (oldest first); never waits."""
        codes: list[int] = []
        while self._set is not None and len(codes) < MAX_XID_EVENTS_PER_POLL:
            try:
                event = self._q("nvmlEventSetWait", self._set, 0)
            except GpuLostError:
                # The GPU's own reads will report it lost; keep the XIDs already drained.
                break
            if event is None:  # TIMEOUT: nothing pending
                break
            kind = as_int(getattr(event, "eventType", None)) or 0
            code = as_int(getattr(event, "eventData", None))
            if kind & self._mask and code is not None:
                codes.append(code)
        return tuple(codes)

    def close(self) -> None:
        """Free the event set; safe to call twice and on a lost GPU."""
        event_set, self._set = self._set, None
        if event_set is None:
            return
        try:
            self._q("nvmlEventSetFree", event_set)
        except GpuLostError:
            LOG.debug("could not free an XID event set of a lost GPU")
