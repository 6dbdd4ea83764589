"""NvmlGpuSource start-up, retry, status, close, and how ``open_gpu_source`` picks it."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from tests.fakes.fake_nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    FakeNvml,
)
from tests.fakes.nvml_scenarios import (
    UUID0,
    FakeClock,
    FakeGpu,
    SourceFactory,
    driver_not_loaded,
    healthy_two_gpus,
    one_gpu_lost,
)

from gpufleet.collectors.nvml import (
    INIT_RETRY_S,
    REASON_CLOSED,
    REASON_NO_DRIVER,
    REASON_NO_GPUS,
    REASON_NO_LIBRARY,
    REASON_NO_PERMISSION,
    NvmlGpuSource,
    probe_nvml,
)
from gpufleet.collectors.registry import NoGpuSource, SourceUnavailableError, open_gpu_source


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def source_for(clock: FakeClock) -> Iterator[SourceFactory]:
    """Build sources on a fake module and close them after the test."""
    with SourceFactory(clock) as factory:
        yield factory


@pytest.fixture
def block_pynvml_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import pynvml`` fail, as on a machine without nvidia-ml-py."""
    monkeypatch.setitem(sys.modules, "pynvml", None)


# -- library, driver, permissions ------------------------------------------------------------


@pytest.mark.usefixtures("block_pynvml_import")
def test_no_library_gives_a_status_not_an_import_error() -> None:
    source = NvmlGpuSource()
    status = source.status()
    assert status.available is False
    assert status.library_installed is False
    assert status.gpu_count == 0
    assert status.reason == REASON_NO_LIBRARY
    assert status.reason.startswith("nvidia-ml-py is not installed")
    assert source.sample(1.0) == ()
    source.close()
    assert probe_nvml().reason == REASON_NO_LIBRARY


@pytest.mark.parametrize("code", [NVML_ERROR_DRIVER_NOT_LOADED, NVML_ERROR_LIBRARY_NOT_FOUND])
def test_driver_not_loaded_is_explained_and_retried_later(code: int, clock: FakeClock) -> None:
    fake = driver_not_loaded()
    fake.init_error = code
    source = NvmlGpuSource(fake, clock=clock)

    status = source.status()
    assert status.library_installed is True
    assert status.available is False
    assert status.reason == REASON_NO_DRIVER
    assert status.reason.startswith("NVIDIA driver not loaded / libnvidia-ml.so not found")
    assert source.sample(1.0) == ()
    clock.now_s += INIT_RETRY_S - 1
    assert source.sample(2.0) == ()
    assert fake.calls["nvmlInit"] == 1

    fake.init_error = None  # the driver got loaded
    clock.now_s += 1
    assert len(source.sample(3.0)) == 2
    assert source.status().available is True
    source.close()
    source.close()
    assert fake.calls["nvmlShutdown"] == 1
    assert source.status().reason == REASON_CLOSED


def test_a_failing_start_is_tried_at_most_once_per_interval(clock: FakeClock) -> None:
    fake = driver_not_loaded()
    source = NvmlGpuSource(fake, clock=clock)
    for step in range(10):  # one sample every 15 s for 150 s
        assert source.sample(float(step)) == ()
        clock.now_s += INIT_RETRY_S / 4
    # At start, then at 60 s and 120 s: never more often than INIT_RETRY_S.
    assert fake.calls["nvmlInit"] == 3
    source.close()
    assert fake.calls["nvmlShutdown"] == 0


def test_status_follows_a_driver_loaded_later_without_calling_nvml(clock: FakeClock) -> None:
    fake = driver_not_loaded()
    source = NvmlGpuSource(fake, clock=clock)
    assert source.status().available is False
    calls = sum(fake.calls.values())

    fake.init_error = None
    clock.now_s += INIT_RETRY_S
    for _ in range(100):
        assert source.status().reason == REASON_NO_DRIVER  # status() never retries
    assert sum(fake.calls.values()) == calls

    assert len(source.sample(1.0)) == 2  # sample() does
    status = source.status()
    assert (status.available, status.gpu_count, status.reason) == (True, 2, None)
    assert status.driver_version == "570.86.15"
    calls = sum(fake.calls.values())
    for _ in range(100):
        source.status()
    assert sum(fake.calls.values()) == calls
    source.close()


def test_gpus_that_appear_after_start_make_the_source_available(
    source_for: SourceFactory,
) -> None:
    fake = FakeNvml([])
    source = source_for(fake)
    assert source.status().reason == REASON_NO_GPUS
    assert source.sample(1.0) == ()

    fake.gpus.append(FakeGpu(uuid=UUID0))
    assert [s.uuid for s in source.sample(2.0)] == [UUID0]
    status = source.status()
    assert (status.available, status.gpu_count, status.reason) == (True, 1, None)


