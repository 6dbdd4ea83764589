"""A stand-in for the ``pynvml`` module, configurable per scenario.

:class:`FakeNvml` is a real :class:`types.ModuleType` exposing the pynvml names the NVML
collector uses: functions, constants, and ``NVMLError`` with pynvml's subclasses and ``.value``
codes. Per-GPU readings live in :class:`FakeGpu`; a reading set to ``None`` answers
``NOT_SUPPORTED``, as NVML does on a GPU without that sensor. Every call is counted in
``FakeNvml.calls``.

Named scenarios (as gpustat's tests name theirs) are built by the functions in ``SCENARIOS``.
"""

# The double must answer to pynvml's own camelCase names.
# ruff: noqa: N802

from __future__ import annotations

import itertools
import types
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# pynvml's return codes (nvml.h values).
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

_ERROR_NAMES = {
    NVML_ERROR_UNINITIALIZED: ("Uninitialized", "Uninitialized"),
    NVML_ERROR_INVALID_ARGUMENT: ("InvalidArgument", "Invalid Argument"),
    NVML_ERROR_NOT_SUPPORTED: ("NotSupported", "Not Supported"),
    NVML_ERROR_NO_PERMISSION: ("NoPermission", "Insufficient Permissions"),
    NVML_ERROR_NOT_FOUND: ("NotFound", "Not Found"),
    NVML_ERROR_DRIVER_NOT_LOADED: ("DriverNotLoaded", "Driver Not Loaded"),
    NVML_ERROR_TIMEOUT: ("Timeout", "Timeout"),
    NVML_ERROR_LIBRARY_NOT_FOUND: ("LibraryNotFound", "NVML Shared Library Not Found"),
    NVML_ERROR_FUNCTION_NOT_FOUND: ("FunctionNotFound", "Function Not Found"),
    NVML_ERROR_GPU_IS_LOST: ("GpuIsLost", "GPU is lost"),
    NVML_ERROR_UNKNOWN: ("Unknown", "Unknown Error"),
}

CONSTANTS = {
    "NVML_TEMPERATURE_GPU": 0,
    "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN": 0,
    "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN": 1,
    "NVML_CLOCK_GRAPHICS": 0,
    "NVML_CLOCK_SM": 1,
    "NVML_CLOCK_MEM": 2,
    "NVML_PCIE_UTIL_TX_BYTES": 0,
    "NVML_PCIE_UTIL_RX_BYTES": 1,
    "NVML_MEMORY_ERROR_TYPE_CORRECTED": 0,
    "NVML_MEMORY_ERROR_TYPE_UNCORRECTED": 1,
    "NVML_VOLATILE_ECC": 0,
    "NVML_DEVICE_MIG_DISABLE": 0,
    "NVML_DEVICE_MIG_ENABLE": 1,
    "NVML_PSTATE_UNKNOWN": 32,
    "nvmlEventTypeXidCriticalError": 0x8,
}
ULLONG_MAX = 2**64 - 1
GIB = 1024**3


class NVMLError(Exception):
    """pynvml's base error: ``.value`` is the NVML return code."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _ERROR_NAMES.get(self.value, ("", f"NVML error {self.value}"))[1]


def _error_class(code: int, suffix: str) -> type[NVMLError]:
    def init(self: NVMLError) -> None:
        NVMLError.__init__(self, code)

    return type(f"NVMLError_{suffix}", (NVMLError,), {"__init__": init})


ERROR_CLASSES = {code: _error_class(code, suffix) for code, (suffix, _) in _ERROR_NAMES.items()}


def nvml_error(code: int) -> NVMLError:
    """The pynvml exception for ``code`` (a subclass instance, as pynvml raises)."""
    cls = ERROR_CLASSES.get(code)
    return cls() if cls is not None else NVMLError(code)


@dataclass(frozen=True)
class FakeHandle:
    """A device handle: a physical GPU, or one of its MIG devices."""

    gpu: int
    mig: int | None = None


@dataclass
class Struct:
    """Attribute bag standing in for pynvml's ctypes structures."""

    fields: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class FakeProcess:
    """A process on a fake GPU; ``used_memory_bytes=None`` is NVML's "not available"."""

    pid: int
    name: str | None = "python3"
    used_memory_bytes: int | None = 1 * GIB


