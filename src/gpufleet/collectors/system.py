"""Host readings through psutil: CPU, memory, disks, disk I/O and network.

Rates (bytes or operations per second) come from counter deltas between two calls of
:meth:`PsutilSystemSource.sample`, timed by an injected monotonic clock so that tests can
script both the counters and the elapsed time. The first sample has no previous counters and
so reports ``None`` rates; a counter that went backwards (wrap, reset, re-created interface)
also gives ``None`` for that rate rather than a negative one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import psutil

from gpufleet.model import DiskUsage, NetRate, SystemSample

__all__ = [
    "DEFAULT_SKIP_IFACE_PREFIXES",
    "MIN_CPU_WINDOW_S",
    "NETWORK_FSTYPES",
    "PSEUDO_FSTYPES",
    "PsutilSystemSource",
]

MIN_CPU_WINDOW_S = 0.1
"""Shortest interval over which a CPU percentage means anything."""

PSEUDO_FSTYPES: frozenset[str] = frozenset(
    {
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "overlay",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "squashfs",
        "sysfs",
        "tmpfs",
        "tracefs",
    }
)
"""Filesystem types that hold no user data on a disk; never reported as disk usage."""

NETWORK_FSTYPES: frozenset[str] = frozenset(
    {"9p", "afs", "beegfs", "ceph", "cifs", "gpfs", "lustre", "nfs", "nfs4", "smb3", "smbfs"}
)
"""Remote filesystems, left out unless named in ``include_fstypes``: ``statvfs`` on a hung
server blocks, and the sampler must not."""

DEFAULT_SKIP_IFACE_PREFIXES: tuple[str, ...] = ("lo", "veth", "cali")
"""Interfaces left out of network rates by default.

