"""What the fake GPUs hold, the named NVML scenarios, and helpers the NVML tests share.

The scenarios (as gpustat's tests name theirs) each build a :class:`FakeNvml`; ``SCENARIOS``
maps their names to the builders, with ``None`` for "pynvml cannot be imported at all".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from tests.fakes.fake_nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_UNKNOWN,
    FakeNvml,
)

from gpufleet.collectors.nvml import NvmlGpuSource
from gpufleet.model import GpuSample

GIB = 1024**3
UUID0 = "GPU-11111111-2222-3333-4444-555555555555"
UUID1 = "GPU-66666666-7777-8888-9999-000000000000"


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
    util_gpu: float = 87
    util_mem: int = 41
    encoder: int | None = 3
    decoder: int | None = 5
    mem_total: int = 80 * GIB
    mem_used: int = 30 * GIB
    temp_c: int | None = 61
    temp_slowdown_c: int | None = 87
    temp_shutdown_c: int | None = 92
    power_mw: float | None = 250500
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


def _two_gpus() -> list[FakeGpu]:
    busy = FakeGpu(
        uuid=UUID0,
        compute=[
            FakeProcess(pid=4242, name="python3", used_memory_bytes=20 * GIB),
            FakeProcess(pid=4343, name="torchrun", used_memory_bytes=None),
        ],
        graphics=[FakeProcess(pid=777, name="Xorg", used_memory_bytes=64 * 1024**2)],
        util_samples=[(4242, 1_000_000, 50), (4242, 2_000_000, 93), (4343, 1_500_000, 7)],
    )
    idle = FakeGpu(
        uuid=UUID1,
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
    return FakeNvml(_two_gpus(), missing=missing, legacy_process_api=True)


def broken_process_list() -> FakeNvml:
    """The process queries fail (UNKNOWN on GPU 0, NO_PERMISSION on GPU 1); all else works."""
    gpus = _two_gpus()
    for gpu, code in zip(gpus, (NVML_ERROR_UNKNOWN, NVML_ERROR_NO_PERMISSION), strict=True):
        for kind in ("Compute", "Graphics"):
            for suffix in ("_v3", "_v2", ""):
                gpu.errors[f"nvmlDeviceGet{kind}RunningProcesses{suffix}"] = code
    return FakeNvml(gpus)


def unknown_error_field() -> FakeNvml:
    """GPU 0 answers UNKNOWN for its power reading only; the GPU itself keeps answering."""
    gpus = _two_gpus()
    gpus[0].errors["nvmlDeviceGetPowerUsage"] = NVML_ERROR_UNKNOWN
    return FakeNvml(gpus)


def library_mismatch_process_api() -> FakeNvml:
    """pynvml 13 on a driver without the _v3 and _v2 process symbols.

    The unsuffixed process functions then raise ``NVMLLibraryMismatchError``, so no process
    list can be read; every other reading works.
    """
    not_in_driver = {
        f"nvmlDeviceGet{kind}RunningProcesses{suffix}"
        for kind in ("Compute", "Graphics")
        for suffix in ("_v3", "_v2")
    }
    return FakeNvml(_two_gpus(), not_in_driver=not_in_driver)


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
    "unknown_error_field": unknown_error_field,
    "library_mismatch_process_api": library_mismatch_process_api,
    "mig_enabled": mig_enabled,
    "bytes_strings": bytes_strings,
}
"""Scenario name -> builder; ``None`` means pynvml cannot be imported at all."""


# -- helpers for the tests -------------------------------------------------------------------


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


class SourceFactory:
    """Builds NVML sources on fake modules with one clock; closes them all on exit."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._opened: list[NvmlGpuSource] = []

    def __call__(self, fake: FakeNvml, *, read_pcie: bool = True) -> NvmlGpuSource:
        source = NvmlGpuSource(fake, clock=self.clock, read_pcie=read_pcie)
        self._opened.append(source)
        return source

    def __enter__(self) -> SourceFactory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for source in self._opened:
            source.close()


def by_uuid(samples: tuple[GpuSample, ...]) -> dict[str, GpuSample]:
    """Samples keyed by GPU UUID."""
    return {s.uuid: s for s in samples}