@dataclass
class FakeMig:
    """A MIG device of a fake GPU."""

    uuid: str
    gpu_instance_id: int
    compute_instance_id: int
    profile: str = "1g.10gb"
    mem_total_bytes: int = 10 * GIB
    mem_used_bytes: int = 2 * GIB


@dataclass
class FakeGpu:
    """Readings of one fake GPU in NVML's own units; ``None`` answers NOT_SUPPORTED."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    pci_bus_id: str = "00000000:17:00.0"
    cuda_capability: tuple[int, int] = (9, 0)
    util_gpu: int = 87
    util_mem: int = 41
    encoder: int | None = 3
    decoder: int | None = 5
    mem_total: int = 80 * GIB
    mem_used: int = 30 * GIB
    temp_c: int | None = 61
    temp_slowdown_c: int | None = 87
    temp_shutdown_c: int | None = 92
    power_mw: int | None = 250500
    power_limit_mw: int | None = 700000
    clocks_mhz: dict[int, int] = field(default_factory=lambda: {0: 1755, 1: 1755, 2: 2619})
    pstate: int = 0
    fan_pct: int | None = 45
    pcie_tx_kb_s: int | None = 1200
    pcie_rx_kb_s: int | None = 3400
    ecc_corrected: int | None = 2
    ecc_uncorrected: int | None = 0
    throttle_mask: int | None = 0x4 | 0x40
    mig_mode: int | None = None
    migs: list[FakeMig] = field(default_factory=list)
    compute: list[FakeProcess] = field(default_factory=list)
    graphics: list[FakeProcess] = field(default_factory=list)
    util_samples: list[tuple[int, int, int]] = field(default_factory=list)
    """(pid, timestamp_us, sm_util) samples that nvmlDeviceGetProcessUtilization holds."""
    xid_events: list[int] = field(default_factory=list)
    xid_supported: bool = True
    errors: dict[str, int] = field(default_factory=dict)
    """pynvml function name -> NVML error code it raises for this GPU."""
    lost: bool = False
    lost_after_reads: int | None = None
    """Falls off the bus once nvmlDeviceGetUtilizationRates has answered this many times."""
    reads: int = 0


class FakeNvml(types.ModuleType):
    """A ``pynvml`` module double; see the module docstring.

    Args:
        gpus: The GPUs, in index order.
        init_error: NVML return code that ``nvmlInit`` raises.
        missing: Functions this "old pynvml" lacks (``AttributeError``).
        not_in_driver: Functions the "old driver" lacks (``FUNCTION_NOT_FOUND``).
        bytes_strings: Return ``bytes`` for strings, as pynvml releases before 11.5 did.
    """

    def __init__(
        self,
        gpus: Iterable[FakeGpu],
        *,
        driver_version: str = "570.86.15",
        nvml_version: str = "12.570.86",
        init_error: int | None = None,
        missing: Iterable[str] = (),
        not_in_driver: Iterable[str] = (),
        bytes_strings: bool = False,
    ) -> None:
        super().__init__("pynvml")
        self.gpus = list(gpus)
        self.driver_version = driver_version
        self.nvml_version = nvml_version
        self.init_error = init_error
        self.missing = set(missing)
        self.not_in_driver = set(not_in_driver)
        self.bytes_strings = bytes_strings
        self.calls: Counter[str] = Counter()
        self.util_timestamps: list[tuple[int, int]] = []
        """(gpu index, lastSeenTimeStamp) passed to nvmlDeviceGetProcessUtilization."""
        self.initialized = 0
        self.event_sets: dict[int, int | None] = {}
        self._set_ids = itertools.count(1)
        self.NVMLError = NVMLError
        for cls in ERROR_CLASSES.values():
            setattr(self, cls.__name__, cls)
        for name, value in globals().items():
            if name.startswith(("NVML_ERROR_", "NVML_SUCCESS")):
                setattr(self, name, value)
        for name, value in CONSTANTS.items():
            setattr(self, name, value)

    def __getattribute__(self, name: str) -> Any:
        # An "old pynvml" simply has no attribute for functions it predates.
        if name.startswith("nvml") and name in object.__getattribute__(self, "missing"):
            raise AttributeError(f"module 'pynvml' has no attribute {name!r}")
        return super().__getattribute__(name)

    # -- plumbing ---------------------------------------------------------------------------

    def _enter(self, function: str) -> None:
        self.calls[function] += 1
        if function in self.not_in_driver:
            raise nvml_error(NVML_ERROR_FUNCTION_NOT_FOUND)
        if self.initialized <= 0:
            raise nvml_error(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, function: str, handle: FakeHandle) -> FakeGpu:
        self._enter(function)
        gpu = self.gpus[handle.gpu]
        if gpu.lost:
            raise nvml_error(NVML_ERROR_GPU_IS_LOST)
        if function in gpu.errors:
            raise nvml_error(gpu.errors[function])
        return gpu

    def _text(self, value: str) -> str | bytes:
        return value.encode() if self.bytes_strings else value

    @staticmethod
    def _supported(value: Any) -> Any:
        if value is None:
            raise nvml_error(NVML_ERROR_NOT_SUPPORTED)
        return value

    def _mig(self, function: str, handle: FakeHandle) -> FakeMig | None:
        gpu = self._gpu(function, handle)
        return None if handle.mig is None else gpu.migs[handle.mig]

    # -- library and system -----------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise nvml_error(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.initialized -= 1

    def nvmlSystemGetDriverVersion(self) -> str | bytes:
        self._enter("nvmlSystemGetDriverVersion")
        return self._text(self.driver_version)

    def nvmlSystemGetNVMLVersion(self) -> str | bytes:
        self._enter("nvmlSystemGetNVMLVersion")
        return self._text(self.nvml_version)

    def nvmlSystemGetProcessName(self, pid: int) -> str | bytes:
        self._enter("nvmlSystemGetProcessName")
        for gpu in self.gpus:
            for proc in (*gpu.compute, *gpu.graphics):
                if proc.pid == pid and proc.name is not None:
                    return self._text(proc.name)
        raise nvml_error(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        handle = FakeHandle(index)
        self._gpu("nvmlDeviceGetHandleByIndex", handle)
        return handle

    # -- identity ---------------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str | bytes:
        mig = self._mig("nvmlDeviceGetUUID", handle)
        return self._text(mig.uuid if mig else self.gpus[handle.gpu].uuid)

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str | bytes:
        mig = self._mig("nvmlDeviceGetName", handle)
        name = self.gpus[handle.gpu].name
        return self._text(f"{name} MIG {mig.profile}" if mig else name)

    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> Struct:
        gpu = self._gpu("nvmlDeviceGetPciInfo", handle)
        # pynvml's busId is a ctypes char array, which reads as bytes in every release.
        return Struct({"busId": gpu.pci_bus_id.encode()})

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeHandle) -> tuple[int, int]:
        return self._gpu("nvmlDeviceGetCudaComputeCapability", handle).cuda_capability

    def nvmlDeviceGetTemperatureThreshold(self, handle: FakeHandle, threshold: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTemperatureThreshold", handle)
        return self._supported(gpu.temp_slowdown_c if threshold == 1 else gpu.temp_shutdown_c)

    # -- readings ---------------------------------------------------------------------------

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> Struct:
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        gpu.reads += 1
        if gpu.lost_after_reads is not None and gpu.reads > gpu.lost_after_reads:
            gpu.lost = True
            raise nvml_error(NVML_ERROR_GPU_IS_LOST)
        return Struct({"gpu": gpu.util_gpu, "memory": gpu.util_mem})

    def nvmlDeviceGetEncoderUtilization(self, handle: FakeHandle) -> list[int]:
        gpu = self._gpu("nvmlDeviceGetEncoderUtilization", handle)
        return [self._supported(gpu.encoder), 167000]

    def nvmlDeviceGetDecoderUtilization(self, handle: FakeHandle) -> list[int]:
        gpu = self._gpu("nvmlDeviceGetDecoderUtilization", handle)
        return [self._supported(gpu.decoder), 167000]

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle) -> Struct:
        mig = self._mig("nvmlDeviceGetMemoryInfo", handle)
        gpu = self.gpus[handle.gpu]
        total, used = (
            (mig.mem_total_bytes, mig.mem_used_bytes) if mig else (gpu.mem_total, gpu.mem_used)
        )
        return Struct({"total": total, "used": used, "free": total - used})

    def nvmlDeviceGetTemperatureV(self, handle: FakeHandle, sensor: int) -> int:
        return self._supported(self._gpu("nvmlDeviceGetTemperatureV", handle).temp_c)

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        return self._supported(self._gpu("nvmlDeviceGetTemperature", handle).temp_c)

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        return self._supported(self._gpu("nvmlDeviceGetPowerUsage", handle).power_mw)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeHandle) -> int:
        gpu = self._gpu("nvmlDeviceGetEnforcedPowerLimit", handle)
        return self._supported(gpu.power_limit_mw)

    def nvmlDeviceGetClockInfo(self, handle: FakeHandle, clock_type: int) -> int:
        gpu = self._gpu("nvmlDeviceGetClockInfo", handle)
        return self._supported(gpu.clocks_mhz.get(clock_type))

    def nvmlDeviceGetPerformanceState(self, handle: FakeHandle) -> int:
        return self._gpu("nvmlDeviceGetPerformanceState", handle).pstate

    def nvmlDeviceGetFanSpeed(self, handle: FakeHandle) -> int:
        return self._supported(self._gpu("nvmlDeviceGetFanSpeed", handle).fan_pct)

    def nvmlDeviceGetPcieThroughput(self, handle: FakeHandle, counter: int) -> int:
        gpu = self._gpu("nvmlDeviceGetPcieThroughput", handle)
        return self._supported(gpu.pcie_tx_kb_s if counter == 0 else gpu.pcie_rx_kb_s)

    def nvmlDeviceGetTotalEccErrors(self, handle: FakeHandle, error_type: int, counter: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTotalEccErrors", handle)
        return self._supported(gpu.ecc_corrected if error_type == 0 else gpu.ecc_uncorrected)

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeHandle) -> int:
        gpu = self._gpu("nvmlDeviceGetCurrentClocksEventReasons", handle)
        return self._supported(gpu.throttle_mask)

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeHandle) -> int:
        gpu = self._gpu("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        return self._supported(gpu.throttle_mask)

    # -- MIG --------------------------------------------------------------------------------

    def nvmlDeviceGetMigMode(self, handle: FakeHandle) -> list[int]:
        mode = self._supported(self._gpu("nvmlDeviceGetMigMode", handle).mig_mode)
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeHandle) -> int:
        self._gpu("nvmlDeviceGetMaxMigDeviceCount", handle)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeHandle, index: int) -> FakeHandle:
        gpu = self._gpu("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if index >= len(gpu.migs):
            raise nvml_error(NVML_ERROR_NOT_FOUND)
        return FakeHandle(handle.gpu, index)

    def nvmlDeviceGetGpuInstanceId(self, handle: FakeHandle) -> int:
        mig = self._mig("nvmlDeviceGetGpuInstanceId", handle)
        if mig is None:
            raise nvml_error(NVML_ERROR_INVALID_ARGUMENT)
        return mig.gpu_instance_id

    def nvmlDeviceGetComputeInstanceId(self, handle: FakeHandle) -> int:
        mig = self._mig("nvmlDeviceGetComputeInstanceId", handle)
        if mig is None:
            raise nvml_error(NVML_ERROR_INVALID_ARGUMENT)
        return mig.compute_instance_id

    # -- processes --------------------------------------------------------------------------

    def _processes(self, function: str, handle: FakeHandle, kind: str) -> list[Struct]:
        gpu = self._gpu(function, handle)
        procs = gpu.compute if kind == "compute" else gpu.graphics
        # v2/v3 map NVML_VALUE_NOT_AVAILABLE to None; the v1 path of old pynvml passed it on.
        not_available = ULLONG_MAX if not function.endswith(("_v2", "_v3")) else None
        return [
            Struct(
                {
                    "pid": p.pid,
                    "usedGpuMemory": p.used_memory_bytes
                    if p.used_memory_bytes is not None
                    else not_available,
                }
            )
            for p in procs
        ]

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses_v3", handle, "compute")

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses_v2", handle, "compute")

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses", handle, "compute")

    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetGraphicsRunningProcesses_v3", handle, "graphics")

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetGraphicsRunningProcesses_v2", handle, "graphics")

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetGraphicsRunningProcesses", handle, "graphics")

    def nvmlDeviceGetProcessUtilization(
        self, handle: FakeHandle, last_seen_us: int
    ) -> list[Struct]:
        gpu = self._gpu("nvmlDeviceGetProcessUtilization", handle)
        self.util_timestamps.append((handle.gpu, last_seen_us))
        fresh = [s for s in gpu.util_samples if s[1] > last_seen_us]
        if not fresh:
            raise nvml_error(NVML_ERROR_NOT_FOUND)
        return [
            Struct(
                {
                    "pid": pid,
                    "timeStamp": ts,
                    "smUtil": sm,
                    "memUtil": 0,
                    "encUtil": 0,
                    "decUtil": 0,
                }
            )
            for pid, ts, sm in fresh
        ]

    # -- events -----------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> int:
        self._enter("nvmlEventSetCreate")
        event_set = next(self._set_ids)
        self.event_sets[event_set] = None
        return event_set

    def nvmlDeviceRegisterEvents(self, handle: FakeHandle, mask: int, event_set: int) -> None:
        gpu = self._gpu("nvmlDeviceRegisterEvents", handle)
        if not gpu.xid_supported:
            raise nvml_error(NVML_ERROR_NOT_SUPPORTED)
        self.event_sets[event_set] = handle.gpu

    def nvmlEventSetWait(self, event_set: int, timeout_ms: int) -> Struct:
        self._enter("nvmlEventSetWait")
        index = self.event_sets[event_set]
        if index is not None and self.gpus[index].xid_events:
            code = self.gpus[index].xid_events.pop(0)
            return Struct({"device": FakeHandle(index), "eventType": 0x8, "eventData": code})
        raise nvml_error(NVML_ERROR_TIMEOUT)

    def nvmlEventSetFree(self, event_set: int) -> None:
        self._enter("nvmlEventSetFree")
        del self.event_sets[event_set]


# -- named scenarios -------------------------------------------------------------------------


def _two_gpus() -> list[FakeGpu]:
    busy = FakeGpu(
        uuid="GPU-11111111-2222-3333-4444-555555555555",
        compute=[
            FakeProcess(pid=4242, name="python3", used_memory_bytes=20 * GIB),
            FakeProcess(pid=4343, name="torchrun", used_memory_bytes=None),
        ],
        graphics=[FakeProcess(pid=777, name="Xorg", used_memory_bytes=64 * 1024**2)],
        util_samples=[(4242, 1_000_000, 50), (4242, 2_000_000, 93), (4343, 1_500_000, 7)],
    )
    idle = FakeGpu(
        uuid="GPU-66666666-7777-8888-9999-000000000000",
        pci_bus_id="00000000:2A:00.0",
        util_gpu=0,
        util_mem=0,
        mem_used=0,
        power_mw=69000,
        pstate=8,
        throttle_mask=0x1,
    )
    return [busy, idle]


def healthy_two_gpus() -> FakeNvml:
    """Two H100s: one busy with three processes (one graphics), one idle."""
    return FakeNvml(_two_gpus())


def fields_not_supported() -> FakeNvml:
    """Fan, power, ECC, encoder/decoder, PCIe and temperature thresholds answer NOT_SUPPORTED."""
    gpus = _two_gpus()
    for gpu in gpus:
        gpu.fan_pct = gpu.power_mw = gpu.power_limit_mw = None
        gpu.ecc_corrected = gpu.ecc_uncorrected = None
        gpu.encoder = gpu.decoder = None
        gpu.pcie_tx_kb_s = gpu.pcie_rx_kb_s = None
        gpu.temp_slowdown_c = gpu.temp_shutdown_c = None
    return FakeNvml(gpus)


def one_gpu_lost() -> FakeNvml:
    """GPU 1 answers the first sample, then falls off the bus (GPU_IS_LOST)."""
    gpus = _two_gpus()
    gpus[1].lost_after_reads = 1
    return FakeNvml(gpus)


def driver_not_loaded() -> FakeNvml:
    """pynvml is installed but nvmlInit fails: no kernel driver."""
    return FakeNvml(_two_gpus(), init_error=NVML_ERROR_DRIVER_NOT_LOADED)


def old_process_api() -> FakeNvml:
    """An old pynvml: only the v1 process functions, no clocks-event or TemperatureV names."""
    missing = {
        "nvmlDeviceGetComputeRunningProcesses_v3",
        "nvmlDeviceGetComputeRunningProcesses_v2",
        "nvmlDeviceGetGraphicsRunningProcesses_v3",
        "nvmlDeviceGetGraphicsRunningProcesses_v2",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetTemperatureV",
    }
    return FakeNvml(_two_gpus(), missing=missing)


def broken_process_list() -> FakeNvml:
    """The process queries fail (UNKNOWN on GPU 0, NO_PERMISSION on GPU 1); all else works."""
    gpus = _two_gpus()
    for gpu, code in zip(gpus, (NVML_ERROR_UNKNOWN, NVML_ERROR_NO_PERMISSION), strict=True):
        for kind in ("Compute", "Graphics"):
            for suffix in ("_v3", "_v2", ""):
                gpu.errors[f"nvmlDeviceGet{kind}RunningProcesses{suffix}"] = code
    return FakeNvml(gpus)


def mig_enabled() -> FakeNvml:
    """GPU 0 in MIG mode with two MIG devices; GPU 1 MIG-capable with MIG off."""
    gpus = _two_gpus()
    gpus[0].mig_mode = 1
    gpus[0].migs = [
        FakeMig(uuid="MIG-aaaaaaaa-0000-0000-0000-000000000001", gpu_instance_id=1,
                compute_instance_id=0),
        FakeMig(uuid="MIG-aaaaaaaa-0000-0000-0000-000000000002", gpu_instance_id=2,
                compute_instance_id=0, profile="3g.40gb", mem_total_bytes=40 * GIB,
                mem_used_bytes=0),
    ]  # fmt: skip
    gpus[1].mig_mode = 0
    return FakeNvml(gpus)


def bytes_strings() -> FakeNvml:
    """An old pynvml that returns bytes for names, UUIDs and versions."""
    return FakeNvml(_two_gpus(), bytes_strings=True)


SCENARIOS: dict[str, Callable[[], FakeNvml] | None] = {
    "healthy_two_gpus": healthy_two_gpus,
    "fields_not_supported": fields_not_supported,
    "one_gpu_lost": one_gpu_lost,
    "no_library": None,
    "driver_not_loaded": driver_not_loaded,
    "old_process_api": old_process_api,
    "broken_process_list": broken_process_list,
    "mig_enabled": mig_enabled,
    "bytes_strings": bytes_strings,
}
"""Scenario name -> builder; ``None`` means pynvml cannot be imported at all."""
