"""A stand-in for the ``pynvml`` module (nvidia-ml-py 13), configurable per scenario.

:class:`FakeNvml` is a real :class:`types.ModuleType` exposing the pynvml names the NVML
collector uses: functions, constants, ``NVMLError`` (whose constructor picks the subclass for
the code, as pynvml's does) and ``NVMLLibraryMismatchError``. Per-GPU readings live in
:class:`FakeGpu`; a reading set to ``None`` answers ``NOT_SUPPORTED``, as NVML does on a GPU
without that sensor. Every call the collector makes is counted in ``FakeNvml.calls``.

Behaviour copied from pynvml 13 (nvidia-ml-py 13.x ``pynvml.py``):

* every process-list function reports an unavailable ``usedGpuMemory`` as ``None``;
* the unsuffixed process-list functions call ``_v3`` and, where the driver lacks it, raise
  ``NVMLLibraryMismatchError`` (not an ``NVMLError``); with ``legacy_process_api`` they call
  the driver's v1 symbol instead, as pynvml releases before 11 did;
* ``NVMLError`` compares equal by code (``__eq__``), which also makes it unhashable.

What the fake GPUs hold (:class:`~tests.fakes.nvml_scenarios.FakeGpu`) and the named scenarios
(as gpustat's tests name theirs) live in :mod:`tests.fakes.nvml_scenarios`.
"""

# The double must answer to pynvml's own camelCase names.
# ruff: noqa: N802

from __future__ import annotations

import itertools
import types
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.nvml_scenarios import FakeGpu, FakeMig

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
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
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
    NVML_ERROR_RESET_REQUIRED: ("ResetRequired", "GPU requires restart"),
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "LibRmVersionMismatch",
        "RM has detected an NVML/RM version mismatch.",
    ),
    # pynvml has no text for this code and asks nvmlErrorString, whose answer varies by driver.
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH: ("ArgumentVersionMismatch", ""),
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


class NVMLError(Exception):
    """pynvml's base error: ``NVMLError(code)`` builds the subclass for ``code``."""

    _classes: dict[int, type[NVMLError]] = {}  # noqa: RUF012 (filled once below)
    _code = NVML_ERROR_UNKNOWN
    value: int

    def __new__(cls, value: int | None = None) -> NVMLError:
        kind = NVMLError._classes.get(value, cls) if cls is NVMLError and value is not None else cls
        error = Exception.__new__(kind)
        error.value = kind._code if value is None else value
        return error

    def __init__(self, value: int | None = None) -> None:
        super().__init__(self.value)

    def __str__(self) -> str:
        text = _ERROR_NAMES.get(self.value, ("", ""))[1]
        return text or f"NVML Error with code {self.value}"

    def __eq__(self, other: object) -> bool:
        # pynvml compares errors by code (and so, like it, leaves them unhashable).
        return self.value == getattr(other, "value", None)

    __hash__ = None  # type: ignore[assignment]


for _code, (_suffix, _text) in _ERROR_NAMES.items():
    NVMLError._classes[_code] = type(f"NVMLError_{_suffix}", (NVMLError,), {"_code": _code})

ERROR_CLASSES = dict(NVMLError._classes)


class NVMLLibraryMismatchError(Exception):
    """pynvml 13: an unsuffixed wrapper found no versioned symbol in the driver."""


def nvml_error(code: int) -> NVMLError:
    """The pynvml exception for ``code`` (a subclass instance, as pynvml raises)."""
    return NVMLError(code)


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


class FakeNvml(types.ModuleType):
    """A ``pynvml`` module double; see the module docstring.

    Args:
        gpus: The GPUs, in index order.
        init_error: NVML return code that ``nvmlInit`` raises.
        missing: Functions this "old pynvml" lacks (``AttributeError``).
        not_in_driver: Functions the "old driver" lacks (``FUNCTION_NOT_FOUND``).
        version_mismatch: Functions the driver has but whose struct version it does not take
            (``ARGUMENT_VERSION_MISMATCH``).
        bytes_strings: Return ``bytes`` for strings, as pynvml releases before 11.5 did.
        legacy_process_api: The unsuffixed process functions call the driver's v1 symbols, and
            there is no ``NVMLLibraryMismatchError``, as in pynvml releases before 11.
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
        version_mismatch: Iterable[str] = (),
        bytes_strings: bool = False,
        legacy_process_api: bool = False,
    ) -> None:
        super().__init__("pynvml")
        self.gpus = list(gpus)
        self.driver_version = driver_version
        self.nvml_version = nvml_version
        self.init_error = init_error
        self.missing = set(missing)
        self.not_in_driver = set(not_in_driver)
        self.version_mismatch = set(version_mismatch)
        self.bytes_strings = bytes_strings
        self.legacy_process_api = legacy_process_api
        self.calls: Counter[str] = Counter()
        self.util_timestamps: list[tuple[int, int]] = []
        """(gpu index, lastSeenTimeStamp) passed to nvmlDeviceGetProcessUtilization."""
        self.initialized = 0
        self.event_sets: dict[int, int | None] = {}
        self._set_ids = itertools.count(1)
        self.NVMLError = NVMLError
        if not legacy_process_api:
            self.NVMLLibraryMismatchError = NVMLLibraryMismatchError
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
        if function in self.version_mismatch:
            raise nvml_error(NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
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
        # Every pynvml release maps NVML_VALUE_NOT_AVAILABLE (ULLONG_MAX) to None here.
        return [Struct({"pid": p.pid, "usedGpuMemory": p.used_memory_bytes}) for p in procs]

    def _unversioned_processes(self, name: str, handle: FakeHandle, kind: str) -> list[Struct]:
        if self.legacy_process_api:
            return self._processes(name, handle, kind)
        # pynvml 13: the wrapper calls the _v3 function and turns its FUNCTION_NOT_FOUND into
        # NVMLLibraryMismatchError (pynvml.py: throwOnVersionMismatch).
        self.calls[name] += 1
        try:
            return self._processes(f"{name}_v3", handle, kind)
        except NVMLError as exc:
            if exc.value == NVML_ERROR_FUNCTION_NOT_FOUND:
                raise NVMLLibraryMismatchError(
                    "Unversioned function called and the pyNVML version does not match the "
                    f"NVML lib version. Use a versioned function such as {name}_v2"
                ) from None
            raise

    def nvmlDeviceGetComputeRunningProcesses_v3(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses_v3", handle, "compute")

    def nvmlDeviceGetComputeRunningProcesses_v2(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetComputeRunningProcesses_v2", handle, "compute")

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[Struct]:
        name = "nvmlDeviceGetComputeRunningProcesses"
        return self._unversioned_processes(name, handle, "compute")

    def nvmlDeviceGetGraphicsRunningProcesses_v3(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetGraphicsRunningProcesses_v3", handle, "graphics")

    def nvmlDeviceGetGraphicsRunningProcesses_v2(self, handle: FakeHandle) -> list[Struct]:
        return self._processes("nvmlDeviceGetGraphicsRunningProcesses_v2", handle, "graphics")

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: FakeHandle) -> list[Struct]:
        name = "nvmlDeviceGetGraphicsRunningProcesses"
        return self._unversioned_processes(name, handle, "graphics")

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