def test_close_without_a_started_nvml_does_not_shut_it_down() -> None:
    fake = driver_not_loaded()
    source = NvmlGpuSource(fake)
    source.status()
    source.close()
    assert fake.calls["nvmlShutdown"] == 0
    assert source.status().reason == REASON_NO_DRIVER


def test_insufficient_permissions_are_explained() -> None:
    fake = FakeNvml([], init_error=NVML_ERROR_NO_PERMISSION)
    status = probe_nvml(fake)
    assert status.reason == REASON_NO_PERMISSION
    assert status.reason.startswith("insufficient permissions")


def test_no_gpus_visible_is_explained() -> None:
    source = NvmlGpuSource(FakeNvml([]))
    status = source.status()
    assert status.available is False
    assert status.gpu_count == 0
    assert status.reason == REASON_NO_GPUS
    assert status.reason.startswith("no NVIDIA GPUs visible")
    assert source.sample(1.0) == ()
    source.close()


# -- close -----------------------------------------------------------------------------------


def test_close_frees_event_sets_and_shuts_nvml_down_exactly_once(clock: FakeClock) -> None:
    fake = one_gpu_lost()
    source = NvmlGpuSource(fake, clock=clock)
    source.sample(1.0)
    source.sample(2.0)  # GPU 1 is lost: its event set is freed already
    assert len(fake.event_sets) == 1

    source.close()
    source.close()
    assert fake.event_sets == {}
    assert fake.calls["nvmlShutdown"] == 1
    assert fake.initialized == 0
    assert source.sample(3.0) == ()
    assert source.status().available is False
    assert source.status().reason == REASON_CLOSED
    assert fake.calls["nvmlInit"] == 1


def test_close_shuts_nvml_down_even_when_freeing_an_event_set_fails(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = healthy_two_gpus()
    source = NvmlGpuSource(fake, clock=clock)
    source.sample(1.0)

    def broken_free(event_set: int) -> None:
        raise RuntimeError("driver went away")

    monkeypatch.setattr(fake, "nvmlEventSetFree", broken_free)
    source.close()
    assert fake.calls["nvmlShutdown"] == 1
    assert fake.initialized == 0


def test_close_before_start_never_starts_nvml() -> None:
    fake = healthy_two_gpus()
    source = NvmlGpuSource(fake)
    source.close()
    assert source.status().reason == REASON_CLOSED
    assert source.sample(1.0) == ()
    assert fake.calls["nvmlInit"] == fake.calls["nvmlShutdown"] == 0


# -- choosing the source ---------------------------------------------------------------------


def test_auto_uses_nvml_when_pynvml_imports_and_starts_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = healthy_two_gpus()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    source = open_gpu_source("auto", node="n")
    try:
        assert isinstance(source, NvmlGpuSource)
        assert source.status().available is True
        assert len(source.sample(1.0)) == 2
    finally:
        source.close()
    assert fake.calls["nvmlInit"] == fake.calls["nvmlShutdown"] == 1


def test_auto_keeps_an_nvml_source_when_the_driver_is_not_loaded_yet() -> None:
    fake = driver_not_loaded()
    source = open_gpu_source("auto", node="n", nvml=fake)
    try:
        assert isinstance(source, NvmlGpuSource)
        status = source.status()
        assert (status.source, status.available, status.reason) == ("nvml", False, REASON_NO_DRIVER)
        assert status.library_installed is True
    finally:
        source.close()


@pytest.mark.usefixtures("block_pynvml_import")
def test_auto_without_pynvml_gives_a_source_with_no_gpus() -> None:
    source = open_gpu_source("auto", node="n")
    assert isinstance(source, NoGpuSource)
    status = source.status()
    assert status.source == "none"
    assert (status.available, status.library_installed) == (False, False)
    assert status.reason == REASON_NO_LIBRARY
    assert source.sample(1.0) == ()
    source.close()


def test_nvml_asked_for_without_a_driver_raises_and_releases_nothing_held() -> None:
    fake = driver_not_loaded()
    with pytest.raises(SourceUnavailableError, match="--source nvml: NVIDIA driver not loaded"):
        open_gpu_source("nvml", node="n", nvml=fake)
    assert fake.initialized == 0


def test_nvml_asked_for_with_gpus_starts_nvml_once() -> None:
    fake = healthy_two_gpus()
    source = open_gpu_source("nvml", node="n", nvml=fake)
    assert isinstance(source, NvmlGpuSource)
    assert len(source.sample(1.0)) == 2
    source.close()
    assert fake.calls["nvmlInit"] == fake.calls["nvmlShutdown"] == 1
