"""GPU wire schemas: seed 002's field names and nesting, with gpufleet's additions."""

from __future__ import annotations

from pydantic import BaseModel, Field

from gpufleet.model import GpuProcess, GpuSample, GpuSourceStatus, Snapshot
from gpufleet.timeparse import iso

MIB = 1024 * 1024


def mib(value: int | None) -> float | None:
    """Bytes as MiB with one decimal, as seed 002's ``*_mb`` fields.

    Seed 002 says "MB" but its numbers are MiB (24576 for a 24 GiB card).
    """
    return None if value is None else round(value / MIB, 1)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


class GpuInfo(BaseModel):
    """``GET /gpu/info`` (seed 002 step 7), plus why GPUs are unavailable."""

    available: bool
    gpu_count: int
    pynvml_installed: bool
    source: str
    driver_version: str | None = None
    nvml_version: str | None = None
    reason: str | None = None

    @classmethod
    def from_status(cls, status: GpuSourceStatus) -> GpuInfo:
        """From the source's start-up status."""
        return cls(
            available=status.available,
            gpu_count=status.gpu_count,
            pynvml_installed=status.library_installed,
            source=status.source,
            driver_version=status.driver_version,
            nvml_version=status.nvml_version,
            reason=status.reason,
        )


class Utilization(BaseModel):
    gpu_percent: float | None
    memory_percent: float | None
    encoder_percent: float | None = None
    decoder_percent: float | None = None


class Memory(BaseModel):
    total_mb: float | None
    used_mb: float | None
    free_mb: float | None
    utilization_percent: float | None


class Temperature(BaseModel):
    current_celsius: float | None
    slowdown_threshold_celsius: float | None = None
    shutdown_threshold_celsius: float | None = None


class Power(BaseModel):
    power_draw_watts: float | None
    power_limit_watts: float | None
    power_usage_percent: float | None


class Clocks(BaseModel):
    graphics_clock_mhz: float | None
    sm_clock_mhz: float | None
    memory_clock_mhz: float | None


class Pcie(BaseModel):
    tx_bytes_per_s: float | None
    rx_bytes_per_s: float | None


class Ecc(BaseModel):
    corrected_total: int | None
    uncorrected_total: int | None


class MigInstanceOut(BaseModel):
    uuid: str
    gpu_instance_id: int | None
    compute_instance_id: int | None
    profile: str | None
    memory_total_mb: float | None
    memory_used_mb: float | None


class Mig(BaseModel):
    mode_enabled: bool | None
    instances: list[MigInstanceOut]


class ProcessOut(BaseModel):
    """A GPU process; seed 002's three fields first, then attribution."""

    pid: int
    process_name: str | None
    used_memory_mb: float | None
    sm_utilization_percent: float | None = None
    type: str = "compute"
    namespace: str = "unknown"
    user: str = "unknown"
    workload: str = "unknown"
    workload_kind: str | None = None
    unix_user: str | None = None
    container_id: str | None = None
    pod: str | None = None
    slurm_job_id: str | None = None

    @classmethod
    def from_process(cls, proc: GpuProcess) -> ProcessOut:
        a = proc.attribution
        return cls(
            pid=proc.pid,
            process_name=proc.name,
            used_memory_mb=mib(proc.used_memory_bytes),
            sm_utilization_percent=proc.sm_util_pct,
            type=proc.kind,
            namespace=a.namespace,
            user=a.user,
            workload=a.workload,
            workload_kind=a.workload_kind,
            unix_user=a.unix_user,
            container_id=a.container_id,
            pod=a.pod,
            slurm_job_id=a.slurm_job_id,
        )