Loopback is not network traffic, and the per-container ``veth*`` / Calico ``cali*`` pairs
repeat traffic that already shows on a bridge or physical NIC while a busy Kubernetes node
can have hundreds of them.
"""


@dataclass(frozen=True, slots=True)
class _DiskCounters:
    read_bytes: int
    write_bytes: int
    read_count: int
    write_count: int


@dataclass(frozen=True, slots=True)
class _NetCounters:
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


def _rate(previous: int | None, current: int, elapsed_s: float | None) -> float | None:
    """Per-second rate of a monotonically increasing counter, or None when it is not defined.

    Args:
        previous: The counter at the previous sample, None on the first sample.
        current: The counter now.
        elapsed_s: Seconds between the two readings, None on the first sample.

    Returns:
        ``(current - previous) / elapsed_s``; None when there is no previous reading, no time
        has passed, or the counter went backwards (a wrap or reset is not a negative rate).
    """
    if previous is None or elapsed_s is None or elapsed_s <= 0 or current < previous:
        return None
    return (current - previous) / elapsed_s


def _is_local_disk(fstype: str) -> bool:
    # cgroup hierarchies appear under several names across kernels (cgroup, cgroup2, ...).
    if fstype in PSEUDO_FSTYPES or fstype.startswith("cgroup") or fstype in NETWORK_FSTYPES:
        return False
    # FUSE types are named fuse.<helper> (sshfs, s3fs, gcsfuse...), mostly remote; fuseblk is
    # a FUSE driver over a local block device (ntfs-3g) and counts as a disk.
    return not fstype.startswith("fuse.")


class PsutilSystemSource:
    """A :class:`~gpufleet.collectors.base.SystemSource` backed by psutil.

    Args:
        psutil_module: The psutil module, or a stand-in with the same functions (tests).
            Defaults to the real psutil.
        clock: Monotonic clock in seconds used to time counter deltas.
        include_fstypes: When given, report exactly the mounts of these filesystem types
            (for example ``{"ext4", "xfs", "nfs4"}``). When None, report every mounted
            device-backed local filesystem: pseudo filesystems (:data:`PSEUDO_FSTYPES`) and
            network filesystems (:data:`NETWORK_FSTYPES`, ``fuse.*``) are left out.
        skip_iface_prefixes: Network interfaces whose name starts with one of these are left
            out of ``SystemSample.net``.
    """

    def __init__(
        self,
        psutil_module: ModuleType | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        include_fstypes: frozenset[str] | None = None,
        skip_iface_prefixes: tuple[str, ...] = DEFAULT_SKIP_IFACE_PREFIXES,
    ) -> None:
        # Typed as Any: a stand-in module in tests only needs the functions used here.
        self._ps: Any = psutil if psutil_module is None else psutil_module
        self._clock = clock
        self._include_fstypes = include_fstypes
        self._skip_iface_prefixes = skip_iface_prefixes
        self._prev_t: float | None = None
        self._prev_disk: _DiskCounters | None = None
        self._prev_net: dict[str, _NetCounters] = {}
        # psutil measures cpu_percent(interval=None) since the previous call; calling it once
        # now makes the first sample cover the time since construction instead of being 0.0.
        self._cpu_total()
        self._cpu_per_core()
        self._cpu_t = clock()

    def sample(self, now_s: float) -> SystemSample:
        """Read CPU, memory, disks and network once.

        Args:
            now_s: Wall-clock time of the reading (epoch seconds). Rates are timed with the
                injected monotonic clock instead, so a wall-clock step cannot distort them.

        Returns:
            The host reading; rates are per second since the previous call, None on the first.
        """
        del now_s  # part of the SystemSource protocol; the snapshot carries the timestamp
        t = self._clock()
        elapsed_s = None if self._prev_t is None else t - self._prev_t
        load_1, load_5, load_15 = self._load()
        mem = self._ps.virtual_memory()
        swap_total, swap_used, swap_pct = self._swap()
        disk_rates = self._disk_rates(elapsed_s)
        net = self._net_rates(elapsed_s)
        self._prev_t = t
        # psutil's cpu_percent over less than ~0.1 s is noise (often exactly 0.0): report
        # "no reading" rather than a false idle CPU.
        cpu_window_ok = t - self._cpu_t >= MIN_CPU_WINDOW_S
        cpu_pct, per_core = self._cpu_total(), self._cpu_per_core()
        self._cpu_t = t
        return SystemSample(
            cpu_pct=cpu_pct if cpu_window_ok else None,
            cpu_per_core_pct=per_core if cpu_window_ok else (),
            cpu_count=self._cpu_count(),
            load_1=load_1,
            load_5=load_5,
            load_15=load_15,
            mem_total_bytes=int(mem.total),
            mem_used_bytes=int(mem.used),
            mem_available_bytes=int(mem.available),
            mem_pct=float(mem.percent),
            swap_total_bytes=swap_total,
            swap_used_bytes=swap_used,
            swap_pct=swap_pct,
            disks=self._disks(),
            disk_read_bytes_per_s=disk_rates[0],
            disk_write_bytes_per_s=disk_rates[1],
            disk_read_ops_per_s=disk_rates[2],
            disk_write_ops_per_s=disk_rates[3],
            net=net,
            boot_time_s=self._boot_time(),
        )

    # --- CPU, load, memory -------------------------------------------------------------

    def _cpu_total(self) -> float | None:
        try:
            return float(self._ps.cpu_percent(interval=None))
        except (OSError, NotImplementedError):
            return None

    def _cpu_per_core(self) -> tuple[float, ...]:
        try:
            return tuple(float(v) for v in self._ps.cpu_percent(interval=None, percpu=True))
        except (OSError, NotImplementedError):
            return ()

    def _cpu_count(self) -> int | None:
        count = self._ps.cpu_count()
        return None if count is None else int(count)

    def _load(self) -> tuple[float | None, float | None, float | None]:
        getloadavg = getattr(self._ps, "getloadavg", None)
        if getloadavg is None:
            return None, None, None
        try:
            one, five, fifteen = getloadavg()
        except (OSError, NotImplementedError):
            return None, None, None
        return float(one), float(five), float(fifteen)

    def _swap(self) -> tuple[int, int, float]:
        # psutil warns (RuntimeWarning) when /proc/vmstat lacks the swap-in/out counters, as in
        # some sandboxes; those counters are not used here, so the warning is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            swap = self._ps.swap_memory()
        return int(swap.total), int(swap.used), float(swap.percent)

    def _boot_time(self) -> float | None:
        try:
            return float(self._ps.boot_time())
        except (OSError, NotImplementedError):
            return None

    # --- disks -------------------------------------------------------------------------

    def _disks(self) -> tuple[DiskUsage, ...]:
        include = self._include_fstypes
        # all=True is needed to see network filesystems that the caller asked for by name.
        partitions = self._ps.disk_partitions(all=include is not None)
        if include is not None:
            wanted = [p for p in partitions if p.fstype in include]
        else:
            wanted = [p for p in partitions if p.device and _is_local_disk(p.fstype)]
        # The same device mounted twice (bind mounts, a container's /etc/hosts) is one disk;
        # keep its shortest mount point, which is the one a person would name.
        wanted.sort(key=lambda p: (len(p.mountpoint), p.mountpoint))
        seen_devices: set[str] = set()
        disks: list[DiskUsage] = []
        for part in wanted:
            if part.device and part.device in seen_devices:
                continue
            try:
                usage = self._ps.disk_usage(part.mountpoint)
            except OSError:
                # A mount we may not stat (permissions, stale handle) is not fatal.
                continue
            if part.device:
                seen_devices.add(part.device)
            disks.append(
                DiskUsage(
                    mount=part.mountpoint,
                    device=part.device or None,
                    fstype=part.fstype or None,
                    total_bytes=int(usage.total),
                    used_bytes=int(usage.used),
                    free_bytes=int(usage.free),
                    used_pct=float(usage.percent),
                )
            )
        disks.sort(key=lambda d: d.mount)
        return tuple(disks)

    def _disk_rates(
        self, elapsed_s: float | None
    ) -> tuple[float | None, float | None, float | None, float | None]:
        try:
            raw = self._ps.disk_io_counters(perdisk=False)
        except (OSError, NotImplementedError, RuntimeError, ValueError):
            raw = None
        if raw is None:
            # Diskless host (or unreadable counters): no rate, and no stale baseline.
            self._prev_disk = None
            return None, None, None, None
        now = _DiskCounters(
            read_bytes=int(raw.read_bytes),
            write_bytes=int(raw.write_bytes),
            read_count=int(raw.read_count),
            write_count=int(raw.write_count),
        )
        prev = self._prev_disk
        self._prev_disk = now
        return (
            _rate(prev.read_bytes if prev else None, now.read_bytes, elapsed_s),
            _rate(prev.write_bytes if prev else None, now.write_bytes, elapsed_s),
            _rate(prev.read_count if prev else None, now.read_count, elapsed_s),
            _rate(prev.write_count if prev else None, now.write_count, elapsed_s),
        )

    # --- network -----------------------------------------------------------------------

    def _skip_iface(self, name: str) -> bool:
        return name.startswith(self._skip_iface_prefixes)

    def _net_rates(self, elapsed_s: float | None) -> tuple[NetRate, ...]:
        try:
            per_nic: dict[str, Any] = self._ps.net_io_counters(pernic=True)
        except (OSError, NotImplementedError, RuntimeError):
            per_nic = {}
        current: dict[str, _NetCounters] = {}
        rates: list[NetRate] = []
        for iface, raw in sorted(per_nic.items()):
            if self._skip_iface(iface):
                continue
            now = _NetCounters(
                rx_bytes=int(raw.bytes_recv),
                tx_bytes=int(raw.bytes_sent),
                rx_packets=int(raw.packets_recv),
                tx_packets=int(raw.packets_sent),
            )
            current[iface] = now
            # An interface seen for the first time has no baseline: rates stay None.
            prev = self._prev_net.get(iface)
            rates.append(
                NetRate(
                    iface=iface,
                    rx_bytes_per_s=_rate(prev.rx_bytes if prev else None, now.rx_bytes, elapsed_s),
                    tx_bytes_per_s=_rate(prev.tx_bytes if prev else None, now.tx_bytes, elapsed_s),
                    rx_packets_per_s=_rate(
                        prev.rx_packets if prev else None, now.rx_packets, elapsed_s
                    ),
                    tx_packets_per_s=_rate(
                        prev.tx_packets if prev else None, now.tx_packets, elapsed_s
                    ),
                    rx_bytes_total=now.rx_bytes,
                    tx_bytes_total=now.tx_bytes,
                    rx_errors_total=int(raw.errin),
                    tx_errors_total=int(raw.errout),
                )
            )
        # Replacing (not updating) the baseline drops interfaces that went away, so the map
        # cannot grow without bound as containers come and go.
        self._prev_net = current
        return tuple(rates)
