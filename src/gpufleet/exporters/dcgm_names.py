"""dcgm-exporter's metric names, types, units, help texts and labels, mapped onto GpuSample.

Dashboards and alert rules written for NVIDIA's dcgm-exporter (Grafana dashboard 12239, the
GPU Operator's rules) query these exact names and labels, so gpufleet reproduces them: the
field names and types of dcgm-exporter's ``etc/default-counters.csv``, its units (MiB for
framebuffer memory, KB for the NVML PCIe throughput fields), and its default label set
``gpu``, ``UUID``, ``pci_bus_id``, ``device``, ``modelName``, ``Hostname``,
``DCGM_FI_DRIVER_VERSION``, plus ``container`` / ``namespace`` / ``pod`` where its
Kubernetes pod mapping applies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gpufleet.model import GpuSample

MIB = 1024 * 1024
"""Bytes in a MiB: dcgm-exporter reports framebuffer memory in MiB."""

KB = 1024
"""Bytes in NVML's "KB" (its PCIe throughput unit)."""

GPU_LABELS: tuple[str, ...] = (
    "gpu",
    "UUID",
    "pci_bus_id",
    "device",
    "modelName",
    "Hostname",
    "DCGM_FI_DRIVER_VERSION",
)
"""dcgm-exporter's default labels on every GPU series, in its order."""

POD_LABELS: tuple[str, ...] = ("container", "namespace", "pod")
"""Labels dcgm-exporter adds when a GPU is mapped to a Kubernetes container."""

XID_ERRORS = "DCGM_FI_DEV_XID_ERRORS"
XID_ERRORS_HELP = "Value of the last XID error encountered."

MetricKind = Literal["gauge", "counter"]


@dataclass(frozen=True, slots=True)
class DcgmField:
    """One dcgm-exporter series and how to read its value from a GpuSample.

    Attributes:
        name: The DCGM field name, which dcgm-exporter uses verbatim as the metric name.
        kind: The Prometheus type dcgm-exporter declares for it.
        help: Help text in dcgm-exporter's wording and unit notation.
        read: Returns the value in dcgm-exporter's unit, or None when the GPU does not
            report it (the series is then left out, never exported as 0).
    """

    name: str
    kind: MetricKind
    help: str
    read: Callable[[GpuSample], float | None]


