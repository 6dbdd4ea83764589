"""NvmlGpuSource against the fake pynvml: error codes, lost GPUs and API-version fallbacks."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from tests.fakes.fake_nvml import (
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_RESET_REQUIRED,
    NVML_ERROR_UNKNOWN,
    FakeNvml,
    NVMLLibraryMismatchError,
)
from tests.fakes.nvml_scenarios import (
    GIB,
    UUID0,
    UUID1,
    FakeClock,
    SourceFactory,
    broken_process_list,
    by_uuid,
    healthy_two_gpus,
    library_mismatch_process_api,
    old_process_api,
    one_gpu_lost,
    unknown_error_field,
)

from gpufleet.collectors.nvml import LOST_RETRY_S
from gpufleet.collectors.nvml_query import NvmlQuery
from gpufleet.model import GpuSample

LOGGER = "gpufleet.collectors.nvml"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def source_for(clock: FakeClock) -> Iterator[SourceFactory]:
    """Build sources on a fake module and close them after the test."""
    with SourceFactory(clock) as factory:
        yield factory


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# -- errors on readings ---------------------------------------------------------------------


def test_an_unexpected_error_code_is_none_and_logged_once(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = healthy_two_gpus()
    fake.gpus[0].errors["nvmlDeviceGetFanSpeed"] = NVML_ERROR_INVALID_ARGUMENT
    source = source_for(fake)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        samples = source.sample(1.0) + source.sample(2.0)

    assert [s.fan_pct for s in samples] == [None, 45.0, None, 45.0]
    assert len(caplog.records) == 1


def test_a_missing_function_is_logged_once(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeNvml(healthy_two_gpus().gpus, missing={"nvmlDeviceGetFanSpeed"})
    source = source_for(fake)
    with caplog.at_level(logging.WARNING, logger="gpufleet.collectors.nvml"):
        samples = [s for t in range(4) for s in source.sample(float(t))]

    assert all(s.fan_pct is None for s in samples)
    assert all(s.util_gpu_pct is not None for s in samples)
    warnings = [r for r in caplog.records if "nvmlDeviceGetFanSpeed" in r.getMessage()]
    assert len(warnings) == 1


def test_a_function_the_driver_lacks_is_logged_once(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeNvml(healthy_two_gpus().gpus, not_in_driver={"nvmlDeviceGetEnforcedPowerLimit"})
    source = source_for(fake)
    with caplog.at_level(logging.WARNING, logger="gpufleet.collectors.nvml"):
        samples = source.sample(1.0) + source.sample(2.0)

    assert all(s.power_limit_w is None and s.power_w is not None for s in samples)
    assert [r.getMessage() for r in caplog.records if "EnforcedPowerLimit" in r.getMessage()]
    assert len(caplog.records) == 1


def test_unknown_on_one_reading_is_none_logged_once_and_the_gpu_keeps_reporting(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = unknown_error_field()
    source = source_for(fake)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        samples = [by_uuid(source.sample(float(t))) for t in range(3)]

    for sample in samples:
        busy = sample[UUID0]
        assert busy.lost is False
        assert busy.error is None
        assert busy.power_w is None
        assert busy.power_limit_w == 700.0
        assert busy.util_gpu_pct == 87.0
        assert len(busy.processes) == 3
        assert sample[UUID1].power_w == 69.0
    assert len(warnings_about(caplog, "nvmlDeviceGetPowerUsage")) == 1
    assert len(caplog.records) == 1
    # Each UNKNOWN answer was checked against the GPU's UUID: 2 at listing + 3 confirmations.
    assert fake.calls["nvmlDeviceGetUUID"] == 5


def test_unknown_on_a_reading_and_on_the_uuid_marks_only_that_gpu_lost(
    source_for: SourceFactory,
) -> None:
    fake = unknown_error_field()
    source = source_for(fake)
    source.sample(1.0)
    fake.gpus[0].errors["nvmlDeviceGetUUID"] = NVML_ERROR_UNKNOWN
    samples = by_uuid(source.sample(2.0))

    assert samples[UUID0].lost is True
    assert samples[UUID0].error is not None
    assert "nvmlDeviceGetUUID" in samples[UUID0].error
    assert samples[UUID1].lost is False
    assert samples[UUID1].power_w == 69.0


@pytest.mark.parametrize("code", [NVML_ERROR_GPU_IS_LOST, NVML_ERROR_RESET_REQUIRED])
def test_a_lost_or_reset_required_answer_marks_only_that_gpu_lost(
    code: int, source_for: SourceFactory
) -> None:
    fake = healthy_two_gpus()
    fake.gpus[0].errors["nvmlDeviceGetPowerUsage"] = code
    samples = by_uuid(source_for(fake).sample(1.0))
    assert samples[UUID0].lost is True
    assert samples[UUID0].error is not None
    assert "nvmlDeviceGetPowerUsage" in samples[UUID0].error
    assert samples[UUID1].lost is False
    assert fake.event_sets == {2: 1}  # the lost GPU's XID event set (set 1) was freed


# -- lost GPUs ------------------------------------------------------------------------------


def test_one_gpu_lost_mid_run_while_the_other_keeps_reporting(source_for: SourceFactory) -> None:
    fake = one_gpu_lost()
    source = source_for(fake)
    first = by_uuid(source.sample(1.0))
    second = by_uuid(source.sample(2.0))

    assert not first[UUID1].lost
    assert first[UUID1].util_gpu_pct == 0.0
    lost = second[UUID1]
    assert lost == GpuSample(
        uuid=UUID1,
        index=1,
        name="NVIDIA H100 80GB HBM3",
        driver_version="570.86.15",
        pci_bus_id="00000000:2A:00.0",
        cuda_capability="9.0",
        lost=True,
        error=lost.error,
    )
    assert lost.error is not None
    assert "GPU is lost" in lost.error
    assert second[UUID0].lost is False
    assert second[UUID0].util_gpu_pct == 87.0
    assert source.status().available is True


def test_a_lost_gpu_is_asked_again_only_after_the_retry_interval(
    source_for: SourceFactory, clock: FakeClock
) -> None:
    fake = one_gpu_lost()
    source = source_for(fake)
    source.sample(1.0)
    source.sample(2.0)  # GPU 1 is lost here
    handle_lookups = fake.calls["nvmlDeviceGetHandleByIndex"]

    clock.now_s += LOST_RETRY_S - 1
    assert by_uuid(source.sample(3.0))[UUID1].lost is True
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == handle_lookups

    clock.now_s += 1
    assert by_uuid(source.sample(4.0))[UUID1].lost is True  # asked, still lost
    assert fake.calls["nvmlDeviceGetHandleByIndex"] == handle_lookups + 1

    fake.gpus[1].lost = False
    fake.gpus[1].lost_after_reads = None
    clock.now_s += LOST_RETRY_S
    back = by_uuid(source.sample(5.0))[UUID1]
    assert back.lost is False
    assert back.error is None
    assert back.util_gpu_pct == 0.0


def test_a_gpu_silent_while_listed_is_left_out_then_listed_again(
    source_for: SourceFactory, clock: FakeClock
) -> None:
    fake = healthy_two_gpus()
    fake.gpus[1].lost = True
    source = source_for(fake)
    assert [s.uuid for s in source.sample(1.0)] == [UUID0]
    assert source.status().gpu_count == 2

    fake.gpus[1].lost = False
    clock.now_s += LOST_RETRY_S - 1
    assert [s.uuid for s in source.sample(2.0)] == [UUID0]
    clock.now_s += 1
    assert [s.uuid for s in source.sample(3.0)] == [UUID0, UUID1]


# -- API versions ---------------------------------------------------------------------------


def test_old_process_api_falls_back_to_v1_and_remembers_it(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = old_process_api()
    source = source_for(fake)
    with caplog.at_level(logging.WARNING):
        first = by_uuid(source.sample(1.0))[UUID0]
        source.sample(2.0)

    procs = {p.pid: p for p in first.processes}
    assert sorted(procs) == [777, 4242, 4343]
    assert procs[4242].used_memory_bytes == 20 * GIB
    assert procs[4343].used_memory_bytes is None  # pynvml maps NOT_AVAILABLE to None
    assert first.throttle_reasons == ("sw_power_cap", "hw_thermal_slowdown")
    assert first.temp_c == 61.0
    # v1 answered for both GPUs on both samples; the newer names were tried only once.
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 4
    assert fake.calls["nvmlDeviceGetCurrentClocksThrottleReasons"] == 4
    assert caplog.records == []  # missing older API versions are expected


def test_the_newest_process_api_is_used_when_present(source_for: SourceFactory) -> None:
    fake = healthy_two_gpus()
    source_for(fake).sample(1.0)
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v3"] == 2
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 0
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses"] == 0


def test_a_driver_without_v3_falls_back_to_v2(source_for: SourceFactory) -> None:
    fake = FakeNvml(
        healthy_two_gpus().gpus,
        not_in_driver={
            "nvmlDeviceGetComputeRunningProcesses_v3",
            "nvmlDeviceGetGraphicsRunningProcesses_v3",
        },
    )
    source = source_for(fake)
    source.sample(1.0)
    busy = by_uuid(source.sample(2.0))[UUID0]
    assert len(busy.processes) == 3
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v3"] == 1
    assert fake.calls["nvmlDeviceGetComputeRunningProcesses_v2"] == 4


def test_broken_process_list_gives_no_processes_and_a_healthy_gpu(
    source_for: SourceFactory,
) -> None:
    samples = source_for(broken_process_list()).sample(1.0)
    assert len(samples) == 2
    for sample in samples:
        assert sample.lost is False
        assert sample.error is None
        assert sample.processes == ()
        assert sample.util_gpu_pct is not None
        assert sample.power_w is not None


def test_a_library_mismatch_makes_the_process_api_unavailable_once(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = library_mismatch_process_api()
    source = source_for(fake)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        samples = [s for t in range(3) for s in source.sample(float(t))]

    assert all(s.processes == () and not s.lost and s.error is None for s in samples)
    assert all(s.util_gpu_pct is not None for s in samples)
    # Each version was tried once, then the family was remembered as unavailable; pynvml's
    # unsuffixed wrapper called the driver's _v3 symbol once more itself.
    for kind in ("Compute", "Graphics"):
        name = f"nvmlDeviceGet{kind}RunningProcesses"
        assert [fake.calls[name + suffix] for suffix in ("_v3", "_v2", "")] == [2, 1, 1]
    assert len(warnings_about(caplog, "compute_processes")) == 1
    assert len(warnings_about(caplog, "graphics_processes")) == 1
    assert len(caplog.records) == 2


def test_a_library_mismatch_falls_through_to_the_next_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNvml([])
    calls: list[str] = []

    def unsuffixed(value: int) -> int:
        calls.append("unsuffixed")
        raise NVMLLibraryMismatchError("Unversioned function called")

    def older(value: int) -> int:
        calls.append("older")
        return value

    monkeypatch.setattr(fake, "nvmlThing", unsuffixed, raising=False)
    monkeypatch.setattr(fake, "nvmlThing_v1", older, raising=False)
    q = NvmlQuery(fake)
    assert q.first_of("thing", ("nvmlThing", "nvmlThing_v1"), 7) == 7
    assert q.first_of("thing", ("nvmlThing", "nvmlThing_v1"), 8) == 8
    assert q("nvmlThing", 9) is None  # remembered as unusable, not called again
    assert calls == ["unsuffixed", "older", "older"]


def test_an_argument_version_mismatch_falls_back_to_the_older_call(
    source_for: SourceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeNvml(healthy_two_gpus().gpus, version_mismatch={"nvmlDeviceGetTemperatureV"})
    source = source_for(fake)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        samples = source.sample(1.0) + source.sample(2.0)

    assert [s.temp_c for s in samples] == [61.0] * 4
    assert fake.calls["nvmlDeviceGetTemperatureV"] == 1
    assert fake.calls["nvmlDeviceGetTemperature"] == 4
    assert caplog.records == []


def test_an_unknown_answer_from_a_newer_version_is_not_remembered(
    source_for: SourceFactory,
) -> None:
    fake = healthy_two_gpus()
    for gpu in fake.gpus:
        gpu.errors["nvmlDeviceGetTemperatureV"] = NVML_ERROR_UNKNOWN
    source = source_for(fake)
    samples = source.sample(1.0) + source.sample(2.0)

    assert [s.temp_c for s in samples] == [61.0] * 4  # from the older call, each time
    assert not any(s.lost for s in samples)
    assert fake.calls["nvmlDeviceGetTemperatureV"] == 4  # asked again: it may recover
    fake.gpus[0].errors.clear()
    fake.gpus[1].errors.clear()
    source.sample(3.0)
    source.sample(4.0)
    assert fake.calls["nvmlDeviceGetTemperatureV"] == 8
    assert fake.calls["nvmlDeviceGetTemperature"] == 4  # once it answers, it is kept
