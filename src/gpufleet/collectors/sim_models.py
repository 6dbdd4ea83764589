"""Static facts of the GPU models the simulator can pretend to be.

Numbers are what ``nvidia-smi -q`` reports for each board (memory in MiB, enforced power
limit, thermal thresholds, application clocks, compute capability). Idle power and the
temperatures under load are typical readings of a well-cooled server, not datasheet values:
they only shape the simulated curves.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True, slots=True)
class GpuModel:
    """One GPU board as the simulator models it."""

    name: str
    """Product name exactly as NVML reports it."""
    mem_total_mib: int
    power_limit_w: float
    power_idle_w: float
    """Draw in P8 with no context."""
    temp_idle_c: float
    """Temperature at idle power in a cool chassis."""
    temp_full_load_c: float
    """Steady temperature at the power limit."""
    temp_slowdown_c: float
    temp_shutdown_c: float
    sm_clock_max_mhz: float
    sm_clock_idle_mhz: float
    mem_clock_max_mhz: float
    mem_clock_idle_mhz: float
    cuda_capability: str
    pcie_max_bytes_per_s: float
    """Practical one-direction PCIe throughput of the slot generation and width."""
    has_fan: bool
    """Passively cooled server boards report no fan speed (NVML: not supported)."""
    ecc: bool
    """ECC enabled by default, so NVML reports error counters."""
    has_encoder: bool
    """Whether the board has NVENC (H100/A100 have decoders only)."""
    mig: bool
    """Whether the board supports MIG (NVML reports the mode; others: not supported)."""

    @property
    def mem_total_bytes(self) -> int:
        """Total framebuffer memory in bytes."""
        return self.mem_total_mib * MIB


_GEN4_X16 = 25e9
_GEN5_X16 = 50e9
_GEN3_X16 = 12e9

GPU_MODELS: dict[str, GpuModel] = {
    m.name: m
    for m in (
        GpuModel(
            name="NVIDIA H100 80GB HBM3",
            mem_total_mib=81559,
            power_limit_w=700.0,
            power_idle_w=70.0,
            temp_idle_c=31.0,
            temp_full_load_c=72.0,
            temp_slowdown_c=87.0,
            temp_shutdown_c=92.0,
            sm_clock_max_mhz=1980.0,
            sm_clock_idle_mhz=345.0,
            mem_clock_max_mhz=2619.0,
            mem_clock_idle_mhz=2619.0,
            cuda_capability="9.0",
            pcie_max_bytes_per_s=_GEN5_X16,
            has_fan=False,
            ecc=True,
            has_encoder=False,
            mig=True,
        ),
        GpuModel(
            name="NVIDIA H200",
            mem_total_mib=143771,
            power_limit_w=700.0,
            power_idle_w=75.0,
            temp_idle_c=31.0,
            temp_full_load_c=73.0,
            temp_slowdown_c=87.0,
            temp_shutdown_c=92.0,
            sm_clock_max_mhz=1980.0,
            sm_clock_idle_mhz=345.0,
            mem_clock_max_mhz=3201.0,
            mem_clock_idle_mhz=3201.0,
            cuda_capability="9.0",
            pcie_max_bytes_per_s=_GEN5_X16,
            has_fan=False,
            ecc=True,
            has_encoder=False,
            mig=True,
        ),
        GpuModel(
            name="NVIDIA A100-SXM4-80GB",
            mem_total_mib=81920,
            power_limit_w=400.0,
            power_idle_w=58.0,
            temp_idle_c=30.0,
            temp_full_load_c=68.0,
            temp_slowdown_c=89.0,
            temp_shutdown_c=92.0,
            sm_clock_max_mhz=1410.0,
            sm_clock_idle_mhz=210.0,
            mem_clock_max_mhz=1593.0,
            mem_clock_idle_mhz=1593.0,
            cuda_capability="8.0",
            pcie_max_bytes_per_s=_GEN4_X16,
            has_fan=False,
            ecc=True,
            has_encoder=False,
            mig=True,
        ),
        GpuModel(
            name="NVIDIA A100-SXM4-40GB",
            mem_total_mib=40960,
            power_limit_w=400.0,
            power_idle_w=52.0,
            temp_idle_c=30.0,
            temp_full_load_c=67.0,
            temp_slowdown_c=89.0,
            temp_shutdown_c=92.0,
            sm_clock_max_mhz=1410.0,
            sm_clock_idle_mhz=210.0,
            mem_clock_max_mhz=1215.0,
            mem_clock_idle_mhz=1215.0,
            cuda_capability="8.0",
            pcie_max_bytes_per_s=_GEN4_X16,
            has_fan=False,
            ecc=True,
            has_encoder=False,
            mig=True,
        ),
        GpuModel(
            name="NVIDIA L40S",
            mem_total_mib=46068,
            power_limit_w=350.0,
            power_idle_w=34.0,
            temp_idle_c=29.0,
            temp_full_load_c=70.0,
            temp_slowdown_c=90.0,
            temp_shutdown_c=95.0,
            sm_clock_max_mhz=2520.0,
            sm_clock_idle_mhz=210.0,
            mem_clock_max_mhz=9001.0,
            mem_clock_idle_mhz=405.0,
            cuda_capability="8.9",
            pcie_max_bytes_per_s=_GEN4_X16,
            has_fan=False,
            ecc=True,
            has_encoder=True,
            mig=False,
        ),
        GpuModel(
            name="NVIDIA L4",
            mem_total_mib=23034,
            power_limit_w=72.0,
            power_idle_w=16.0,
            temp_idle_c=33.0,
            temp_full_load_c=74.0,
            temp_slowdown_c=92.0,
            temp_shutdown_c=96.0,
            sm_clock_max_mhz=2040.0,
            sm_clock_idle_mhz=210.0,
            mem_clock_max_mhz=6251.0,
            mem_clock_idle_mhz=405.0,
            cuda_capability="8.9",
            pcie_max_bytes_per_s=_GEN4_X16,
            has_fan=False,
            ecc=True,
            has_encoder=True,
            mig=False,
        ),
        GpuModel(
            name="NVIDIA GeForce RTX 4090",
            mem_total_mib=24564,
            power_limit_w=450.0,
            power_idle_w=21.0,
            temp_idle_c=34.0,
            temp_full_load_c=71.0,
            temp_slowdown_c=90.0,
            temp_shutdown_c=95.0,
            sm_clock_max_mhz=2520.0,
            sm_clock_idle_mhz=210.0,
            mem_clock_max_mhz=10501.0,
            mem_clock_idle_mhz=405.0,
            cuda_capability="8.9",
            pcie_max_bytes_per_s=_GEN4_X16,
            has_fan=True,
            ecc=False,
            has_encoder=True,
            mig=False,
        ),
        GpuModel(
            name="Tesla V100-SXM2-32GB",
            mem_total_mib=32768,
            power_limit_w=300.0,
            power_idle_w=42.0,
            temp_idle_c=32.0,
            temp_full_load_c=70.0,
            temp_slowdown_c=87.0,
            temp_shutdown_c=90.0,
            sm_clock_max_mhz=1530.0,
            sm_clock_idle_mhz=135.0,
            mem_clock_max_mhz=877.0,
            mem_clock_idle_mhz=877.0,
            cuda_capability="7.0",
            pcie_max_bytes_per_s=_GEN3_X16,
            has_fan=False,
            ecc=True,
            has_encoder=True,
            mig=False,
        ),
    )
}
"""Every simulated GPU model by its NVML product name."""

DEFAULT_MODEL = "NVIDIA H100 80GB HBM3"


def get_model(name: str) -> GpuModel:
    """Look a GPU model up by NVML name, case-insensitively, or by a unique part of it.

    ``"h100"`` finds ``NVIDIA H100 80GB HBM3``; ``"A100"`` is ambiguous and is refused.

    Raises:
        ValueError: no model, or more than one, matches ``name``; the message lists the
            known names.
    """
    wanted = name.strip().lower()
    for known, model in GPU_MODELS.items():
        if known.lower() == wanted:
            return model
    matches = [m for known, m in GPU_MODELS.items() if wanted and wanted in known.lower()]
    if len(matches) == 1:
        return matches[0]
    known_list = ", ".join(sorted(GPU_MODELS))
    if matches:
        names = ", ".join(sorted(m.name for m in matches))
        raise ValueError(f"GPU model {name!r} is ambiguous: it matches {names}")
    raise ValueError(f"unknown GPU model {name!r}; known models: {known_list}")
