"""NvmlGpuSource against the real driver; run on a machine with an NVIDIA GPU.

Needs only pytest and nvidia-ml-py (no web stack): ``python3 -m pytest tests/gpu -m gpu -s``.
Every test skips, with the reason NVML gives, where no GPU is visible.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator

import pytest

from gpufleet.collectors.nvml import NvmlGpuSource, probe_nvml
from gpufleet.model import GpuSample, GpuSourceStatus

pytestmark = pytest.mark.gpu

MIB = 1024**2


@pytest.fixture(scope="module")
def probed() -> GpuSourceStatus:
    status = probe_nvml()
    if not status.available:
        pytest.skip(f"no NVIDIA GPU visible to NVML: {status.reason}")
    return status


@pytest.fixture(scope="module")
def source(probed: GpuSourceStatus) -> Iterator[NvmlGpuSource]:
    gpu_source = NvmlGpuSource()
    yield gpu_source
    gpu_source.close()


@pytest.fixture(scope="module")
def first(source: NvmlGpuSource) -> tuple[GpuSample, ...]:
    return source.sample(time.time())


def test_status_names_driver_and_nvml_versions(
    source: NvmlGpuSource, probed: GpuSourceStatus
) -> None:
    status = source.status()
    assert status.available is True
    assert status.library_installed is True
    assert status.gpu_count == probed.gpu_count >= 1
    assert status.driver_version
    assert re.fullmatch(r"\d+\.\d+(\.\d+)*", status.driver_version)
    assert status.nvml_version
    assert status.reason is None


def test_every_gpu_has_identity_and_memory(
    first: tuple[GpuSample, ...], probed: GpuSourceStatus
) -> None:
    assert [s.index for s in first] == list(range(probed.gpu_count))
    for gpu in first:
        assert gpu.lost is False, gpu.error
        assert gpu.uuid.startswith("GPU-")
        assert gpu.name
        assert gpu.pci_bus_id
        assert gpu.cuda_capability is not None
        assert re.fullmatch(r"\d+\.\d+", gpu.cuda_capability)
        assert gpu.mem_total_bytes is not None
        assert gpu.mem_total_bytes > 0
        assert gpu.mem_used_bytes is not None
        assert gpu.mem_free_bytes is not None
        assert 0 <= gpu.mem_used_bytes <= gpu.mem_total_bytes
        assert gpu.util_gpu_pct is not None
        assert 0 <= gpu.util_gpu_pct <= 100
        assert gpu.pstate is None or re.fullmatch(r"P\d{1,2}", gpu.pstate)
        assert gpu.throttle_reasons is None or isinstance(gpu.throttle_reasons, tuple)
        if gpu.power_w is not None and gpu.power_limit_w is not None:
            assert 0 < gpu.power_w < 2 * gpu.power_limit_w
        if gpu.temp_c is not None:
            assert 0 < gpu.temp_c < 120


def test_sample_twice_and_print_latency(source: NvmlGpuSource, probed: GpuSourceStatus) -> None:
    durations_ms: list[float] = []
    for _ in range(10):
        start = time.perf_counter()
        samples = source.sample(time.time())
        durations_ms.append((time.perf_counter() - start) * 1000)
        assert len(samples) == probed.gpu_count
        assert not any(s.lost for s in samples)
    print(
        f"\nNvmlGpuSource.sample() for {probed.gpu_count} GPU(s): "
        f"median {statistics.median(durations_ms):.2f} ms, max {max(durations_ms):.2f} ms"
    )


def test_matches_nvidia_smi(first: tuple[GpuSample, ...]) -> None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        pytest.skip("nvidia-smi is not on PATH")
    result = subprocess.run(
        [smi, "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = [line.split(", ") for line in result.stdout.strip().splitlines()]
    expected = {int(index): (uuid, int(total_mib)) for index, uuid, total_mib in rows}
    seen = {s.index: (s.uuid, (s.mem_total_bytes or 0) // MIB) for s in first}
    assert seen == expected
