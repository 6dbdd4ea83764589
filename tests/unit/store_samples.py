"""What the store tests are built from: snapshots, GPUs, processes, hosts, alerts, and the
hand-computed four-sample example (``HAND`` and the values it must roll up to)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gpufleet.model import (
    Alert,
    Attribution,
    DiskUsage,
    GpuProcess,
    GpuSample,
    NetRate,
    Snapshot,
    SystemSample,
)
from gpufleet.store import GpuUsage, Resolution, SeriesPoint, Store

GIB = 1 << 30
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600  # an hour boundary (1699999200)


def proc(
    pid: int,
    workload: str = "job",
    *,
    namespace: str = "team",
    user: str = "alice",
    mem: int | None = None,
    kind: str = "compute",
    workload_kind: str | None = None,
) -> GpuProcess:
    return GpuProcess(
        pid=pid,
        used_memory_bytes=mem,
        kind=kind,
        attribution=Attribution(
            namespace=namespace, user=user, workload=workload, workload_kind=workload_kind
        ),
    )


def gpu(
    uuid: str = "GPU-a",
    util: float | None = None,
    *,
    index: int = 0,
    temp: float | None = None,
    mem_used: int | None = None,
    procs: Sequence[GpuProcess] = (),
    throttle: tuple[str, ...] | None = None,
    lost: bool = False,
    name: str | None = "H100",
) -> GpuSample:
    return GpuSample(
        uuid=uuid,
        index=index,
        name=name,
        lost=lost,
        util_gpu_pct=util,
        temp_c=temp,
        mem_total_bytes=None if lost else 80 * GIB,
        mem_used_bytes=mem_used,
        throttle_reasons=throttle,
        processes=tuple(procs),
    )


def host(
    cpu: float, *, rx: Sequence[float | None] = (), disks: Sequence[float] = ()
) -> SystemSample:
    return SystemSample(
        cpu_pct=cpu,
        cpu_per_core_pct=(),
        cpu_count=8,
        load_1=1.0,
        load_5=1.0,
        load_15=1.0,
        mem_total_bytes=64 * GIB,
        mem_used_bytes=16 * GIB,
        mem_available_bytes=48 * GIB,
        mem_pct=25.0,
        swap_total_bytes=0,
        swap_used_bytes=0,
        swap_pct=0.0,
        disks=tuple(
            DiskUsage(f"/d{i}", None, None, 100, int(p), 100 - int(p), p)
            for i, p in enumerate(disks)
        ),
        net=tuple(NetRate(f"eth{i}", r, r, None, None, 0, 0) for i, r in enumerate(rx)),
    )


def snap(
    ts: float,
    *gpus: GpuSample,
    dt: float = 60.0,
    node: str = "n1",
    cluster: str = "c1",
    system: SystemSample | None = None,
) -> Snapshot:
    return Snapshot(ts_s=ts, cluster=cluster, node=node, gpus=gpus, system=system, interval_s=dt)


def points(store: Store, res: Resolution, start: float, end: float, **f: str) -> list[SeriesPoint]:
    (series,) = store.gpu_series(
        metric="util_gpu_pct", start_s=start, end_s=end, resolution=res, **f
    )
    return series.points


def hist(**bins: float) -> tuple[float, ...]:
    """A 20-bin histogram from ``b<index>=seconds``."""
    out = [0.0] * 20
    for name, seconds in bins.items():
        out[int(name[1:])] = seconds
    return tuple(out)


def alert(
    *, fired: float, resolved: float | None = None, rule: str = "gpu_temp", node: str = "n1"
) -> Alert:
    return Alert(
        rule=rule,
        severity="warning",
        node=node,
        subject="GPU-a",
        message="hot",
        value=91.0,
        threshold=85.0,
        started_s=fired - 60,
        fired_s=fired,
        resolved_s=resolved,
        cluster="c1",
    )


# Four samples of one GPU: three in minute T0, one in minute T0+60, all in hour T0.
HAND = [
    snap(
        T0 + 5,
        gpu(util=2.0, temp=40.0, mem_used=1 * GIB, procs=[proc(1)]),
        dt=10,
    ),
    snap(
        T0 + 15,
        gpu(
            util=None,
            temp=50.0,
            mem_used=2 * GIB,
            procs=[proc(1)],
            throttle=("hw_thermal_slowdown",),
        ),
        dt=20,
    ),
    snap(T0 + 35, gpu(util=100.0, temp=None, throttle=("sw_power_cap",)), dt=30),
    snap(T0 + 65, gpu(util=50.0, temp=60.0, mem_used=3 * GIB, throttle=("gpu_idle",)), dt=60),
]


def assert_hand_rollups(store: Store) -> None:
    minute = points(store, Resolution.MINUTE, T0, T0 + 119)
    # util: sum 2*10 + 100*30 = 3020 over the 40 s with a reading; s2 (unknown) adds nothing.
    assert minute == [
        SeriesPoint(T0, pytest.approx(75.5), 2.0, 100.0, 3),
        SeriesPoint(T0 + 60, pytest.approx(50.0), 50.0, 50.0, 1),
    ]
    (temp,) = store.gpu_series(
        metric="temp_c", start_s=T0, end_s=T0 + 119, resolution=Resolution.HOUR
    )
    # temp: (40*10 + 50*20 + 60*60) / (10 + 20 + 60) = 5000 / 90; s3 has no reading.
    assert temp.points == [SeriesPoint(T0, pytest.approx(5000 / 90), 40.0, 60.0, 4)]
    usage_1m = store.gpu_usage(start_s=T0, end_s=T0 + 59, resolution=Resolution.MINUTE)
    assert usage_1m == [
        GpuUsage(
            cluster="c1",
            node="n1",
            uuid="GPU-a",
            bucket_s=T0,
            seconds=60.0,
            allocated_s=30.0,  # s1 + s2 hold a compute process
            idle_s=10.0,  # only s1 (2 % < 5 %); unknown util is not idle
            idle_allocated_s=10.0,
            util_sum=pytest.approx(3020.0),
            util_hist_s=hist(b0=10.0, b19=30.0),  # 100 % lands in the last bin
            util_max_pct=100.0,
            mem_used_max_bytes=2 * GIB,
            mem_total_bytes=80 * GIB,
            throttled_s=50.0,  # thermal (s2) + power (s3); "gpu_idle" is neither
            samples=3,
        )
    ]
    (hour,) = store.gpu_usage(start_s=T0, end_s=T0 + 3599)
    assert (hour.bucket_s, hour.seconds, hour.allocated_s, hour.idle_s) == (T0, 120, 30, 10)
    assert hour.util_sum == pytest.approx(6020.0)
    assert hour.util_hist_s == hist(b0=10.0, b10=60.0, b19=30.0)
    assert (hour.mem_used_max_bytes, hour.throttled_s) == (3 * GIB, 50.0)
