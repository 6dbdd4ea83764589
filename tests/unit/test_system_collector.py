"""PsutilSystemSource against a scripted psutil stand-in (exact rates) and the real psutil."""

from __future__ import annotations

import time
from collections import namedtuple
from types import ModuleType
from typing import Any

import pytest

from gpufleet.collectors.base import SystemSource
from gpufleet.collectors.system import PsutilSystemSource
from gpufleet.model import SystemSample

VMem = namedtuple("VMem", "total available percent used free")
Swap = namedtuple("Swap", "total used free percent sin sout")
Part = namedtuple("Part", "device mountpoint fstype opts")
Usage = namedtuple("Usage", "total used free percent")
DiskIO = namedtuple("DiskIO", "read_count write_count read_bytes write_bytes")
NetIO = namedtuple(
    "NetIO", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout"
)

GIB = 1024**3


def net(rx: int, tx: int, rx_pk: int, tx_pk: int, *, errin: int = 0, errout: int = 0) -> NetIO:
    return NetIO(tx, rx, tx_pk, rx_pk, errin, errout, 0, 0)


class FakePsutil(ModuleType):
    """A psutil stand-in whose counters are scripted per call of ``sample``."""

    def __init__(self) -> None:
        super().__init__("fake_psutil")
        self.cpu_calls: list[tuple[Any, bool]] = []
        self.disk_io: list[DiskIO | None] = []
        self.net_io: list[dict[str, NetIO]] = []
        self.partitions = [
            Part("/dev/sda1", "/", "ext4", "rw"),
            Part("/dev/sda1", "/var/lib/docker", "ext4", "rw"),  # bind mount: same device
            Part("/dev/nvme0n1p1", "/data", "xfs", "rw"),
            Part("/dev/sdb1", "/secret", "ext4", "rw"),  # statvfs refused
            Part("proc", "/proc", "proc", "rw"),
            Part("tmpfs", "/run", "tmpfs", "rw"),
            Part("overlay", "/var/lib/docker/overlay2/x/merged", "overlay", "rw"),
            Part("cgroup2", "/sys/fs/cgroup", "cgroup2", "rw"),
            Part("/dev/loop0", "/snap/core/1", "squashfs", "ro"),
            Part("srv:/home", "/home", "nfs4", "rw"),
        ]
        self.all_requested: list[bool] = []
        self.has_loadavg = True

    # --- psutil API used by the collector ---
    def cpu_percent(self, interval: Any = None, percpu: bool = False) -> Any:
        self.cpu_calls.append((interval, percpu))
        return [10.0, 30.0] if percpu else 20.0

    def cpu_count(self) -> int:
        return 2

    def getloadavg(self) -> tuple[float, float, float]:
        if not self.has_loadavg:
            raise OSError("no load average here")
        return (0.5, 0.25, 0.125)

    def virtual_memory(self) -> VMem:
        return VMem(16 * GIB, 12 * GIB, 25.0, 3 * GIB, 1 * GIB)

    def swap_memory(self) -> Swap:
        return Swap(2 * GIB, GIB // 2, 3 * GIB // 2, 25.0, 0, 0)

    def disk_partitions(self, all: bool = False) -> list[Part]:
        self.all_requested.append(all)
        return list(self.partitions)

    def disk_usage(self, path: str) -> Usage:
        if path == "/secret":
            raise PermissionError(13, "Permission denied", path)
        sizes = {"/": (100, 40), "/var/lib/docker": (100, 40), "/data": (1000, 250)}
        sizes["/home"] = (500, 100)
        total, used = sizes[path]
        return Usage(total * GIB, used * GIB, (total - used) * GIB, 100.0 * used / total)

    def disk_io_counters(self, perdisk: bool = False) -> DiskIO | None:
        assert perdisk is False
        return self.disk_io.pop(0)

    def net_io_counters(self, pernic: bool = False) -> dict[str, NetIO]:
        assert pernic is True
        return self.net_io.pop(0)

    def boot_time(self) -> float:
        return 1_700_000_000.0


class FakeClock:
    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def make(fake: FakePsutil, *times: float, **kwargs: Any) -> PsutilSystemSource:
    # The source reads the clock once when built (the start of the first CPU window).
    start = (times[0] - 1.0) if times else 0.0
    return PsutilSystemSource(fake, clock=FakeClock(start, *times), **kwargs)


def test_implements_protocol_and_primes_cpu_percent() -> None:
    fake = FakePsutil()
    source = make(fake, 0.0)
    assert isinstance(source, SystemSource)
    # Both the total and the per-core counters were primed, non-blocking.
    assert fake.cpu_calls == [(None, False), (None, True)]


def test_first_sample_has_no_rates_but_all_levels() -> None:
    fake = FakePsutil()
    fake.disk_io = [DiskIO(10, 20, 1000, 2000)]
    fake.net_io = [{"eth0": net(5000, 7000, 50, 70, errin=3, errout=1)}]
    s = make(fake, 100.0).sample(1_700_000_100.0)

    assert s.cpu_pct == 20.0
    assert s.cpu_per_core_pct == (10.0, 30.0)
    assert s.cpu_count == 2
    assert (s.load_1, s.load_5, s.load_15) == (0.5, 0.25, 0.125)
    assert (s.mem_total_bytes, s.mem_used_bytes, s.mem_available_bytes) == (
        16 * GIB,
        3 * GIB,
        12 * GIB,
    )
    assert s.mem_pct == 25.0
    assert (s.swap_total_bytes, s.swap_used_bytes, s.swap_pct) == (2 * GIB, GIB // 2, 25.0)
    assert s.boot_time_s == 1_700_000_000.0
    assert s.disk_read_bytes_per_s is None
    assert s.disk_write_bytes_per_s is None
    assert s.disk_read_ops_per_s is None
    assert s.disk_write_ops_per_s is None
    (eth0,) = s.net
    assert eth0.iface == "eth0"
    assert (eth0.rx_bytes_per_s, eth0.tx_bytes_per_s) == (None, None)
    assert (eth0.rx_packets_per_s, eth0.tx_packets_per_s) == (None, None)
    assert (eth0.rx_bytes_total, eth0.tx_bytes_total) == (5000, 7000)
    assert (eth0.rx_errors_total, eth0.tx_errors_total) == (3, 1)


def test_exact_rates_from_counter_deltas_over_injected_clock() -> None:
    fake = FakePsutil()
    fake.disk_io = [DiskIO(10, 20, 1000, 2000), DiskIO(30, 60, 5000, 10_000)]
    fake.net_io = [
        {"eth0": net(5000, 7000, 50, 70), "ib0": net(0, 0, 0, 0)},
        {"eth0": net(9000, 8000, 90, 80), "ib0": net(4_000_000, 2_000_000, 400, 200)},
    ]
    source = make(fake, 100.0, 104.0)
    source.sample(0.0)
    s = source.sample(4.0)

    assert s.disk_read_bytes_per_s == 1000.0
    assert s.disk_write_bytes_per_s == 2000.0
    assert s.disk_read_ops_per_s == 5.0
    assert s.disk_write_ops_per_s == 10.0
    rates = {n.iface: n for n in s.net}
    assert rates["eth0"].rx_bytes_per_s == 1000.0
    assert rates["eth0"].tx_bytes_per_s == 250.0
    assert rates["eth0"].rx_packets_per_s == 10.0
    assert rates["eth0"].tx_packets_per_s == 2.5
    assert rates["ib0"].rx_bytes_per_s == 1_000_000.0
    assert rates["ib0"].tx_bytes_per_s == 500_000.0


def test_counter_going_backwards_gives_none_never_negative() -> None:
    fake = FakePsutil()
    fake.disk_io = [DiskIO(10, 20, 5000, 2000), DiskIO(30, 60, 100, 4000)]
    fake.net_io = [
        {"eth0": net(9000, 7000, 90, 70)},
        # Interface re-created: rx counters restarted from zero, tx kept rising.
        {"eth0": net(100, 9000, 1, 90)},
    ]
    source = make(fake, 0.0, 2.0)
    source.sample(0.0)
    s = source.sample(2.0)

    assert s.disk_read_bytes_per_s is None
    assert s.disk_write_bytes_per_s == 1000.0
    assert s.disk_read_ops_per_s == 10.0
    (eth0,) = s.net
    assert eth0.rx_bytes_per_s is None
    assert eth0.rx_packets_per_s is None
    assert eth0.tx_bytes_per_s == 1000.0
    assert eth0.tx_packets_per_s == 10.0


def test_new_and_vanished_interfaces_and_diskless_host() -> None:
    fake = FakePsutil()
    fake.disk_io = [None, DiskIO(1, 1, 1, 1), DiskIO(3, 3, 3, 3)]
    fake.net_io = [
        {"eth0": net(0, 0, 0, 0), "eth1": net(0, 0, 0, 0)},
        {"eth0": net(10, 10, 1, 1), "docker0": net(500, 500, 5, 5)},
        {"eth0": net(20, 20, 2, 2), "eth1": net(10, 10, 1, 1)},
    ]
    source = make(fake, 0.0, 1.0, 2.0)
    source.sample(0.0)
    s2 = source.sample(1.0)
    # Disk counters unavailable on the previous pass: no baseline, so no rate yet.
    assert s2.disk_read_bytes_per_s is None
    rates2 = {n.iface: n.rx_bytes_per_s for n in s2.net}
    assert rates2 == {"docker0": None, "eth0": 10.0}

    s3 = source.sample(2.0)
    assert s3.disk_read_bytes_per_s == 2.0
    # eth1 vanished for one pass; its old baseline must not be reused.
    rates3 = {n.iface: n.rx_bytes_per_s for n in s3.net}
    assert rates3 == {"eth0": 10.0, "eth1": None}


def test_zero_elapsed_time_gives_none() -> None:
    fake = FakePsutil()
    fake.disk_io = [DiskIO(1, 1, 1, 1), DiskIO(2, 2, 2, 2)]
    fake.net_io = [{"eth0": net(0, 0, 0, 0)}, {"eth0": net(5, 5, 5, 5)}]
    source = make(fake, 7.0, 7.0)
    source.sample(0.0)
    s = source.sample(0.0)
    assert s.disk_read_bytes_per_s is None
    assert s.net[0].rx_bytes_per_s is None


def test_loopback_and_container_veths_are_skipped_by_default() -> None:
    fake = FakePsutil()
    fake.disk_io = [None]
    fake.net_io = [
        {
            "lo": net(1, 1, 1, 1),
            "veth1a2b3c": net(1, 1, 1, 1),
            "cali0123456789a": net(1, 1, 1, 1),
            "eth0": net(1, 1, 1, 1),
        }
    ]
    s = make(fake, 0.0).sample(0.0)
    assert [n.iface for n in s.net] == ["eth0"]

    fake.net_io = [{"lo": net(1, 1, 1, 1), "eth0": net(1, 1, 1, 1)}]
    fake.disk_io = [None]
    everything = make(fake, 0.0, skip_iface_prefixes=()).sample(0.0)
    assert [n.iface for n in everything.net] == ["eth0", "lo"]


def test_disks_skip_pseudo_dedupe_devices_and_survive_permission_errors() -> None:
    fake = FakePsutil()
    fake.disk_io = [None]
    fake.net_io = [{}]
    s = make(fake, 0.0).sample(0.0)

    assert fake.all_requested == [False]
    assert [d.mount for d in s.disks] == ["/", "/data"]
    root, data = s.disks
    assert root.device == "/dev/sda1"
    assert root.fstype == "ext4"
    assert (root.total_bytes, root.used_bytes, root.free_bytes) == (100 * GIB, 40 * GIB, 60 * GIB)
    assert root.used_pct == 40.0
    assert data.used_pct == 25.0


def test_include_fstypes_selects_exactly_those_types() -> None:
    fake = FakePsutil()
    fake.disk_io = [None]
    fake.net_io = [{}]
    s = make(fake, 0.0, include_fstypes=frozenset({"xfs", "nfs4"})).sample(0.0)
    # Network filesystems are only visible with all=True.
    assert fake.all_requested == [True]
    assert [(d.mount, d.fstype) for d in s.disks] == [("/data", "xfs"), ("/home", "nfs4")]


def test_unavailable_load_average_is_none() -> None:
    fake = FakePsutil()
    fake.has_loadavg = False
    fake.disk_io = [None]
    fake.net_io = [{}]
    s = make(fake, 0.0).sample(0.0)
    assert (s.load_1, s.load_5, s.load_15) == (None, None, None)


def test_real_psutil_smoke() -> None:
    source = PsutilSystemSource()
    # Right after start-up the CPU window is too short to mean anything: no reading, not 0.
    immediate = source.sample(time.time())
    assert immediate.cpu_pct is None
    assert immediate.cpu_per_core_pct == ()
    time.sleep(0.15)
    first = source.sample(time.time())
    time.sleep(0.15)
    second = source.sample(time.time())

    for s in (first, second):
        assert isinstance(s, SystemSample)
        assert s.cpu_count is not None
        assert s.cpu_count >= 1
        assert s.cpu_pct is not None
        assert 0.0 <= s.cpu_pct <= 100.0
        assert len(s.cpu_per_core_pct) == s.cpu_count
        assert s.mem_total_bytes > 0
        assert 0 < s.mem_available_bytes <= s.mem_total_bytes
        assert s.boot_time_s is not None
        assert s.boot_time_s < time.time()
        assert all(d.total_bytes > 0 and 0.0 <= d.used_pct <= 100.0 for d in s.disks)
        assert not any(d.fstype in {"proc", "sysfs", "tmpfs", "overlay"} for d in s.disks)
    assert immediate.disk_read_bytes_per_s is None
    assert all(n.rx_bytes_per_s is None for n in immediate.net)
    for rate in (second.disk_read_bytes_per_s, second.disk_write_bytes_per_s):
        assert rate is None or rate >= 0.0
    seen_before = {n.iface for n in first.net}
    for n in second.net:
        if n.iface not in seen_before:  # appeared between the samples: no baseline yet
            continue
        assert n.rx_bytes_per_s is not None
        assert n.rx_bytes_per_s >= 0.0
        assert n.tx_bytes_per_s is not None
        assert n.tx_bytes_per_s >= 0.0


@pytest.mark.parametrize("bad", [OSError("gone"), NotImplementedError()])
def test_net_counters_failure_is_not_fatal(bad: Exception) -> None:
    fake = FakePsutil()
    fake.disk_io = [None]

    def broken(pernic: bool = False) -> dict[str, NetIO]:
        raise bad

    fake.net_io_counters = broken  # type: ignore[method-assign]
    assert make(fake, 0.0).sample(0.0).net == ()