def _mib(value: int | None) -> float | None:
    # DCGM divides NVML's byte counts by 2**20 in integer arithmetic; floor to match.
    return None if value is None else float(value // MIB)


def _kb(value: float | None) -> float | None:
    return None if value is None else value / KB


def pstate_number(pstate: str | None) -> float | None:
    """Turn ``"P0"`` .. ``"P15"`` into 0 .. 15 (DCGM_FI_DEV_PSTATE); anything else is None."""
    if pstate is None or not pstate.startswith("P") or not pstate[1:].isdigit():
        return None
    return float(pstate[1:])


DCGM_FIELDS: tuple[DcgmField, ...] = (
    DcgmField(
        "DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda g: g.clock_sm_mhz
    ),
    DcgmField(
        "DCGM_FI_DEV_MEM_CLOCK",
        "gauge",
        "Memory clock frequency (in MHz).",
        lambda g: g.clock_mem_mhz,
    ),
    DcgmField("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda g: g.temp_c),
    DcgmField(
        "DCGM_FI_DEV_SLOWDOWN_TEMP",
        "gauge",
        "Slowdown temperature (in C).",
        lambda g: g.temp_slowdown_c,
    ),
    DcgmField(
        "DCGM_FI_DEV_SHUTDOWN_TEMP",
        "gauge",
        "Shutdown temperature (in C).",
        lambda g: g.temp_shutdown_c,
    ),
    DcgmField("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda g: g.power_w),
    DcgmField(
        "DCGM_FI_DEV_POWER_MGMT_LIMIT",
        "gauge",
        "Power management limit (in W).",
        lambda g: g.power_limit_w,
    ),
    # NVML's PCIe throughput is a KB/s rate over a 20 ms window, yet dcgm-exporter declares
    # these two fields counters; the type is kept so its dashboards and rules see no change.
    DcgmField(
        "DCGM_FI_DEV_PCIE_TX_THROUGHPUT",
        "counter",
        "PCIe TX throughput (in KB/s) via NVML.",
        lambda g: _kb(g.pcie_tx_bytes_per_s),
    ),
    DcgmField(
        "DCGM_FI_DEV_PCIE_RX_THROUGHPUT",
        "counter",
        "PCIe RX throughput (in KB/s) via NVML.",
        lambda g: _kb(g.pcie_rx_bytes_per_s),
    ),
    # DCGM deprecates the two fields above for these; newer dcgm-exporter configurations and
    # dashboards read them, so both spellings are served.
    DcgmField(
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "gauge",
        "The rate of data transmitted over the PCIe bus (in bytes per second).",
        lambda g: g.pcie_tx_bytes_per_s,
    ),
    DcgmField(
        "DCGM_FI_PROF_PCIE_RX_BYTES",
        "gauge",
        "The rate of data received over the PCIe bus (in bytes per second).",
        lambda g: g.pcie_rx_bytes_per_s,
    ),
    DcgmField("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda g: g.util_gpu_pct),
    DcgmField(
        "DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", lambda g: g.util_mem_pct
    ),
    DcgmField(
        "DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", lambda g: g.util_encoder_pct
    ),
    DcgmField(
        "DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", lambda g: g.util_decoder_pct
    ),
    DcgmField(
        "DCGM_FI_DEV_FB_FREE",
        "gauge",
        "Framebuffer memory free (in MiB).",
        lambda g: _mib(g.mem_free_bytes),
    ),
    DcgmField(
        "DCGM_FI_DEV_FB_USED",
        "gauge",
        "Framebuffer memory used (in MiB).",
        lambda g: _mib(g.mem_used_bytes),
    ),
    DcgmField(
        "DCGM_FI_DEV_FB_TOTAL",
        "gauge",
        "Framebuffer memory total (in MiB).",
        lambda g: _mib(g.mem_total_bytes),
    ),
    DcgmField("DCGM_FI_DEV_FAN_SPEED", "gauge", "Fan speed (in %).", lambda g: g.fan_pct),
    DcgmField(
        "DCGM_FI_DEV_PSTATE",
        "gauge",
        "Performance state (P-State) 0-15, 0 is highest.",
        lambda g: pstate_number(g.pstate),
    ),
    # The collector reads NVML's volatile ECC counters (since the driver loaded).
    DcgmField(
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "counter",
        "Total number of single-bit volatile ECC errors.",
        lambda g: g.ecc_corrected_total,
    ),
    DcgmField(
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "counter",
        "Total number of double-bit volatile ECC errors.",
        lambda g: g.ecc_uncorrected_total,
    ),
)
"""Every dcgm-exporter series served from a GpuSample field (XID is kept apart: it needs
the history of samples, not only the latest)."""

VERBATIM_COUNTERS: frozenset[str] = frozenset(f.name for f in DCGM_FIELDS if f.kind == "counter")
"""Counters whose exposed name has no ``_total`` suffix (dcgm-exporter's spelling)."""


def gpu_label_values(gpu: GpuSample, hostname: str) -> tuple[str, ...]:
    """Values for :data:`GPU_LABELS`, as dcgm-exporter fills them (empty when unknown)."""
    return (
        str(gpu.index),
        gpu.uuid,
        gpu.pci_bus_id or "",
        f"nvidia{gpu.index}",
        gpu.name or "",
        hostname,
        gpu.driver_version or "",
    )


def pod_label_sets(gpu: GpuSample) -> list[tuple[str, str, str]]:
    """Distinct ``(container, namespace, pod)`` of the Kubernetes processes on ``gpu``.

    dcgm-exporter emits one copy of each GPU series per container sharing the GPU, so a
    GPU time-sliced between pods yields one series per pod here too. Empty when no process
    on the GPU carries Kubernetes attribution; the series then have no pod labels. The
    container label holds the container ID, the only container identity gpufleet records.
    """
    found: set[tuple[str, str, str]] = set()
    for proc in gpu.processes:
        attr = proc.attribution
        if attr.pod is not None:
            found.add((attr.container_id or "", attr.k8s_namespace or "", attr.pod))
    return sorted(found)
