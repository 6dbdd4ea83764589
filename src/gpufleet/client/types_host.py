"""Typed results of an agent's history, host, health and alert endpoints: ``/gpu/metrics/
history`` and ``/system/*``, ``/health*``, ``/alerts`` and ``/``.

Frozen dataclasses with units in field names (``_pct``, ``_bytes``, ``_s``); timestamps are
epoch seconds (``ts_s``). The JSON a result was built from stays available as ``.raw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpufleet.client._wire import (
    Json,
    floats,
    integer,
    many,
    num,
    obj,
    opt_float,
    opt_int,
    opt_str,
    opt_ts,
    strs,
    ts,
)


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One bucket of a series (one sample at ``raw`` resolution)."""

    ts_s: float
    mean: float | None
    min: float | None
    max: float | None
    count: int

    @classmethod
    def from_wire(cls, d: Json) -> HistoryPoint:
        return cls(
            ts_s=ts(d["timestamp"]),
            mean=opt_float(d.get("mean")),
            min=opt_float(d.get("min")),
            max=opt_float(d.get("max")),
            count=integer(d.get("count", 0)),
        )


@dataclass(frozen=True, slots=True)
class HistorySeries:
    """One GPU's (``subject`` = UUID) or host's (``subject`` = ``host``) series."""

    cluster: str
    node: str
    subject: str
    gpu_index: int | None
    points: tuple[HistoryPoint, ...]

    @classmethod
    def from_wire(cls, d: Json) -> HistorySeries:
        return cls(
            cluster=str(d["cluster"]),
            node=str(d["node"]),
            subject=str(d["subject"]),
            gpu_index=opt_int(d.get("gpu_index")),
            points=many(d.get("points"), HistoryPoint.from_wire),
        )


