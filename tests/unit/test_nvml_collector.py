"""NvmlGpuSource against the fake pynvml: named scenarios, exact unit conversions, caching."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pytest
from tests.fakes.fake_nvml import NVML_SUCCESS, FakeNvml
from tests.fakes.nvml_scenarios import (
    GIB,
    SCENARIOS,
    UUID0,
    UUID1,
    FakeClock,
    FakeGpu,
    FakeProcess,
    SourceFactory,
    by_uuid,
    bytes_strings,
    fields_not_supported,
    healthy_two_gpus,
    mig_enabled,
    one_gpu_lost,
)

from gpufleet.collectors.base import GpuSource
from gpufleet.collectors.nvml import REASON_NO_LIBRARY, NvmlGpuSource, probe_nvml
from gpufleet.collectors.nvml_fields import decode_throttle_reasons
from gpufleet.model import GpuSample


@dataclass
class Scenario:
    """A named scenario: the fake module (None: pynvml cannot be imported) and a clock."""

    name: str
    fake: FakeNvml | None
    clock: FakeClock

    def source(self) -> NvmlGpuSource:
        return NvmlGpuSource(self.fake, clock=self.clock)


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Scenario:
    """Every named scenario of tests/fakes/nvml_scenarios.py in turn."""
    build = SCENARIOS[request.param]
    if build is None:
        monkeypatch.setitem(sys.modules, "pynvml", None)
    return Scenario(request.param, build() if build else None, FakeClock())


@pytest.fixture
def source_for() -> Iterator[SourceFactory]:
    """Build sources on a fake module and close them after the test."""
    with SourceFactory(FakeClock()) as factory:
        yield factory


# -- every scenario ------------------------------------------------------------------------


def test_every_scenario_samples_twice_and_closes_without_raising(scenario: Scenario) -> None:
    source = scenario.source()
    assert isinstance(source, GpuSource)
    status = source.status()
    first = source.sample(1.0)
    second = source.sample(2.0)
    source.close()

    assert status.source == "nvml"
    assert status.available == (status.gpu_count > 0)
    if status.available:
        assert status.reason is None
        assert [s.index for s in first] == [0, 1]
        assert [s.uuid for s in second] == [UUID0, UUID1]
        assert all(s.uuid.startswith("GPU-") and isinstance(s.uuid, str) for s in second)
        # Only a GPU that falls off the bus is lost; odd answers on readings are not.
        assert not any(s.lost for s in first)
        assert any(s.lost for s in second) == (scenario.name == "one_gpu_lost")
        assert all(_finite_or_none(s) for s in (*first, *second))
    else:
        assert status.reason
        assert first == second == ()
    assert source.sample(3.0) == ()
    if scenario.fake is not None:
        assert scenario.fake.initialized == 0
        assert scenario.fake.event_sets == {}


def _finite_or_none(sample: GpuSample) -> bool:
    values = [getattr(sample, f.name) for f in fields(sample)]
    return all(math.isfinite(v) for v in values if isinstance(v, float))


def test_probe_reports_and_shuts_nvml_down() -> None:
    fake = healthy_two_gpus()
    status = probe_nvml(fake)
    assert status.available
    assert status.gpu_count == 2
    assert status.driver_version == "570.86.15"
    assert status.nvml_version == "12.570.86"
    assert fake.calls["nvmlInit"] == fake.calls["nvmlShutdown"] == 1
    assert fake.initialized == 0


# -- healthy -------------------------------------------------------------------------------


def test_healthy_readings_are_converted_to_named_units_exactly(
    source_for: SourceFactory,
) -> None:
    samples = by_uuid(source_for(healthy_two_gpus()).sample(1.0))
    busy, idle = samples[UUID0], samples[UUID1]

    assert busy.index == 0
    assert busy.name == "NVIDIA H100 80GB HBM3"
    assert busy.driver_version == "570.86.15"
    assert busy.pci_bus_id == "00000000:17:00.0"
    assert busy.cuda_capability == "9.0"
    assert busy.lost is False
    assert busy.error is None
    assert busy.util_gpu_pct == 87.0
    assert busy.util_mem_pct == 41.0
    assert busy.util_encoder_pct == 3.0
    assert busy.util_decoder_pct == 5.0
    assert busy.mem_total_bytes == 80 * GIB
    assert busy.mem_used_bytes == 30 * GIB
    assert busy.mem_free_bytes == 50 * GIB
    assert busy.temp_c == 61.0
    assert busy.temp_slowdown_c == 87.0
    assert busy.temp_shutdown_c == 92.0
    assert busy.power_w == 250.5
    assert busy.power_limit_w == 700.0
    assert busy.clock_graphics_mhz == 1755.0
    assert busy.clock_sm_mhz == 1755.0
    assert busy.clock_mem_mhz == 2619.0
    assert busy.pstate == "P0"
    assert busy.fan_pct == 45.0
    assert busy.pcie_tx_bytes_per_s == 1200 * 1024
    assert busy.pcie_rx_bytes_per_s == 3400 * 1024
    assert busy.ecc_corrected_total == 2
    assert busy.ecc_uncorrected_total == 0
    assert busy.throttle_reasons == ("sw_power_cap", "hw_thermal_slowdown")
    assert busy.mig_mode is None
    assert busy.mig_instances == ()
    assert busy.xid_errors == ()

    assert idle.power_w == 69.0
    assert idle.pstate == "P8"
    assert idle.throttle_reasons == ("gpu_idle",)
    assert idle.processes == ()
    assert idle.allocated is False


def test_nan_and_infinite_readings_become_none(source_for: SourceFactory) -> None:
    fake = healthy_two_gpus()
    fake.gpus[0].power_mw = float("inf")  # a value returned by the call itself
    fake.gpus[0].util_gpu = float("nan")  # a field of a returned struct
    fake.gpus[1].power_mw = float("-inf")
    samples = by_uuid(source_for(fake).sample(1.0))

    assert samples[UUID0].power_w is None
    assert samples[UUID0].util_gpu_pct is None
    assert samples[UUID0].power_pct is None
    assert samples[UUID0].util_mem_pct == 41.0
    assert samples[UUID1].power_w is None
    assert samples[UUID1].lost is False
    assert all(_finite_or_none(s) for s in samples.values())


def test_processes_carry_name_memory_kind_and_latest_sm_util(
    source_for: SourceFactory,
) -> None:
    busy = by_uuid(source_for(healthy_two_gpus()).sample(1.0))[UUID0]
    procs = {p.pid: p for p in busy.processes}

    assert sorted(procs) == [777, 4242, 4343]
    assert procs[4242].name == "python3"
    assert procs[4242].used_memory_bytes == 20 * GIB
    assert procs[4242].kind == "compute"
    assert procs[4242].sm_util_pct == 93.0  # the newer of its two samples
    assert procs[4343].used_memory_bytes is None  # NVML_VALUE_NOT_AVAILABLE
    assert procs[4343].sm_util_pct == 7.0
    assert procs[777].kind == "graphics"
    assert procs[777].name == "Xorg"
    assert procs[777].sm_util_pct is None  # no utilization sample for it
    assert busy.allocated is True


def test_process_utilization_asks_only_for_samples_since_the_last_seen(
    source_for: SourceFactory,
) -> None:
    fake = healthy_two_gpus()
    source = source_for(fake)
    source.sample(1.0)
    second = by_uuid(source.sample(2.0))[UUID0]
    fake.gpus[0].util_samples.append((4242, 3_000_000, 12))
    third = by_uuid(source.sample(3.0))[UUID0]

    gpu0_stamps = [ts for gpu, ts in fake.util_timestamps if gpu == 0]
    assert gpu0_stamps == [0, 2_000_000, 2_000_000]
    # No new sample since the last pass: per-process SM use is unknown, not 0.
    assert {p.pid: p.sm_util_pct for p in second.processes}[4242] is None
    assert {p.pid: p.sm_util_pct for p in third.processes}[4242] == 12.0


def test_an_empty_process_utilization_answer_is_quiet(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = healthy_two_gpus()
    # pynvml raises NVMLError(NVML_SUCCESS) when the driver has no samples to hand over.
    fake.gpus[0].errors["nvmlDeviceGetProcessUtilization"] = NVML_SUCCESS
    with caplog.at_level(logging.WARNING):
        busy = by_uuid(source_for(fake).sample(1.0))[UUID0]
    assert [p.sm_util_pct for p in busy.processes] == [None, None, None]
    assert caplog.records == []


def test_a_pid_in_both_lists_is_listed_once_as_compute(
    source_for: SourceFactory,
) -> None:
    fake = healthy_two_gpus()
    fake.gpus[0].graphics.append(FakeProcess(pid=4242, name="python3", used_memory_bytes=GIB))
    busy = by_uuid(source_for(fake).sample(1.0))[UUID0]
    rows = [p for p in busy.processes if p.pid == 4242]
    assert len(rows) == 1
    assert rows[0].kind == "compute"
    assert rows[0].used_memory_bytes == 20 * GIB


def test_process_names_are_looked_up_once_per_pid(
    source_for: SourceFactory,
) -> None:
    fake = healthy_two_gpus()
    source = source_for(fake)
    for t in range(3):
        source.sample(float(t))
    assert fake.calls["nvmlSystemGetProcessName"] == 3


def test_handles_and_fixed_facts_are_read_once(
    source_for: SourceFactory,
) -> None:
    fake = healthy_two_gpus()
    source = source_for(fake)
    for t in range(5):
        assert len(source.sample(float(t))) == 2
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 2
    assert fake.calls["nvmlDeviceGetUUID"] == 2
    assert fake.calls["nvmlDeviceGetName"] == 2
    assert fake.calls["nvmlDeviceGetPciInfo"] == 2
    assert fake.calls["nvmlDeviceGetTemperatureThreshold"] == 4
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == 10
    assert fake.calls["nvmlInit"] == 1


def test_a_changed_gpu_count_re_enumerates(
    source_for: SourceFactory,
) -> None:
    fake = healthy_two_gpus()
    source = source_for(fake)
    source.sample(1.0)
    fake.gpus.append(FakeGpu(uuid="GPU-third"))
    samples = source.sample(2.0)

    assert [s.uuid for s in samples] == [UUID0, UUID1, "GPU-third"]
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == 5
    assert source.status().gpu_count == 3


def test_a_gpu_that_leaves_the_list_is_reported_lost(
    source_for: SourceFactory,
) -> None:
    fake = healthy_two_gpus()
    source = source_for(fake)
    source.sample(1.0)
    del fake.gpus[0]
    samples = by_uuid(source.sample(2.0))

    assert samples[UUID1].index == 0
    assert samples[UUID1].lost is False
    assert samples[UUID0].lost is True
    assert samples[UUID0].error == "GPU is no longer visible to NVML"


def test_pcie_can_be_left_out(source_for: SourceFactory) -> None:
    fake = healthy_two_gpus()
    busy = by_uuid(source_for(fake, read_pcie=False).sample(1.0))[UUID0]
    assert busy.pcie_tx_bytes_per_s is None
    assert busy.pcie_rx_bytes_per_s is None
    assert fake.calls["nvmlDeviceGetPcieThroughput"] == 0


def test_unknown_pstate_is_none(source_for: SourceFactory) -> None:
    fake = healthy_two_gpus()
    fake.gpus[0].pstate = 32  # NVML_PSTATE_UNKNOWN
    assert by_uuid(source_for(fake).sample(1.0))[UUID0].pstate is None


def test_throttle_reason_bits_decode_to_names() -> None:
    assert decode_throttle_reasons(0) == ()
    assert decode_throttle_reasons(0x1FF) == (
        "gpu_idle",
        "applications_clocks_setting",
        "sw_power_cap",
        "hw_slowdown",
        "sync_boost",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake_slowdown",
        "display_clock_setting",
    )
    assert decode_throttle_reasons(0x8 | 0x80 | 0x10000) == (
        "hw_slowdown",
        "hw_power_brake_slowdown",
    )


# -- XID events ----------------------------------------------------------------------------


def test_xid_errors_are_reported_once_each(
    source_for: SourceFactory,
) -> None:
    fake = healthy_two_gpus()
    source = source_for(fake)
    source.sample(1.0)
    fake.gpus[1].xid_events.extend([48, 63])
    second = by_uuid(source.sample(2.0))
    third = by_uuid(source.sample(3.0))

    assert second[UUID1].xid_errors == (48, 63)
    assert second[UUID0].xid_errors == ()
    assert third[UUID1].xid_errors == ()


def test_xid_events_unsupported_are_skipped_silently(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = healthy_two_gpus()
    for gpu in fake.gpus:
        gpu.xid_supported = False
    source = source_for(fake)
    with caplog.at_level(logging.WARNING):
        samples = source.sample(1.0) + source.sample(2.0)
    assert all(s.xid_errors == () and not s.lost for s in samples)
    assert fake.calls["nvmlEventSetWait"] == 0
    assert fake.event_sets == {}  # the unused sets were freed
    assert caplog.records == []


def test_xid_before_a_gpu_falls_off_the_bus_is_kept(
    source_for: SourceFactory,
) -> None:
    fake = one_gpu_lost()
    source = source_for(fake)
    source.sample(1.0)
    fake.gpus[1].xid_events.append(79)
    lost = by_uuid(source.sample(2.0))[UUID1]
    assert lost.lost is True
    assert lost.xid_errors == (79,)


# -- not supported -------------------------------------------------------------------------


def test_fields_not_supported_are_none_and_the_rest_present(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        busy = by_uuid(source_for(fields_not_supported()).sample(1.0))[UUID0]

    for name in (
        "fan_pct",
        "power_w",
        "power_limit_w",
        "ecc_corrected_total",
        "ecc_uncorrected_total",
        "util_encoder_pct",
        "util_decoder_pct",
        "pcie_tx_bytes_per_s",
        "pcie_rx_bytes_per_s",
        "temp_slowdown_c",
        "temp_shutdown_c",
    ):
        assert getattr(busy, name) is None, name
    assert busy.power_pct is None
    assert busy.lost is False
    assert busy.util_gpu_pct == 87.0
    assert busy.temp_c == 61.0
    assert busy.mem_used_bytes == 30 * GIB
    assert busy.clock_sm_mhz == 1755.0
    assert len(busy.processes) == 3
    assert caplog.records == []  # NOT_SUPPORTED is normal, not worth a warning


# -- MIG and old libraries ----------------------------------------------------------------


def test_mig_mode_and_instances(source_for: SourceFactory) -> None:
    samples = by_uuid(source_for(mig_enabled()).sample(1.0))
    parent, plain = samples[UUID0], samples[UUID1]

    assert parent.mig_mode is True
    assert [m.uuid for m in parent.mig_instances] == [
        "MIG-aaaaaaaa-0000-0000-0000-000000000001",
        "MIG-aaaaaaaa-0000-0000-0000-000000000002",
    ]
    first, second = parent.mig_instances
    assert (first.gpu_instance_id, first.compute_instance_id) == (1, 0)
    assert first.profile == "1g.10gb"
    assert first.mem_total_bytes == 10 * GIB
    assert first.mem_used_bytes == 2 * GIB
    assert second.profile == "3g.40gb"
    assert second.mem_total_bytes == 40 * GIB
    assert second.mem_used_bytes == 0
    assert plain.mig_mode is False
    assert plain.mig_instances == ()


def test_bytes_from_old_pynvml_become_str(source_for: SourceFactory) -> None:
    source = source_for(bytes_strings())
    status = source.status()
    busy = by_uuid(source.sample(1.0))[UUID0]

    assert status.driver_version == "570.86.15"
    assert status.nvml_version == "12.570.86"
    assert busy.uuid == UUID0
    assert busy.name == "NVIDIA H100 80GB HBM3"
    assert busy.driver_version == "570.86.15"
    assert busy.pci_bus_id == "00000000:17:00.0"
    assert {p.name for p in busy.processes} == {"python3", "torchrun", "Xorg"}
    assert all(isinstance(p.name, str) for p in busy.processes)


# -- import boundary -----------------------------------------------------------------------


def test_module_imports_with_the_web_stack_and_pynvml_blocked() -> None:
    code = textwrap.dedent(
        """
        import sys
        for blocked in ("fastapi", "pydantic", "pydantic_settings", "httpx", "pynvml"):
            sys.modules[blocked] = None
        from gpufleet.collectors.nvml import NvmlGpuSource
        print(NvmlGpuSource().status().reason)
        """
    )
    src = Path(__file__).resolve().parents[2] / "src"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == REASON_NO_LIBRARY
