"""Host wire schemas; units in field names as DESIGN.md asks (seed 000 names no shapes)."""

from __future__ import annotations

from pydantic import BaseModel

from gpufleet.model import Snapshot, SystemSample
from gpufleet.timeparse import iso


class LoadAverage(BaseModel):
    load_1: float | None
    load_5: float | None
    load_15: float | None


class CpuOut(BaseModel):
    timestamp: str
    cpu_pct: float | None
    cpu_per_core_pct: list[float]
    cpu_count: int | None
    load_average: LoadAverage

    @classmethod
    def build(cls, ts: str, s: SystemSample) -> CpuOut:
        return cls(
            timestamp=ts,
            cpu_pct=s.cpu_pct,
            cpu_per_core_pct=list(s.cpu_per_core_pct),
            cpu_count=s.cpu_count,
            load_average=LoadAverage(load_1=s.load_1, load_5=s.load_5, load_15=s.load_15),
        )


class MemoryOut(BaseModel):
    timestamp: str
    total_bytes: int
    used_bytes: int
    available_bytes: int
    used_pct: float
    swap_total_bytes: int
    swap_used_bytes: int
    swap_used_pct: float

    @classmethod
    def build(cls, ts: str, s: SystemSample) -> MemoryOut:
        return cls(
            timestamp=ts,
            total_bytes=s.mem_total_bytes,
            used_bytes=s.mem_used_bytes,
            available_bytes=s.mem_available_bytes,
            used_pct=s.mem_pct,
            swap_total_bytes=s.swap_total_bytes,
            swap_used_bytes=s.swap_used_bytes,
            swap_used_pct=s.swap_pct,
        )


class PartitionOut(BaseModel):
    mount: str
    device: str | None
    fstype: str | None
    total_bytes: int
    used_bytes: int
    free_bytes: int
    used_pct: float


class DiskIoOut(BaseModel):
    read_bytes_per_s: float | None
    write_bytes_per_s: float | None
    read_ops_per_s: float | None
    write_ops_per_s: float | None


class DiskOut(BaseModel):
    timestamp: str
    partitions: list[PartitionOut]
    io: DiskIoOut

    @classmethod
    def build(cls, ts: str, s: SystemSample) -> DiskOut:
        return cls(
            timestamp=ts,
            partitions=[
                PartitionOut(
                    mount=d.mount,
                    device=d.device,
                    fstype=d.fstype,
                    total_bytes=d.total_bytes,
                    used_bytes=d.used_bytes,
                    free_bytes=d.free_bytes,
                    used_pct=d.used_pct,
                )
                for d in s.disks
            ],
            io=DiskIoOut(
                read_bytes_per_s=s.disk_read_bytes_per_s,
                write_bytes_per_s=s.disk_write_bytes_per_s,
                read_ops_per_s=s.disk_read_ops_per_s,
                write_ops_per_s=s.disk_write_ops_per_s,
            ),
        )


class InterfaceOut(BaseModel):
    interface: str
    rx_bytes_per_s: float | None
    tx_bytes_per_s: float | None
    rx_packets_per_s: float | None
    tx_packets_per_s: float | None
    rx_bytes_total: int
    tx_bytes_total: int
    rx_errors_total: int
    tx_errors_total: int


class NetworkOut(BaseModel):
    timestamp: str
    interfaces: list[InterfaceOut]
    rx_bytes_per_s: float | None
    tx_bytes_per_s: float | None

    @classmethod
    def build(cls, ts: str, s: SystemSample) -> NetworkOut:
        rx = [n.rx_bytes_per_s for n in s.net if n.rx_bytes_per_s is not None]
        tx = [n.tx_bytes_per_s for n in s.net if n.tx_bytes_per_s is not None]
        return cls(
            timestamp=ts,
            interfaces=[
                InterfaceOut(
                    interface=n.iface,
                    rx_bytes_per_s=n.rx_bytes_per_s,
                    tx_bytes_per_s=n.tx_bytes_per_s,
                    rx_packets_per_s=n.rx_packets_per_s,
                    tx_packets_per_s=n.tx_packets_per_s,
                    rx_bytes_total=n.rx_bytes_total,
                    tx_bytes_total=n.tx_bytes_total,
                    rx_errors_total=n.rx_errors_total,
                    tx_errors_total=n.tx_errors_total,
                )
                for n in s.net
            ],
            rx_bytes_per_s=sum(rx) if rx else None,
            tx_bytes_per_s=sum(tx) if tx else None,
        )


class SystemAllOut(BaseModel):
    timestamp: str
    node: str
    cluster: str
    cpu: CpuOut
    memory: MemoryOut
    disk: DiskOut
    network: NetworkOut
    boot_time: str | None

    @classmethod
    def from_snapshot(cls, snap: Snapshot, s: SystemSample) -> SystemAllOut:
        """Every host reading of ``snap`` (whose host sample is ``s``)."""
        ts = iso(snap.ts_s)
        return cls(
            timestamp=ts,
            node=snap.node,
            cluster=snap.cluster,
            cpu=CpuOut.build(ts, s),
            memory=MemoryOut.build(ts, s),
            disk=DiskOut.build(ts, s),
            network=NetworkOut.build(ts, s),
            boot_time=None if s.boot_time_s is None else iso(s.boot_time_s),
        )