@dataclass(frozen=True, slots=True)
class History:
    """A metric over time (``/gpu/metrics/history``, ``/system/history`` and the hub's
    fleet history); the metric's unit is in its name (``util_gpu_pct``, ``power_w``)."""

    metric: str
    resolution: str
    start_s: float
    end_s: float
    series: tuple[HistorySeries, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> History:
        return cls(
            metric=str(d["metric"]),
            resolution=str(d["resolution"]),
            start_s=ts(d["start"]),
            end_s=ts(d["end"]),
            series=many(d.get("series"), HistorySeries.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Cpu:
    """``GET /system/cpu``."""

    ts_s: float
    cpu_pct: float | None
    per_core_pct: tuple[float, ...]
    cpu_count: int | None
    load_1: float | None
    load_5: float | None
    load_15: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Cpu:
        load = obj(d.get("load_average"))
        return cls(
            ts_s=ts(d["timestamp"]),
            cpu_pct=opt_float(d.get("cpu_pct")),
            per_core_pct=floats(d.get("cpu_per_core_pct")),
            cpu_count=opt_int(d.get("cpu_count")),
            load_1=opt_float(load.get("load_1")),
            load_5=opt_float(load.get("load_5")),
            load_15=opt_float(load.get("load_15")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class HostMemory:
    """``GET /system/memory``: RAM and swap."""

    ts_s: float
    total_bytes: int
    used_bytes: int
    available_bytes: int
    used_pct: float
    swap_total_bytes: int
    swap_used_bytes: int
    swap_used_pct: float
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> HostMemory:
        return cls(
            ts_s=ts(d["timestamp"]),
            total_bytes=integer(d["total_bytes"]),
            used_bytes=integer(d["used_bytes"]),
            available_bytes=integer(d["available_bytes"]),
            used_pct=num(d["used_pct"]),
            swap_total_bytes=integer(d["swap_total_bytes"]),
            swap_used_bytes=integer(d["swap_used_bytes"]),
            swap_used_pct=num(d["swap_used_pct"]),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Partition:
    mount: str
    device: str | None
    fstype: str | None
    total_bytes: int
    used_bytes: int
    free_bytes: int
    used_pct: float

    @classmethod
    def from_wire(cls, d: Json) -> Partition:
        return cls(
            mount=str(d["mount"]),
            device=opt_str(d.get("device")),
            fstype=opt_str(d.get("fstype")),
            total_bytes=integer(d["total_bytes"]),
            used_bytes=integer(d["used_bytes"]),
            free_bytes=integer(d["free_bytes"]),
            used_pct=num(d["used_pct"]),
        )


@dataclass(frozen=True, slots=True)
class Disk:
    """``GET /system/disk``: usage per mounted filesystem and I/O rates."""

    ts_s: float
    partitions: tuple[Partition, ...]
    read_bytes_per_s: float | None
    write_bytes_per_s: float | None
    read_ops_per_s: float | None
    write_ops_per_s: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Disk:
        io = obj(d.get("io"))
        return cls(
            ts_s=ts(d["timestamp"]),
            partitions=many(d.get("partitions"), Partition.from_wire),
            read_bytes_per_s=opt_float(io.get("read_bytes_per_s")),
            write_bytes_per_s=opt_float(io.get("write_bytes_per_s")),
            read_ops_per_s=opt_float(io.get("read_ops_per_s")),
            write_ops_per_s=opt_float(io.get("write_ops_per_s")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    rx_bytes_per_s: float | None
    tx_bytes_per_s: float | None
    rx_packets_per_s: float | None
    tx_packets_per_s: float | None
    rx_bytes_total: int
    tx_bytes_total: int
    rx_errors_total: int
    tx_errors_total: int

    @classmethod
    def from_wire(cls, d: Json) -> Interface:
        return cls(
            name=str(d["interface"]),
            rx_bytes_per_s=opt_float(d.get("rx_bytes_per_s")),
            tx_bytes_per_s=opt_float(d.get("tx_bytes_per_s")),
            rx_packets_per_s=opt_float(d.get("rx_packets_per_s")),
            tx_packets_per_s=opt_float(d.get("tx_packets_per_s")),
            rx_bytes_total=integer(d.get("rx_bytes_total", 0)),
            tx_bytes_total=integer(d.get("tx_bytes_total", 0)),
            rx_errors_total=integer(d.get("rx_errors_total", 0)),
            tx_errors_total=integer(d.get("tx_errors_total", 0)),
        )


@dataclass(frozen=True, slots=True)
class Network:
    """``GET /system/network``: traffic per interface and in total."""

    ts_s: float
    interfaces: tuple[Interface, ...]
    rx_bytes_per_s: float | None
    tx_bytes_per_s: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Network:
        return cls(
            ts_s=ts(d["timestamp"]),
            interfaces=many(d.get("interfaces"), Interface.from_wire),
            rx_bytes_per_s=opt_float(d.get("rx_bytes_per_s")),
            tx_bytes_per_s=opt_float(d.get("tx_bytes_per_s")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Host:
    """``GET /system/all``: every host reading of one snapshot."""

    ts_s: float
    cluster: str
    node: str
    cpu: Cpu
    memory: HostMemory
    disk: Disk
    network: Network
    boot_time_s: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Host:
        return cls(
            ts_s=ts(d["timestamp"]),
            cluster=str(d["cluster"]),
            node=str(d["node"]),
            cpu=Cpu.from_wire(obj(d["cpu"])),
            memory=HostMemory.from_wire(obj(d["memory"])),
            disk=Disk.from_wire(obj(d["disk"])),
            network=Network.from_wire(obj(d["network"])),
            boot_time_s=opt_ts(d.get("boot_time")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Health:
    """``GET /health`` (``components`` empty) or ``/health/detailed``."""

    status: str
    problems: tuple[str, ...]
    version: str
    instance_id: str
    ts_s: float
    components: Mapping[str, Any]
    raw: Json = field(repr=False, compare=False)

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    @classmethod
    def from_wire(cls, d: Json) -> Health:
        return cls(
            status=str(d["status"]),
            problems=strs(d.get("problems")),
            version=str(d.get("version", "")),
            instance_id=str(d.get("instance_id", "")),
            ts_s=ts(d["timestamp"]),
            components=obj(d.get("components")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """``GET /``: what the service is and which endpoints it serves."""

    service: str
    version: str
    instance_id: str
    cluster: str
    node: str
    gpu_source: str
    endpoints: tuple[str, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> AgentInfo:
        return cls(
            service=str(d["service"]),
            version=str(d["version"]),
            instance_id=str(d.get("instance_id", "")),
            cluster=str(d.get("cluster", "")),
            node=str(d.get("node", "")),
            gpu_source=str(d.get("gpu_source", "")),
            endpoints=strs(d.get("endpoints")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert (firing while ``resolved_s`` is None)."""

    id: int | None
    rule: str
    severity: str
    state: str
    cluster: str
    node: str
    subject: str
    message: str
    value: float | None
    threshold: float | None
    started_s: float
    fired_s: float
    resolved_s: float | None

    @classmethod
    def from_wire(cls, d: Json) -> Alert:
        return cls(
            id=opt_int(d.get("id")),
            rule=str(d["rule"]),
            severity=str(d["severity"]),
            state=str(d["state"]),
            cluster=str(d["cluster"]),
            node=str(d["node"]),
            subject=str(d["subject"]),
            message=str(d["message"]),
            value=opt_float(d.get("value")),
            threshold=opt_float(d.get("threshold")),
            started_s=ts(d["started"]),
            fired_s=ts(d["fired"]),
            resolved_s=opt_ts(d.get("resolved")),
        )


@dataclass(frozen=True, slots=True)
class AlertList:
    """``GET /alerts``: a page of alerts, newest first (``source`` memory or store)."""

    start_s: float
    end_s: float
    source: str
    active_count: int
    count: int
    alerts: tuple[Alert, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> AlertList:
        return cls(
            start_s=ts(d["start"]),
            end_s=ts(d["end"]),
            source=str(d["source"]),
            active_count=integer(d["active_count"]),
            count=integer(d["count"]),
            alerts=many(d.get("alerts"), Alert.from_wire),
            raw=d,
        )