class GpuMetrics(BaseModel):
    """One GPU (seed 002 ``/gpu/metrics/{gpu_id}``)."""

    gpu_id: int = Field(description="Index on its node (a display hint; the UUID identifies).")
    gpu_name: str | None
    gpu_uuid: str
    driver_version: str | None
    utilization: Utilization
    memory: Memory
    temperature: Temperature
    power: Power
    clocks: Clocks
    processes: list[ProcessOut]
    performance_state: str | None
    fan_speed_percent: float | None
    lost: bool = False
    error: str | None = None
    pci_bus_id: str | None = None
    cuda_capability: str | None = None
    pcie: Pcie
    ecc: Ecc
    xid_errors: list[int]
    throttle_reasons: list[str] | None
    mig: Mig
    allocated: bool

    @classmethod
    def from_sample(cls, s: GpuSample) -> GpuMetrics:
        """From a collector record."""
        return cls(
            gpu_id=s.index,
            gpu_name=s.name,
            gpu_uuid=s.uuid,
            driver_version=s.driver_version,
            utilization=Utilization(
                gpu_percent=s.util_gpu_pct,
                memory_percent=s.util_mem_pct,
                encoder_percent=s.util_encoder_pct,
                decoder_percent=s.util_decoder_pct,
            ),
            memory=Memory(
                total_mb=mib(s.mem_total_bytes),
                used_mb=mib(s.mem_used_bytes),
                free_mb=mib(s.mem_free_bytes),
                utilization_percent=_r(s.mem_used_pct),
            ),
            temperature=Temperature(
                current_celsius=s.temp_c,
                slowdown_threshold_celsius=s.temp_slowdown_c,
                shutdown_threshold_celsius=s.temp_shutdown_c,
            ),
            power=Power(
                power_draw_watts=_r(s.power_w),
                power_limit_watts=_r(s.power_limit_w),
                power_usage_percent=_r(s.power_pct),
            ),
            clocks=Clocks(
                graphics_clock_mhz=s.clock_graphics_mhz,
                sm_clock_mhz=s.clock_sm_mhz,
                memory_clock_mhz=s.clock_mem_mhz,
            ),
            processes=[ProcessOut.from_process(p) for p in s.processes],
            performance_state=s.pstate,
            fan_speed_percent=s.fan_pct,
            lost=s.lost,
            error=s.error,
            pci_bus_id=s.pci_bus_id,
            cuda_capability=s.cuda_capability,
            pcie=Pcie(tx_bytes_per_s=s.pcie_tx_bytes_per_s, rx_bytes_per_s=s.pcie_rx_bytes_per_s),
            ecc=Ecc(
                corrected_total=s.ecc_corrected_total, uncorrected_total=s.ecc_uncorrected_total
            ),
            xid_errors=list(s.xid_errors),
            throttle_reasons=None if s.throttle_reasons is None else list(s.throttle_reasons),
            mig=Mig(
                mode_enabled=s.mig_mode,
                instances=[
                    MigInstanceOut(
                        uuid=m.uuid,
                        gpu_instance_id=m.gpu_instance_id,
                        compute_instance_id=m.compute_instance_id,
                        profile=m.profile,
                        memory_total_mb=mib(m.mem_total_bytes),
                        memory_used_mb=mib(m.mem_used_bytes),
                    )
                    for m in s.mig_instances
                ],
            ),
            allocated=s.allocated,
        )


def mean_of(values: list[float | None]) -> float | None:
    """Mean of the readings present (unsupported ones are skipped, not zeros)."""
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 2) if present else None


def _total(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present), 2) if present else None


class GpuMetricsCollection(BaseModel):
    """All GPUs of the node (seed 002 ``/gpu/metrics``)."""

    timestamp: str
    instance_id: str
    node: str
    cluster: str
    gpu_count: int
    gpus: list[GpuMetrics]
    total_memory_used_mb: float | None
    total_memory_total_mb: float | None
    average_gpu_utilization: float | None
    average_memory_utilization: float | None
    average_temperature: float | None
    total_power_draw_watts: float | None

    @classmethod
    def from_snapshot(cls, snap: Snapshot, instance_id: str) -> GpuMetricsCollection:
        """Aggregates ignore lost GPUs and unsupported readings (they are not zeros)."""
        gpus = [GpuMetrics.from_sample(g) for g in snap.gpus]
        live = [g for g in snap.gpus if not g.lost]
        return cls(
            timestamp=iso(snap.ts_s),
            instance_id=instance_id,
            node=snap.node,
            cluster=snap.cluster,
            gpu_count=len(gpus),
            gpus=gpus,
            total_memory_used_mb=_total([mib(g.mem_used_bytes) for g in live]),
            total_memory_total_mb=_total([mib(g.mem_total_bytes) for g in live]),
            average_gpu_utilization=mean_of([g.util_gpu_pct for g in live]),
            average_memory_utilization=mean_of([g.util_mem_pct for g in live]),
            average_temperature=mean_of([g.temp_c for g in live]),
            total_power_draw_watts=_total([g.power_w for g in live]),
        )
