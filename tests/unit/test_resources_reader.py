"""Readings on real processes (psutil) and on fake NVML GPUs, in process and machine scope."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.fakes.fake_nvml import FakeNvml
from tests.fakes.nvml_scenarios import GIB, UUID0, UUID1, FakeGpu, FakeProcess

from gpufleet.collectors.nvml import NvmlGpuSource
from gpufleet.collectors.process_usage import ProcessUsageReader, cpu_temperature_c
from gpufleet.collectors.registry import NoGpuSource
from gpufleet.model import GpuSourceStatus
from gpufleet.resources.reader import LocalReader

MIB = 1024 * 1024

# A child that holds ~60 MiB and burns CPU until its stdin closes.
CHILD = (
    "import sys, threading\n"
    "block = bytearray(60 * 1024 * 1024)\n"
    "for i in range(0, len(block), 4096): block[i] = 1\n"
    "stop = []\n"
    "threading.Thread(target=lambda: (sys.stdin.readline(), stop.append(1)), daemon=True).start()\n"
    "print('ready', flush=True)\n"
    "while not stop: pass\n"
)


@pytest.fixture
def busy_child():
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.communicate("\n", timeout=30)


def _no_gpu() -> NoGpuSource:
    return NoGpuSource(
        GpuSourceStatus(source="none", available=False, gpu_count=0, library_installed=False)
    )


def test_a_process_tree_counts_its_children_memory_and_cpu(busy_child):
    alone = ProcessUsageReader(include_children=False).read()
    reader = ProcessUsageReader()
    time.sleep(0.5)
    usage = reader.read()
    assert busy_child.pid in usage.pids
    assert usage.pids[0] == os.getpid()
    assert usage.rss_bytes >= alone.rss_bytes + 55 * MIB
    # The child spins one core; allow for a loaded 2-core machine.
    assert usage.cpu_pct is not None
    assert usage.cpu_pct > 30
    assert usage.mem_total_bytes > usage.rss_bytes


def test_the_children_list_falls_back_to_a_scan_without_proc_children(tmp_path, busy_child):
    # A /proc without task/<tid>/children files, as on kernels built without them.
    me = tmp_path / str(os.getpid()) / "task" / str(os.getpid())
    me.mkdir(parents=True)
    usage = ProcessUsageReader(proc_root=tmp_path).read()
    assert busy_child.pid in usage.pids


def test_a_process_that_ends_is_reported():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    reader = ProcessUsageReader(proc.pid)
    proc.wait()
    with pytest.raises(ProcessLookupError, match=str(proc.pid)):
        reader.read()
    with pytest.raises(ProcessLookupError, match="no process"):
        ProcessUsageReader(2**22 + 7)


def test_the_first_cpu_reading_waits_for_a_measurable_window():
    waited = []
    reader = ProcessUsageReader(include_children=False, sleep=waited.append)
    reader.read()
    assert len(waited) == 1
    assert 0 < waited[0] <= 0.1


def test_process_scope_reads_what_our_processes_hold_on_each_gpu():
    me = os.getpid()
    fake = FakeNvml(
        [
            FakeGpu(
                uuid=UUID0,
                compute=[
                    FakeProcess(pid=me, used_memory_bytes=20 * GIB),
                    FakeProcess(pid=99999, used_memory_bytes=5 * GIB),
                ],
                util_samples=[(me, 1_000_000, 64), (99999, 1_000_000, 20)],
                power_mw=300_000,
                temp_c=70,
            ),
            FakeGpu(uuid=UUID1, compute=[FakeProcess(pid=99999)], temp_c=40),
        ]
    )
    reader = LocalReader(gpu_source=NvmlGpuSource(fake), temperature=None)
    m = reader.read()
    assert m.gpu_uuids == (UUID0,)
    assert m.gpu_memory_mb == pytest.approx(20 * 1024)
    assert m.gpu_utilization == 64
    assert m.power_watts == pytest.approx(300.0)
    assert m.temperature_celsius == 70
    assert m.memory_used_mb > 0


def test_process_scope_on_a_gpu_box_it_does_not_use_reads_zero_not_none():
    fake = FakeNvml([FakeGpu(uuid=UUID0, compute=[FakeProcess(pid=99999)])])
    m = LocalReader(gpu_source=NvmlGpuSource(fake), temperature=None).read()
    assert (m.gpu_memory_mb, m.gpu_utilization, m.gpu_count) == (0.0, 0.0, 0)
    assert m.power_watts is None


def test_machine_scope_adds_up_every_gpu():
    fake = FakeNvml(
        [
            FakeGpu(uuid=UUID0, mem_used=30 * GIB, util_gpu=80, power_mw=250_000, temp_c=61),
            FakeGpu(uuid=UUID1, mem_used=10 * GIB, util_gpu=20, power_mw=70_000, temp_c=45),
        ]
    )
    m = LocalReader("machine", gpu_source=NvmlGpuSource(fake), temperature=lambda: 75.0).read()
    assert m.gpu_count == 2
    assert m.gpu_memory_mb == pytest.approx(40 * 1024)
    assert m.gpu_utilization == pytest.approx(50)
    assert m.power_watts == pytest.approx(320)
    assert m.temperature_celsius == 75.0  # the CPU package is the hottest sensor here
    assert 0 < m.memory_percent < 100
    assert m.process_count is None


def test_without_a_gpu_gpu_readings_are_none():
    m = LocalReader(gpu_source=_no_gpu(), temperature=lambda: None).read()
    assert m.gpu_memory_mb is None
    assert m.gpu_utilization is None
    assert m.power_watts is None
    assert m.temperature_celsius is None
    assert m.gpu_count == 0


def test_cpu_temperature_reads_package_sensors_only():
    class Entry:
        def __init__(self, current):
            self.current = current

    class Sensors:
        @staticmethod
        def sensors_temperatures():
            return {"coretemp": [Entry(55.0), Entry(61.0)], "nvme": [Entry(80.0)]}

    assert cpu_temperature_c(Sensors) == 61.0  # type: ignore[arg-type]
    assert cpu_temperature_c(object) is None  # type: ignore[arg-type]


def test_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="process, machine"):
        LocalReader("cluster", gpu_source=_no_gpu())


def test_collectors_stay_importable_without_the_web_stack():
    # The lent GPU machine has nvidia-ml-py and psutil only: the resource manager must run there.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('fastapi', 'pydantic', 'httpx', 'starlette'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from gpufleet import create_resource_manager\n"
        "m = create_resource_manager(max_memory_mb=10**6)\n"
        "print(m.get_current_metrics().memory_used_mb > 0)\n"
        "m.close()\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(src)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_a_watched_process_that_ended_unreaped_counts_as_ended():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    reader = ProcessUsageReader(proc.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait for it to exit, without reaping it
        if Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[1].startswith("Z"):
            break
        time.sleep(0.02)
    try:
        with pytest.raises(ProcessLookupError, match="has ended"):
            reader.read()
    finally:
        proc.wait()
