"""NVIDIA GPUs through nvidia-ml-py, in process, with cached handles.

:class:`NvmlGpuSource` implements :class:`gpufleet.collectors.base.GpuSource`. It imports
``pynvml`` lazily, so this module loads with the standard library alone, and a missing library
or driver turns into a :class:`~gpufleet.model.GpuSourceStatus` that says what to do, never an
exception. A GPU that stops answering is reported ``lost`` while the others keep reporting.

Every NVML call goes through :class:`~gpufleet.collectors.nvml_query.NvmlQuery`; the per-field
readers live in :mod:`gpufleet.collectors.nvml_fields`.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

from gpufleet.collectors.nvml_fields import (
    TEMPERATURE_FUNCTIONS,
    GpuIdentity,
    ProcessReader,
    XidWatcher,
    as_float,
    as_int,
    read_identity,
    read_mig,
    read_throttle_reasons,
)
from gpufleet.collectors.nvml_query import (
    DRIVER_NOT_LOADED,
    LIB_RM_VERSION_MISMATCH,
    LIBRARY_NOT_FOUND,
    LOG,
    NO_PERMISSION,
    GpuLostError,
    NvmlQuery,
    decode_text,
    error_code,
    error_message,
)
from gpufleet.model import GpuSample, GpuSourceStatus

__all__ = ["INIT_RETRY_S", "LOST_RETRY_S", "NvmlGpuSource", "probe_nvml"]

INIT_RETRY_S = 60.0
"""After NVML failed to start, wait this long before trying again (the driver may load later)."""
LOST_RETRY_S = 30.0
"""Ask a lost GPU again only this often: calls to a wedged GPU can block for seconds."""

REASON_NO_LIBRARY = "nvidia-ml-py is not installed: pip install nvidia-ml-py"
REASON_NO_DRIVER = (
    "NVIDIA driver not loaded / libnvidia-ml.so not found: install the NVIDIA driver, "
    "or start the container with --gpus all"
)
REASON_NO_PERMISSION = (
    "insufficient permissions to open the NVIDIA devices: run as a user that can read /dev/nvidia*"
)
REASON_MISMATCH = (
    "NVIDIA driver and libnvidia-ml.so versions differ (driver upgraded without reboot): "
    "reboot or reload the nvidia kernel module"
)
REASON_NO_GPUS = "no NVIDIA GPUs visible: check nvidia-smi, or start the container with --gpus all"
REASON_CLOSED = "the NVML source was closed"

_INIT_REASONS = {
    DRIVER_NOT_LOADED: REASON_NO_DRIVER,
    LIBRARY_NOT_FOUND: REASON_NO_DRIVER,
    NO_PERMISSION: REASON_NO_PERMISSION,
    LIB_RM_VERSION_MISMATCH: REASON_MISMATCH,
}


@dataclass
class _GpuState:
    """What the source remembers about one GPU between samples."""

    index: int
    identity: GpuIdentity
    handle: Any | None
    processes: ProcessReader = field(default_factory=ProcessReader)
    xids: XidWatcher | None = None
    lost_error: str | None = None
    lost_at_s: float | None = None


class NvmlGpuSource:
    """GPU readings from NVML (nvidia-ml-py), one :class:`GpuSample` per GPU per call.

    NVML starts on the first :meth:`status` or :meth:`sample`; when it cannot (no driver yet),
    :meth:`sample` tries again every INIT_RETRY_S, so a GPU that appears later is picked up.
    Handles and fixed facts (UUID, name, PCI bus id, compute capability, temperature
    thresholds) are read once per GPU and re-read only when the GPU count changes. Thread-safe.

    Args:
        nvml: The ``pynvml`` module or a stand-in; ``None`` imports ``pynvml`` on first use.
        clock: Monotonic seconds, for the retry intervals.
        read_pcie: Read PCIe throughput. NVML's documentation says it counts bytes over a
            20 ms window on each call, so with two calls per GPU a sample takes longer.
    """

    name = "nvml"

    def __init__(
        self,
        nvml: ModuleType | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        read_pcie: bool = True,
    ) -> None:
        self._module = nvml
        self._clock = clock
        self._read_pcie = read_pcie
        self._lock = threading.Lock()
        self._q: NvmlQuery | None = None
        self._initialized = False
        self._closed = False
        self._started_at_s: float | None = None
        self._status = GpuSourceStatus(
            source="nvml", available=False, gpu_count=0, library_installed=nvml is not None
        )
        self._count: int | None = None
        self._listed_at_s = 0.0
        self._gpus: list[_GpuState] = []
        self._vanished: list[_GpuState] = []
        self._failed: set[str] = set()

    def status(self) -> GpuSourceStatus:
        """What NVML sees: GPU count, driver and NVML versions, or why it sees nothing.

        The first call starts NVML (when :meth:`sample` has not already); later calls return
        what the last start attempt or sample learnt, without calling NVML, so this is cheap
        enough to call on every API request. It follows the source: ``available`` turns True
        once a later :meth:`sample` starts NVML and sees a GPU.
        """
        if self._started_at_s is None:
            with self._lock:
                if self._started_at_s is None and not self._closed:
                    self._start()
        return self._status

    def sample(self, now_s: float) -> tuple[GpuSample, ...]:
        """Read every GPU once; first try to start NVML again if it is due.

        While NVML cannot start (no driver yet, say), this makes at most one start attempt per
        INIT_RETRY_S and otherwise returns at once.

        Args:
            now_s: Epoch seconds of this pass (the snapshot carries it; unused here).

        Returns:
            One sample per GPU in index order, lost GPUs included; ``()`` when NVML cannot run.
        """
        with self._lock:
            if self._closed or not self._ensure_started():
                return ()
            q = self._query()
            try:
                count = as_int(q("nvmlDeviceGetCount"))
            except GpuLostError:
                count = None
            if count is not None and (count != self._count or self._relist_due()):
                self._enumerate(q, count)
            samples = [self._sample_gpu(q, gpu) for gpu in self._gpus]
            samples.extend(self._lost_sample(gpu, ()) for gpu in self._vanished)
            return tuple(samples)

    def close(self) -> None:
        """Free the XID event sets and shut NVML down once (if it started); safe to repeat."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watchers = [g.xids for g in (*self._gpus, *self._vanished) if g.xids is not None]
            self._gpus = []
            self._vanished = []
            try:
                for watcher in watchers:
                    try:
                        watcher.close()
                    except Exception as exc:  # one bad event set must not keep NVML running
                        LOG.debug("freeing an XID event set failed: %s", exc)
            finally:
                self._shutdown()

    def _shutdown(self) -> None:
        was_running = self._initialized
        self._initialized = False
        if was_running and self._module is not None:
            try:
                self._module.nvmlShutdown()
            except Exception as exc:  # shutting down must not fail the caller's exit path
                LOG.debug("nvmlShutdown failed: %s", exc)
        reason = REASON_CLOSED if was_running else (self._status.reason or REASON_CLOSED)
        self._status = replace(self._status, available=False, reason=reason)

    # -- start-up -------------------------------------------------------------------------

    def _ensure_started(self) -> bool:
        if self._initialized:
            return True
        if self._started_at_s is not None and (
            not self._status.library_installed or self._clock() - self._started_at_s < INIT_RETRY_S
        ):
            return False
        self._start()
        return self._initialized

    def _start(self) -> None:
        """Import pynvml, initialise NVML and read the system facts; record why on failure."""
        self._started_at_s = self._clock()
        if self._module is None:
            try:
                self._module = importlib.import_module("pynvml")
            except ImportError:
                self._status = replace(
                    self._status, library_installed=False, reason=REASON_NO_LIBRARY
                )
                return
            except Exception as exc:  # a broken install must not stop host monitoring
                self._status = replace(
                    self._status,
                    library_installed=False,
                    reason=f"nvidia-ml-py failed to import ({exc}): "
                    "pip install --force-reinstall nvidia-ml-py",
                )
                return
        nvml = self._module
        self._status = replace(self._status, library_installed=True)
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError, or AttributeError from a shadowed pynvml
            code = error_code(exc)
            reason = _INIT_REASONS.get(code) if code is not None else None
            self._status = replace(
                self._status,
                available=False,
                reason=reason or f"NVML failed to start ({error_message(exc)})",
            )
            LOG.info("NVML unavailable: %s", self._status.reason)
            return
        self._initialized = True
        self._q = NvmlQuery(nvml)
        try:
            driver = decode_text(self._q("nvmlSystemGetDriverVersion"))
            version = decode_text(self._q("nvmlSystemGetNVMLVersion"))
            count = as_int(self._q("nvmlDeviceGetCount"))
        except GpuLostError as exc:
            driver = version = None
            count = None
            LOG.warning("NVML answered with an error while starting: %s", exc)
        self._status = replace(
            self._status, driver_version=driver, nvml_version=version, reason=None
        )
        self._set_count(count)

    def _query(self) -> NvmlQuery:
        if self._q is None:  # only reachable if called before _start succeeded
            raise RuntimeError("NVML is not initialised")
        return self._q

    def _set_count(self, count: int | None) -> None:
        if count is None:
            reason: str | None = "NVML could not count the GPUs; see the log for the error"
        else:
            reason = REASON_NO_GPUS if count == 0 else None
        self._status = replace(
            self._status,
            available=bool(count),
            gpu_count=count or 0,
            reason=reason,
        )

    # -- enumeration ----------------------------------------------------------------------

    def _relist_due(self) -> bool:
        """A GPU left out of the last listing (it did not answer) is looked for again."""
        return (
            self._count is not None
            and len(self._gpus) < self._count
            and self._clock() - self._listed_at_s >= LOST_RETRY_S
        )

    def _enumerate(self, q: NvmlQuery, count: int) -> None:
        """Look up handles by index; keep per-GPU history for GPUs seen before (by UUID)."""
        previous = {gpu.identity.uuid: gpu for gpu in (*self._gpus, *self._vanished)}
        self._gpus = []
        for index in range(count):
            try:
                handle = q.confirm("nvmlDeviceGetHandleByIndex", index)
                identity = read_identity(q, handle) if handle is not None else None
            except GpuLostError as exc:
                LOG.warning("GPU %d did not answer while being listed: %s", index, exc)
                continue
            if identity is None:
                LOG.warning("GPU %d has no UUID to track it by; it is left out", index)
                continue
            old = previous.pop(identity.uuid, None)
            if old is not None and old.xids is not None:
                old.xids.close()
            gpu = _GpuState(
                index=index,
                identity=identity,
                handle=handle,
                processes=old.processes if old is not None else ProcessReader(),
            )
            try:
                gpu.xids = XidWatcher(q, handle)
            except GpuLostError as exc:
                self._mark_lost(gpu, exc)
            self._gpus.append(gpu)
        # GPUs that left NVML's list stay visible as lost until the agent restarts.
        for gone in previous.values():
            if gone.xids is not None:
                gone.xids.close()
                gone.xids = None
            gone.handle = None
            gone.lost_error = gone.lost_error or "GPU is no longer visible to NVML"
        self._vanished = list(previous.values())
        self._count = count
        self._listed_at_s = self._clock()
        self._set_count(count)

    # -- one GPU --------------------------------------------------------------------------

    def _sample_gpu(self, q: NvmlQuery, gpu: _GpuState) -> GpuSample:
        if gpu.handle is None and not self._reattach(q, gpu):
            return self._lost_sample(gpu, ())
        xids = gpu.xids.poll() if gpu.xids is not None else ()
        unknown_before = q.unknown_answers
        try:
            sample = self._read(q, gpu, xids)
            if q.unknown_answers != unknown_before:
                # UNKNOWN from one reading is usually a driver quirk; if the GPU cannot even
                # say its UUID, it is failing and is reported lost.
                q.confirm("nvmlDeviceGetUUID", gpu.handle)
            return sample
        except GpuLostError as exc:
            self._mark_lost(gpu, exc)
            return self._lost_sample(gpu, xids)
        except Exception as exc:  # a surprise from one GPU must not hide the others
            if gpu.identity.uuid not in self._failed:
                self._failed.add(gpu.identity.uuid)
                LOG.exception("reading GPU %d failed", gpu.index)
            return replace(self._lost_sample(gpu, xids), lost=False, error=f"read failed: {exc}")

    def _reattach(self, q: NvmlQuery, gpu: _GpuState) -> bool:
        """Try a lost GPU again, at most every LOST_RETRY_S; True when it answers again."""
        if gpu.lost_at_s is not None and self._clock() - gpu.lost_at_s < LOST_RETRY_S:
            return False
        try:
            handle = q.confirm("nvmlDeviceGetHandleByIndex", gpu.index)
            uuid = None
            if handle is not None:
                uuid = decode_text(q.confirm("nvmlDeviceGetUUID", handle))
        except GpuLostError as exc:
            self._mark_lost(gpu, exc)
            return False
        if uuid != gpu.identity.uuid:
            gpu.lost_at_s = self._clock()
            return False
        gpu.handle, gpu.lost_error, gpu.lost_at_s = handle, None, None
        try:
            gpu.xids = XidWatcher(q, handle)
        except GpuLostError as exc:
            self._mark_lost(gpu, exc)
            return False
        LOG.warning("GPU %d (%s) answers again", gpu.index, gpu.identity.uuid)
        return True

    def _mark_lost(self, gpu: _GpuState, exc: GpuLostError) -> None:
        if gpu.lost_error is None:
            LOG.error("GPU %d (%s) stopped answering: %s", gpu.index, gpu.identity.uuid, exc)
        gpu.lost_error = f"GPU stopped answering NVML ({exc})"
        gpu.lost_at_s = self._clock()
        gpu.handle = None
        if gpu.xids is not None:
            gpu.xids.close()
            gpu.xids = None

    def _lost_sample(self, gpu: _GpuState, xids: tuple[int, ...]) -> GpuSample:
        ident = gpu.identity
        return GpuSample(
            uuid=ident.uuid,
            index=gpu.index,
            name=ident.name,
            driver_version=self._status.driver_version,
            pci_bus_id=ident.pci_bus_id,
            cuda_capability=ident.cuda_capability,
            lost=True,
            error=gpu.lost_error or "GPU stopped answering NVML",
            xid_errors=xids,
        )

    def _read(self, q: NvmlQuery, gpu: _GpuState, xids: tuple[int, ...]) -> GpuSample:
        """All per-sample fields of one GPU. Raises GpuLostError if it stops answering."""
        h = gpu.handle
        ident = gpu.identity
        util = q("nvmlDeviceGetUtilizationRates", h)
        encoder = q("nvmlDeviceGetEncoderUtilization", h)
        decoder = q("nvmlDeviceGetDecoderUtilization", h)
        memory = q("nvmlDeviceGetMemoryInfo", h)
        sensor = q.constant("NVML_TEMPERATURE_GPU", 0)
        pstate = as_int(q("nvmlDeviceGetPerformanceState", h))
        ecc_volatile = q.constant("NVML_VOLATILE_ECC", 0)
        ecc = "nvmlDeviceGetTotalEccErrors"
        pcie_tx = pcie_rx = None
        if self._read_pcie:
            # NVML reports KB/s with KB = 1024 bytes.
            pcie = "nvmlDeviceGetPcieThroughput"
            tx_counter = q.constant("NVML_PCIE_UTIL_TX_BYTES", 0)
            rx_counter = q.constant("NVML_PCIE_UTIL_RX_BYTES", 1)
            pcie_tx = as_float(q(pcie, h, tx_counter), multiply_by=1024)
            pcie_rx = as_float(q(pcie, h, rx_counter), multiply_by=1024)
        mig_mode, mig_instances = read_mig(q, h)
        return GpuSample(
            uuid=ident.uuid,
            index=gpu.index,
            name=ident.name,
            driver_version=self._status.driver_version,
            pci_bus_id=ident.pci_bus_id,
            cuda_capability=ident.cuda_capability,
            util_gpu_pct=as_float(getattr(util, "gpu", None)),
            util_mem_pct=as_float(getattr(util, "memory", None)),
            util_encoder_pct=as_float(_first(encoder)),
            util_decoder_pct=as_float(_first(decoder)),
            mem_total_bytes=as_int(getattr(memory, "total", None)),
            mem_used_bytes=as_int(getattr(memory, "used", None)),
            mem_free_bytes=as_int(getattr(memory, "free", None)),
            temp_c=as_float(q.first_of("temperature", TEMPERATURE_FUNCTIONS, h, sensor)),
            temp_slowdown_c=ident.temp_slowdown_c,
            temp_shutdown_c=ident.temp_shutdown_c,
            power_w=as_float(q("nvmlDeviceGetPowerUsage", h), divide_by=1000),
            power_limit_w=as_float(q("nvmlDeviceGetEnforcedPowerLimit", h), divide_by=1000),
            clock_graphics_mhz=self._clock_mhz(q, h, "NVML_CLOCK_GRAPHICS", 0),
            clock_sm_mhz=self._clock_mhz(q, h, "NVML_CLOCK_SM", 1),
            clock_mem_mhz=self._clock_mhz(q, h, "NVML_CLOCK_MEM", 2),
            pstate=None if pstate is None or not 0 <= pstate <= 15 else f"P{pstate}",
            fan_pct=as_float(q("nvmlDeviceGetFanSpeed", h)),
            pcie_tx_bytes_per_s=pcie_tx,
            pcie_rx_bytes_per_s=pcie_rx,
            ecc_corrected_total=as_int(
                q(ecc, h, q.constant("NVML_MEMORY_ERROR_TYPE_CORRECTED", 0), ecc_volatile)
            ),
            ecc_uncorrected_total=as_int(
                q(ecc, h, q.constant("NVML_MEMORY_ERROR_TYPE_UNCORRECTED", 1), ecc_volatile)
            ),
            xid_errors=xids,
            throttle_reasons=read_throttle_reasons(q, h),
            mig_mode=mig_mode,
            mig_instances=mig_instances,
            processes=gpu.processes.read(q, h),
        )

    @staticmethod
    def _clock_mhz(q: NvmlQuery, handle: Any, constant: str, default: int) -> float | None:
        return as_float(q("nvmlDeviceGetClockInfo", handle, q.constant(constant, default)))


def _first(pair: object) -> object:
    """First item of ``[value, sampling_period_us]`` as the encoder/decoder calls return."""
    return pair[0] if isinstance(pair, list | tuple) and pair else None


def probe_nvml(nvml: ModuleType | None = None) -> GpuSourceStatus:
    """Start NVML, count GPUs and shut it down again; what the ``auto`` source choice uses.

    Args:
        nvml: The ``pynvml`` module or a stand-in; ``None`` imports ``pynvml``.

    Returns:
        The status; ``available`` is True when at least one GPU is visible.
    """
    source = NvmlGpuSource(nvml)
    try:
        return source.status()
    finally:
        source.close()
