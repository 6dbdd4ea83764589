"""The Prometheus exporter over hand-built snapshots: dcgm-exporter names, labels, omissions,
escaping, and what promtool says about the exposition."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable, Iterable

import pytest
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gpufleet.agent.live import LiveState
from gpufleet.exporters.prometheus import CONTENT_TYPE, SnapshotCollector, build_registry, render
from gpufleet.model import (
    Attribution,
    DiskUsage,
    GpuProcess,
    GpuSample,
    GpuSourceStatus,
    NetRate,
    Snapshot,
    SystemSample,
)

GIB = 2**30
MIB = 2**20
HOST = "gpu-node-7"
UUID0 = "GPU-00000000-aaaa-bbbb-cccc-000000000000"
UUID1 = "GPU-11111111-aaaa-bbbb-cccc-111111111111"
UUID2 = "GPU-22222222-aaaa-bbbb-cccc-222222222222"
ODD_NAME = 'we"ird\\name\nnext line'
CONTAINER = "c0ffee" + "0" * 58

K8S = Attribution(
    namespace="ml-team",
    user="trainer",
    workload="train-abc",
    container_id=CONTAINER,
    pod="train-abc-7f9c4-x2x9z",
    k8s_namespace="ml-team",
)
ALICE = Attribution(namespace="research", user="alice", workload="sim.py", unix_user="alice")


def _gpu0(xids: tuple[int, ...] = ()) -> GpuSample:
    """A fully readable GPU with one Kubernetes and one bare-metal process (no fan)."""
    return GpuSample(
        uuid=UUID0,
        index=0,
        name="NVIDIA H100 80GB HBM3",
        driver_version="550.54.15",
        pci_bus_id="00000000:17:00.0",
        cuda_capability="9.0",
        util_gpu_pct=87.5,
        util_mem_pct=40.0,
        util_encoder_pct=0.0,
        util_decoder_pct=0.0,
        mem_total_bytes=80 * GIB,
        # Half a MiB over 40 GiB: DCGM floors to whole MiB.
        mem_used_bytes=40 * GIB + MIB // 2,
        mem_free_bytes=40 * GIB - MIB // 2,
        temp_c=61.0,
        temp_slowdown_c=87.0,
        temp_shutdown_c=92.0,
        power_w=412.5,
        power_limit_w=700.0,
        clock_sm_mhz=1980.0,
        clock_mem_mhz=2619.0,
        pstate="P0",
        fan_pct=None,
        pcie_tx_bytes_per_s=1024.0 * 1024,
        pcie_rx_bytes_per_s=2048.0 * 1024,
        ecc_corrected_total=3,
        ecc_uncorrected_total=0,
        xid_errors=xids,
        processes=(
            GpuProcess(4242, "python", 30 * GIB, 80.0, attribution=K8S),
            GpuProcess(5151, ODD_NAME, 1 * GIB, None, attribution=ALICE),
        ),
    )


def _gpu1() -> GpuSample:
    """A GPU whose driver reports little: only memory and utilization are known."""
    return GpuSample(
        uuid=UUID1,
        index=1,
        name="NVIDIA A10",
        driver_version="550.54.15",
        pci_bus_id="00000000:65:00.0",
        util_gpu_pct=10.0,
        mem_total_bytes=24 * GIB,
        mem_used_bytes=2 * GIB,
        mem_free_bytes=22 * GIB,
        # NVML lists a process with compute and graphics contexts twice.
        processes=(
            GpuProcess(6000, "sim.py", 2 * GIB, 5.0, "compute", ALICE),
            GpuProcess(6000, "sim.py", 2 * GIB, 5.0, "graphics", ALICE),
        ),
    )


def _gpu2_lost() -> GpuSample:
    return GpuSample(
        uuid=UUID2,
        index=2,
        name="NVIDIA A10",
        driver_version="550.54.15",
        lost=True,
        error="GPU is lost",
    )


def _system() -> SystemSample:
    return SystemSample(
        cpu_pct=12.5,
        cpu_per_core_pct=(10.0, 15.0),
        cpu_count=2,
        load_1=0.5,
        load_5=0.75,
        load_15=1.0,
        mem_total_bytes=64 * GIB,
        mem_used_bytes=16 * GIB,
        mem_available_bytes=48 * GIB,
        mem_pct=25.0,
        swap_total_bytes=8 * GIB,
        swap_used_bytes=GIB,
        swap_pct=12.5,
        disks=(
            DiskUsage("/", "/dev/nvme0n1p2", "ext4", 1000, 400, 600, 40.0),
            # A bind mount listed twice must not produce a duplicate series.
            DiskUsage("/data", "/dev/sdb1", "xfs", 5000, 1000, 4000, 20.0),
            DiskUsage("/data", "/dev/sdb1", "xfs", 5000, 1000, 4000, 20.0),
        ),
        disk_read_bytes_per_s=1500.0,
        disk_write_bytes_per_s=2500.0,
        net=(
            NetRate("eth0", 100.0, 50.0, 1.0, 1.0, 10_000, 5_000),
            NetRate("lo", None, None, None, None, 0, 0),
        ),
        boot_time_s=1_700_000_000.0,
    )


def _snapshot(ts_s: float, gpus: tuple[GpuSample, ...]) -> Snapshot:
    return Snapshot(ts_s=ts_s, cluster="c", node=HOST, gpus=gpus, system=_system(), interval_s=5.0)


def _live() -> LiveState:
    return LiveState(
        GpuSourceStatus(source="nvml", available=True, gpu_count=3, library_installed=True)
    )


def _published(*snapshots: Snapshot) -> LiveState:
    live = _live()
    for snap in snapshots:
        live.publish(snap, duration_s=0.25)
    return live


def _full_live() -> LiveState:
    return _published(_snapshot(1_700_000_100.0, (_gpu0(), _gpu1(), _gpu2_lost())))


def _scrape(
    live: LiveState, extra: Callable[[], Iterable[Metric]] | None = None
) -> tuple[str, dict[str, Metric]]:
    body, _ = render(build_registry(live, hostname=HOST, extra=extra))
    text = body.decode()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def _samples(families: dict[str, Metric], name: str) -> list[Sample]:
    # The parser files a counter's ``x_total`` samples under the family ``x``.
    family = families.get(name) or families.get(name.removesuffix("_total"))
    return list(family.samples) if family is not None else []


def _value(families: dict[str, Metric], name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = [
        s.value
        for s in _samples(families, name)
        if all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, f"{name} {labels}: {found}"
    return found[0]


def _dcgm_labels(gpu: GpuSample, model: str) -> dict[str, str]:
    return {
        "gpu": str(gpu.index),
        "UUID": gpu.uuid,
        "pci_bus_id": gpu.pci_bus_id or "",
        "device": f"nvidia{gpu.index}",
        "modelName": model,
        "Hostname": HOST,
        "DCGM_FI_DRIVER_VERSION": "550.54.15",
    }


def test_dcgm_series_carry_dcgm_exporter_labels_and_units() -> None:
    _, fams = _scrape(_full_live())
    pod_labels = {"container": CONTAINER, "namespace": "ml-team", "pod": "train-abc-7f9c4-x2x9z"}
    util = {s.labels["UUID"]: s for s in _samples(fams, "DCGM_FI_DEV_GPU_UTIL")}
    assert set(util) == {UUID0, UUID1}
    # GPU 0 holds a Kubernetes process, so it gets the pod labels; GPU 1 is bare metal.
    assert util[UUID0].labels == _dcgm_labels(_gpu0(), "NVIDIA H100 80GB HBM3") | pod_labels
    assert util[UUID0].value == 87.5
    assert util[UUID1].labels == _dcgm_labels(_gpu1(), "NVIDIA A10")
    assert util[UUID1].value == 10.0
    assert fams["DCGM_FI_DEV_GPU_UTIL"].type == "gauge"

    assert _value(fams, "DCGM_FI_DEV_FB_USED", UUID=UUID0) == 40 * 1024
    assert _value(fams, "DCGM_FI_DEV_FB_FREE", UUID=UUID0) == 40 * 1024 - 1
    assert _value(fams, "DCGM_FI_DEV_FB_TOTAL", UUID=UUID1) == 24 * 1024
    assert _value(fams, "DCGM_FI_DEV_POWER_USAGE", UUID=UUID0) == 412.5
    assert _value(fams, "DCGM_FI_DEV_POWER_MGMT_LIMIT", UUID=UUID0) == 700.0
    assert _value(fams, "DCGM_FI_DEV_SM_CLOCK", UUID=UUID0) == 1980.0
    assert _value(fams, "DCGM_FI_DEV_MEM_CLOCK", UUID=UUID0) == 2619.0
    assert _value(fams, "DCGM_FI_DEV_GPU_TEMP", UUID=UUID0) == 61.0
    assert _value(fams, "DCGM_FI_DEV_PSTATE", UUID=UUID0) == 0.0
    assert _value(fams, "DCGM_FI_DEV_PCIE_TX_THROUGHPUT", UUID=UUID0) == 1024.0
    assert _value(fams, "DCGM_FI_DEV_PCIE_RX_THROUGHPUT", UUID=UUID0) == 2048.0
    assert _value(fams, "DCGM_FI_PROF_PCIE_TX_BYTES", UUID=UUID0) == 1024.0 * 1024
    assert _value(fams, "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", UUID=UUID0) == 3.0
    assert _value(fams, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", UUID=UUID0) == 0.0
    assert fams["DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"].type == "counter"
    assert _value(fams, "DCGM_FI_DEV_XID_ERRORS", UUID=UUID1) == 0.0


def test_dcgm_counters_keep_their_exact_names() -> None:
    text, _ = _scrape(_full_live())
    lines = text.splitlines()
    for name in ("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "DCGM_FI_DEV_PCIE_TX_THROUGHPUT"):
        assert f"# TYPE {name} counter" in lines
        assert any(line.startswith(name + "{") for line in lines)
        assert not any(line.startswith(name + "_total") for line in lines)
    assert "# TYPE gpufleet_agent_samples_total counter" in lines
    assert "gpufleet_agent_samples_total 1.0" in lines


def test_unsupported_readings_have_no_series() -> None:
    text, fams = _scrape(_full_live())
    # No GPU reports a fan (H100 SXM has none): the family is absent, not 0.
    assert "DCGM_FI_DEV_FAN_SPEED" not in text
    for name in ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_SM_CLOCK"):
        assert {s.labels["UUID"] for s in _samples(fams, name)} == {UUID0}
    assert {s.labels["pid"] for s in _samples(fams, "gpufleet_process_sm_utilization_percent")} == {
        "4242",
        "6000",
    }
    assert "gpufleet_network_receive_bytes_per_second" in fams
    assert {
        s.labels["interface"] for s in _samples(fams, "gpufleet_network_receive_bytes_per_second")
    } == {"eth0"}


def test_lost_gpu_has_no_readings_only_lost_and_info() -> None:
    _, fams = _scrape(_full_live())
    for name, fam in fams.items():
        if name.startswith(("DCGM_FI_", "gpufleet_process_")):
            assert all(s.labels.get("UUID") != UUID2 for s in fam.samples), name
    assert _value(fams, "gpufleet_gpu_lost", UUID=UUID2) == 1.0
    assert _value(fams, "gpufleet_gpu_lost", UUID=UUID0) == 0.0
    lost = [s for s in _samples(fams, "gpufleet_gpu_lost") if s.labels["UUID"] == UUID2]
    assert lost[0].labels == {"gpu": "2", "UUID": UUID2, "Hostname": HOST}
    info = next(s for s in _samples(fams, "gpufleet_gpu_info") if s.labels["UUID"] == UUID0)
    assert info.value == 1.0
    assert info.labels == {
        "gpu": "0",
        "UUID": UUID0,
        "pci_bus_id": "00000000:17:00.0",
        "model": "NVIDIA H100 80GB HBM3",
        "driver_version": "550.54.15",
        "cuda_capability": "9.0",
        "Hostname": HOST,
    }
    assert len(_samples(fams, "gpufleet_gpu_info")) == 3


def test_process_and_workload_series() -> None:
    _, fams = _scrape(_full_live())
    mem = "gpufleet_process_gpu_memory_used_bytes"
    k8s_proc = next(s for s in _samples(fams, mem) if s.labels["pid"] == "4242")
    assert k8s_proc.labels == {
        "gpu": "0",
        "UUID": UUID0,
        "pid": "4242",
        "process": "python",
        "namespace": "ml-team",
        "user": "trainer",
        "workload": "train-abc",
    }
    assert k8s_proc.value == 30 * GIB
    assert _value(fams, "gpufleet_process_sm_utilization_percent", pid="4242") == 80.0
    # pid 6000 is listed twice on GPU 1 (compute + graphics) but held once.
    assert _value(fams, mem, pid="6000") == 2 * GIB

    alice = {"namespace": "research", "user": "alice", "workload": "sim.py"}
    assert _value(fams, "gpufleet_workload_gpu_memory_used_bytes", **alice) == 3 * GIB
    assert _value(fams, "gpufleet_workload_gpus", **alice) == 2
    assert _value(fams, "gpufleet_workload_gpu_utilization_percent", **alice) == 48.75
    trainer = {"namespace": "ml-team", "user": "trainer", "workload": "train-abc"}
    assert _value(fams, "gpufleet_workload_gpus", **trainer) == 1
    assert _value(fams, "gpufleet_workload_gpu_utilization_percent", **trainer) == 87.5


def test_odd_process_names_are_escaped_and_round_trip() -> None:
    text, fams = _scrape(_full_live())
    assert 'process="we\\"ird\\\\name\\nnext line"' in text
    assert _value(fams, "gpufleet_process_gpu_memory_used_bytes", process=ODD_NAME) == GIB


def test_undecodable_names_are_replaced_not_fatal() -> None:
    bad = GpuProcess(7000, "bin\udcffary", GIB, attribution=ALICE)
    gpu = GpuSample(uuid=UUID1, index=1, util_gpu_pct=1.0, processes=(bad,))
    _, fams = _scrape(_published(_snapshot(1.0, (gpu,))))
    assert _value(fams, "gpufleet_process_gpu_memory_used_bytes", pid="7000") == GIB
    names = {s.labels["process"] for s in _samples(fams, "gpufleet_process_gpu_memory_used_bytes")}
    assert names == {"bin?ary"}


def test_gpu_shared_by_pods_gets_one_series_per_pod() -> None:
    other = Attribution(
        namespace="serving",
        user="api",
        workload="api-1",
        container_id="beef",
        pod="api-1",
        k8s_namespace="serving",
    )
    procs = (
        GpuProcess(1, "a", GIB, attribution=K8S),
        GpuProcess(2, "b", GIB, attribution=other),
        GpuProcess(3, "c", GIB, attribution=ALICE),
    )
    gpu = GpuSample(uuid=UUID0, index=0, util_gpu_pct=50.0, processes=procs)
    _, fams = _scrape(_published(_snapshot(1.0, (gpu,))))
    pods = sorted(s.labels["pod"] for s in _samples(fams, "DCGM_FI_DEV_GPU_UTIL"))
    assert pods == ["api-1", "train-abc-7f9c4-x2x9z"]
    assert all(s.value == 50.0 for s in _samples(fams, "DCGM_FI_DEV_GPU_UTIL"))


def test_host_series() -> None:
    _, fams = _scrape(_full_live())
    assert _value(fams, "gpufleet_cpu_usage_percent") == 12.5
    assert _value(fams, "gpufleet_cpu_core_usage_percent", cpu="1") == 15.0
    assert _value(fams, "gpufleet_load5") == 0.75
    assert _value(fams, "gpufleet_memory_available_bytes") == 48 * GIB
    assert _value(fams, "gpufleet_swap_used_bytes") == GIB
    assert _value(fams, "gpufleet_disk_free_bytes", mount="/data") == 4000
    root = [s for s in _samples(fams, "gpufleet_disk_total_bytes") if s.labels["mount"] == "/"]
    assert root[0].labels == {"mount": "/", "device": "/dev/nvme0n1p2", "fstype": "ext4"}
    assert _value(fams, "gpufleet_disk_write_bytes_per_second") == 2500.0
    assert _value(fams, "gpufleet_network_transmit_bytes_per_second", interface="eth0") == 50.0
    assert _value(fams, "gpufleet_boot_time_seconds") == 1_700_000_000.0


def test_agent_self_series() -> None:
    live = _published(_snapshot(10.0, (_gpu1(),)), _snapshot(15.0, (_gpu1(),)))
    _, fams = _scrape(live)
    assert fams["gpufleet_agent_samples"].type == "counter"
    assert _value(fams, "gpufleet_agent_samples_total") == 2
    assert _value(fams, "gpufleet_agent_last_sample_timestamp_seconds") == 15.0
    assert _value(fams, "gpufleet_agent_last_sample_duration_seconds") == 0.25
    assert _value(fams, "gpufleet_gpu_available", source="nvml") == 1.0
    assert "process_resident_memory_bytes" in fams


def test_before_first_sample_only_self_series() -> None:
    live = LiveState(
        GpuSourceStatus(source="none", available=False, gpu_count=0, library_installed=False)
    )
    _, fams = _scrape(live)
    ours = {n for n in fams if n.startswith(("gpufleet_", "DCGM_"))}
    assert ours == {"gpufleet_gpu_available", "gpufleet_agent_samples"}
    assert _value(fams, "gpufleet_gpu_available", source="none") == 0.0
    assert _value(fams, "gpufleet_agent_samples_total") == 0


def test_xid_gauge_keeps_last_code_across_snapshots_and_scrapes() -> None:
    live = _published(_snapshot(1.0, (_gpu0((13, 31)),)), _snapshot(2.0, (_gpu0(),)))
    registry = build_registry(live, hostname=HOST)

    def scrape() -> dict[str, Metric]:
        return {f.name: f for f in text_string_to_metric_families(render(registry)[0].decode())}

    fams = scrape()
    assert _value(fams, "DCGM_FI_DEV_XID_ERRORS", UUID=UUID0) == 31
    assert _value(fams, "gpufleet_gpu_xid_errors_total", UUID=UUID0) == 2
    live.publish(_snapshot(3.0, (_gpu0((48,)),)))
    fams = scrape()
    assert _value(fams, "DCGM_FI_DEV_XID_ERRORS", UUID=UUID0) == 48
    assert _value(fams, "gpufleet_gpu_xid_errors_total", UUID=UUID0) == 3
    # A scrape with nothing new published must not count the same XIDs again.
    fams = scrape()
    assert _value(fams, "gpufleet_gpu_xid_errors_total", UUID=UUID0) == 3


def test_extra_families_are_served_and_a_failing_one_is_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def extra() -> Iterable[Metric]:
        yield GaugeMetricFamily("gpufleet_alerts_firing", "Alerts firing.", value=2)

    _, fams = _scrape(_full_live(), extra=extra)
    assert _value(fams, "gpufleet_alerts_firing") == 2

    def broken() -> Iterable[Metric]:
        raise RuntimeError("store unreachable")

    collector = SnapshotCollector(_full_live(), hostname=HOST, extra=broken)
    with caplog.at_level(logging.ERROR):
        names = {m.name for m in collector.collect()}
    assert "DCGM_FI_DEV_GPU_UTIL" in names
    assert "extra metrics for /metrics failed" in caplog.text


def test_registry_is_fresh_and_content_type_is_text_format() -> None:
    live = _full_live()
    first, second = build_registry(live, hostname=HOST), build_registry(live, hostname=HOST)
    assert first is not second
    assert first is not REGISTRY
    body, content_type = render(first)
    assert content_type == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert b"DCGM_FI_DEV_GPU_UTIL" not in render(REGISTRY)[0]
    assert body.endswith(b"\n")


# promtool's lint (client_golang promlint) objects to two things dcgm-exporter does on
# purpose and dashboards depend on: the camelCase label ``modelName`` and counters named
# without ``_total`` (DCGM_FI_DEV_ECC_*_VOL_TOTAL, DCGM_FI_DEV_PCIE_*_THROUGHPUT). Those are
# kept for compatibility; any other finding, and every finding on a gpufleet series, fails.
DCGM_ACCEPTED_LINT = (
    "label names should be written in 'snake_case' not 'camelCase'",
    'counter metrics should have "_total" suffix',
)


def _promtool() -> str:
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not shutil.which(path):
        pytest.fail(
            "promtool is missing: `make test` installs it (scripts/system-deps.sh, Debian "
            "package `prometheus`); run `bash scripts/system-deps.sh` or "
            "`sudo apt-get install prometheus`"
        )
    return path


@pytest.mark.parametrize(
    "live",
    [
        pytest.param(_full_live(), id="full"),
        pytest.param(LiveState(GpuSourceStatus("none", False, 0, False)), id="before-first-sample"),
    ],
)
def test_promtool_check_metrics(live: LiveState) -> None:
    body, _ = render(build_registry(live, hostname=HOST))
    result = subprocess.run(
        [_promtool(), "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    output = (result.stdout + result.stderr).decode()
    # 0: clean; 3: lint findings only; anything else (1) means the text did not parse.
    assert result.returncode in (0, 3), output
    findings = [line for line in output.splitlines() if line.strip()]
    unexpected = [
        line
        for line in findings
        if not (line.startswith("DCGM_FI_") and line.endswith(DCGM_ACCEPTED_LINT))
    ]
    assert unexpected == [], output
    if live.latest is not None:
        # The accepted findings really occur, so this test notices if promtool changes.
        assert any(line.endswith(DCGM_ACCEPTED_LINT[0]) for line in findings), output
