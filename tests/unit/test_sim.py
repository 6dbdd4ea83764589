"""The simulated GPU and host sources: determinism, physical ranges, workloads, live schedule."""

from __future__ import annotations

import re
import statistics

import pytest

from gpufleet.collectors.base import GpuSource, SystemSource
from gpufleet.collectors.sim import DRIVER_VERSION, SimGpuSource, SimSystemSource
from gpufleet.collectors.sim_models import GIB, GPU_MODELS, get_model
from gpufleet.collectors.sim_scenario import Scenario, ScenarioBuilder, live_window
from gpufleet.collectors.sim_workload import (
    DAY_S,
    UtilPattern,
    Workload,
    WorkloadKind,
    utilization,
)
from gpufleet.model import GpuSample

T0 = 1_760_000_400.0  # a Thursday, 09:00 UTC on the 60 s grid
H100 = "NVIDIA H100 80GB HBM3"


def job(
    name: str,
    *,
    start: float,
    end: float,
    gpus: tuple[int, ...] = (0,),
    kind: WorkloadKind = WorkloadKind.TRAINING,
    pattern: UtilPattern = UtilPattern.BUSY,
    mem: float = 0.5,
    node: str = "n1",
    seed: int = 7,
) -> Workload:
    return Workload(
        name=name,
        namespace="ml-team",
        user="user_a",
        kind=kind,
        node=node,
        gpu_indices=gpus,
        start_s=start,
        end_s=end,
        pattern=pattern,
        mem_frac=mem,
        seed=seed,
        unix_user="user_a",
    )


def sweep(src: SimGpuSource, start: float, end: float, step: float) -> list[GpuSample]:
    out: list[GpuSample] = []
    t = start
    while t < end:
        out += src.sample(t)
        t += step
    return out


# --- GPU model table ---------------------------------------------------------------------


def test_h100_facts() -> None:
    m = get_model(H100)
    assert m.mem_total_mib == 81559
    assert m.power_limit_w == 700.0
    assert m.temp_slowdown_c == 87.0
    assert m.temp_shutdown_c == 92.0
    assert m.cuda_capability == "9.0"


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA H100 80GB HBM3",
        "NVIDIA A100-SXM4-80GB",
        "NVIDIA A100-SXM4-40GB",
        "NVIDIA L4",
        "NVIDIA GeForce RTX 4090",
        "Tesla V100-SXM2-32GB",
        "NVIDIA H200",
        "NVIDIA L40S",
    ],
)
def test_every_required_model_is_known_and_coherent(name: str) -> None:
    m = get_model(name)
    assert m.name == name
    assert 0 < m.power_idle_w < m.power_limit_w
    assert m.temp_idle_c < m.temp_full_load_c < m.temp_slowdown_c < m.temp_shutdown_c
    assert m.sm_clock_idle_mhz < m.sm_clock_max_mhz
    assert re.fullmatch(r"\d\.\d", m.cuda_capability)


def test_model_lookup_is_forgiving_but_refuses_unknown_and_ambiguous_names() -> None:
    assert get_model("nvidia h100 80gb hbm3").name == H100
    assert get_model("h100").name == H100
    with pytest.raises(ValueError, match="ambiguous") as ambiguous:
        get_model("A100")
    assert "NVIDIA A100-SXM4-40GB" in str(ambiguous.value)
    with pytest.raises(ValueError, match="unknown GPU model") as unknown:
        get_model("Voodoo 5 6000")
    for known in GPU_MODELS:
        assert known in str(unknown.value)


def test_unknown_model_is_refused_by_the_source() -> None:
    with pytest.raises(ValueError, match="known models"):
        SimGpuSource(gpus=2, model="GTX 9999")


# --- source basics and determinism ---------------------------------------------------------


def test_source_implements_the_protocols_and_reports_status() -> None:
    src = SimGpuSource(gpus=4, seed=3)
    assert isinstance(src, GpuSource)
    assert isinstance(SimSystemSource(src), SystemSource)
    status = src.status()
    assert (status.source, status.available, status.gpu_count) == ("sim", True, 4)
    assert status.driver_version == DRIVER_VERSION
    assert src.name == "sim"


def test_same_seed_gives_identical_samples_and_another_seed_differs() -> None:
    a = SimGpuSource(gpus=8, seed=11, start_s=T0)
    b = SimGpuSource(gpus=8, seed=11, start_s=T0)
    c = SimGpuSource(gpus=8, seed=12, start_s=T0)
    times = [T0 + k * 617.0 for k in range(40)]
    samples_a = [a.sample(t) for t in times]
    assert samples_a == [b.sample(t) for t in times]
    samples_c = [c.sample(t) for t in times]
    assert [g.uuid for g in samples_a[0]] != [g.uuid for g in samples_c[0]]
    utils_a = [g.util_gpu_pct for s in samples_a for g in s]
    utils_c = [g.util_gpu_pct for s in samples_c for g in s]
    assert utils_a != utils_c


def test_a_sample_depends_only_on_its_time_not_on_earlier_calls() -> None:
    fresh = SimGpuSource(gpus=8, seed=5, start_s=T0)
    used = SimGpuSource(gpus=8, seed=5, start_s=T0)
    sweep(used, T0 - 3 * 3600.0, T0 + 2 * DAY_S, 997.0)  # jump around first
    for t in (T0 + 5000.0, T0 + 123.5, T0 + 2 * DAY_S + 77.0):
        assert used.sample(t) == fresh.sample(t)


@pytest.mark.parametrize("with_scenario", [False, True])
def test_sample_many_equals_one_sample_per_time(with_scenario: bool) -> None:
    scenario = Scenario([job("t", start=T0 + 600.0, end=T0 + 4000.0, gpus=(1, 2), node="n1")])

    def source() -> SimGpuSource:
        if with_scenario:
            return SimGpuSource(gpus=4, seed=9, node="n1", scenario=scenario)
        return SimGpuSource(gpus=4, seed=9, node="n1", start_s=T0)

    many = source()
    one = source()
    regular = [T0 + 60.0 * k for k in range(90)]
    irregular = [T0 + 7.3 * k * k for k in range(40)]
    for times in (regular, irregular):
        assert many.sample_many(times) == [one.sample(t) for t in times]
        assert all(many.host_load(t) == one.host_load(t) for t in times[-3:])


def test_identity_fields_look_like_nvml() -> None:
    samples = SimGpuSource(gpus=10, seed=1, node="box").sample(T0)
    uuids = [g.uuid for g in samples]
    assert len(set(uuids)) == 10
    for i, g in enumerate(samples):
        assert g.index == i
        assert re.fullmatch(
            r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", g.uuid
        )
        assert re.fullmatch(r"00000000:[0-9A-F]{2}:00\.0", g.pci_bus_id or "")
        assert g.driver_version == "550.54.15"
        assert g.name == H100
        assert g.cuda_capability == "9.0"
    assert len({g.pci_bus_id for g in samples}) == 10
    # UUIDs are a function of (seed, node, index): another node has other GPUs.
    other = SimGpuSource(gpus=10, seed=1, node="box2").sample(T0)
    assert not set(uuids) & {g.uuid for g in other}


@pytest.mark.parametrize("model", sorted(GPU_MODELS))
def test_readings_stay_in_physical_ranges(model: str) -> None:
    m = get_model(model)
    src = SimGpuSource(gpus=8, model=model, seed=2, start_s=T0)
    samples = sweep(src, T0, T0 + DAY_S, 301.0)
    for g in samples:
        assert g.util_gpu_pct is not None
        assert 0.0 <= g.util_gpu_pct <= 100.0
        assert g.util_mem_pct is not None
        assert 0.0 <= g.util_mem_pct <= 100.0
        assert g.mem_total_bytes == m.mem_total_bytes
        assert g.mem_used_bytes is not None
        assert 0 < g.mem_used_bytes <= m.mem_total_bytes
        assert g.mem_free_bytes == m.mem_total_bytes - g.mem_used_bytes
        assert g.power_w is not None
        assert 0.85 * m.power_idle_w <= g.power_w <= m.power_limit_w
        assert g.power_limit_w == m.power_limit_w
        assert g.temp_c is not None
        assert 20.0 <= g.temp_c < m.temp_slowdown_c
        assert (g.temp_slowdown_c, g.temp_shutdown_c) == (m.temp_slowdown_c, m.temp_shutdown_c)
        assert g.clock_sm_mhz is not None
        assert 0.8 * m.sm_clock_idle_mhz <= g.clock_sm_mhz <= m.sm_clock_max_mhz
        assert g.clock_mem_mhz in (m.mem_clock_idle_mhz, m.mem_clock_max_mhz)
        assert g.pstate in ("P0", "P8")
        assert g.pcie_rx_bytes_per_s is not None
        assert 0.0 < g.pcie_rx_bytes_per_s <= m.pcie_max_bytes_per_s
        assert (g.fan_pct is not None) == m.has_fan
        if g.fan_pct is not None:
            assert 30.0 <= g.fan_pct <= 100.0
        assert g.ecc_corrected_total == (0 if m.ecc else None)
        assert g.throttle_reasons is not None
        assert not g.lost
        assert g.error is None
    assert any(g.processes for g in samples)
    assert any(not g.processes for g in samples)


# --- load drives power, clocks and temperature --------------------------------------------


def test_power_clocks_and_temperature_follow_load() -> None:
    src = SimGpuSource(gpus=8, seed=4, start_s=T0)
    samples = sweep(src, T0, T0 + 2 * DAY_S, 240.0)
    busy = [g for g in samples if (g.util_gpu_pct or 0) >= 80]
    idle = [g for g in samples if not g.processes]
    assert len(busy) > 50
    assert len(idle) > 50

    def mean(xs: list[GpuSample], field: str) -> float:
        return statistics.fmean(getattr(g, field) for g in xs)

    assert mean(busy, "power_w") > mean(idle, "power_w") + 400
    assert mean(busy, "temp_c") > mean(idle, "temp_c") + 20
    assert mean(busy, "clock_sm_mhz") > mean(idle, "clock_sm_mhz") + 1000
    assert mean(busy, "pcie_rx_bytes_per_s") > 100 * mean(idle, "pcie_rx_bytes_per_s")
    assert all(g.pstate == "P0" for g in busy)
    assert all(g.pstate == "P8" for g in idle)
    assert all("gpu_idle" in (g.throttle_reasons or ()) for g in idle)
    capped = [g for g in busy if "sw_power_cap" in (g.throttle_reasons or ())]
    assert capped, "a busy H100 reaches its power limit at times"
    assert all((g.power_w or 0) >= 0.97 * 700 for g in capped)
    # Power rises with utilization over the whole range, not only busy vs idle.
    pairs = sorted((g.util_gpu_pct or 0, g.power_w or 0) for g in samples if g.processes)
    low = [p for u, p in pairs if u < 30]
    high = [p for u, p in pairs if u > 70]
    assert statistics.fmean(high) > statistics.fmean(low)


def test_temperature_lags_power_when_a_job_starts() -> None:
    start = T0 + 3600.0
    scenario = Scenario([job("train", start=start, end=start + 4 * 3600.0)])
    src = SimGpuSource(gpus=1, seed=1, node="n1", scenario=scenario)

    def at(dt: float) -> GpuSample:
        return src.sample(start + dt)[0]

    before = at(-120.0)
    assert not before.processes
    assert before.util_gpu_pct == 0.0
    # Past start-up (150 s) power is high at once; temperature is still climbing.
    assert (at(200.0).power_w or 0) > 500
    temps = [at(dt).temp_c or 0.0 for dt in (0.0, 200.0, 600.0)]
    assert temps[0] < temps[1] < temps[2]
    assert temps[2] - (before.temp_c or 0.0) > 25


# --- workloads, processes and attribution --------------------------------------------------


def test_processes_carry_attribution_and_account_for_memory() -> None:
    workloads = [
        job("ddp", start=T0, end=T0 + 7200.0, gpus=(0, 1), mem=0.8),
        job(
            "nb",
            start=T0,
            end=T0 + 7200.0,
            gpus=(2,),
            kind=WorkloadKind.NOTEBOOK,
            pattern=UtilPattern.IDLE,
            mem=0.3,
        ),
    ]
    src = SimGpuSource(gpus=4, seed=1, node="n1", scenario=Scenario(workloads))
    first = src.sample(T0 + 600.0)
    later = src.sample(T0 + 4000.0)
    for g in (*first[:3], *later[:3]):
        assert len(g.processes) == 1
        proc = g.processes[0]
        assert proc.pid > 0
        assert proc.kind == "compute"
        assert proc.used_memory_bytes == g.mem_used_bytes
        assert proc.attribution.namespace == "ml-team"
        assert proc.attribution.user == "user_a"
        assert proc.attribution.unix_user == "user_a"
        assert proc.attribution.workload in ("ddp", "nb")
        assert proc.attribution.workload_kind in ("training", "notebook")
    # Each rank is its own process, and a process keeps its pid while it runs.
    assert first[0].processes[0].pid != first[1].processes[0].pid
    assert [g.processes[0].pid for g in first[:3]] == [g.processes[0].pid for g in later[:3]]
    assert first[0].processes[0].used_memory_bytes == int(0.8 * 81559) * 1024 * 1024
    # GPU 3 holds nothing: unallocated, no processes, almost no memory, idle power.
    for g in (first[3], later[3]):
        assert g.processes == ()
        assert not g.allocated
        assert g.util_gpu_pct == 0.0
        assert (g.mem_used_bytes or 0) < 16 * 1024 * 1024
        assert (g.power_w or 0) < 80


def test_idle_holder_keeps_memory_and_stays_idle_for_its_whole_life() -> None:
    nb = job(
        "jupyter",
        start=T0,
        end=T0 + 3 * DAY_S,
        kind=WorkloadKind.NOTEBOOK,
        pattern=UtilPattern.IDLE,
        mem=0.25,
    )
    src = SimGpuSource(gpus=1, node="n1", scenario=Scenario([nb]))
    samples = sweep(src, T0, T0 + 3 * DAY_S, 127.0)
    assert len(samples) > 2000
    for g in samples:
        assert (g.util_gpu_pct or 0) < 3.0
        assert (g.mem_used_bytes or 0) > GIB
        assert [p.attribution.workload for p in g.processes] == ["jupyter"]


def test_inference_servers_share_a_gpu_and_exclusive_jobs_do_not() -> None:
    def server(name: str, mem: float) -> Workload:
        return job(
            name,
            start=T0,
            end=T0 + DAY_S,
            mem=mem,
            kind=WorkloadKind.INFERENCE,
            pattern=UtilPattern.BURSTY,
            seed=len(name),
        )

    a = server("embed", 0.2)
    b = server("rerank", 0.2)
    shared = SimGpuSource(gpus=1, node="n1", scenario=Scenario([a, b])).sample(T0 + 6 * 3600.0)
    assert sorted(p.attribution.workload for p in shared[0].processes) == ["embed", "rerank"]
    assert sum(p.used_memory_bytes or 0 for p in shared[0].processes) == shared[0].mem_used_bytes

    with pytest.raises(ValueError, match="exclusive"):
        Scenario([job("x", start=T0, end=T0 + 100.0), job("y", start=T0 + 50.0, end=T0 + 200.0)])
    big = server("llm", 0.9)
    with pytest.raises(ValueError, match="memory"):
        Scenario([big, a])
    # Back to back on one GPU is fine.
    Scenario([job("x", start=T0, end=T0 + 100.0), job("y", start=T0 + 100.0, end=T0 + 200.0)])


def test_scenario_must_fit_the_node() -> None:
    scenario = Scenario([job("x", start=T0, end=T0 + 100.0, gpus=(5,))])
    with pytest.raises(ValueError, match="only 4 GPUs"):
        SimGpuSource(gpus=4, node="n1", scenario=scenario)
    with pytest.raises(ValueError, match="at least 1"):
        SimGpuSource(gpus=0)


def test_builder_places_on_free_gpus_only() -> None:
    builder = ScenarioBuilder({"a": 2, "b": 2})
    first = builder.place(job("one", start=T0, end=T0 + 100.0), ["a", "b"], 2)
    assert first is not None
    assert (first.node, first.gpu_indices) == ("a", (0, 1))
    second = builder.place(job("two", start=T0 + 50.0, end=T0 + 150.0), ["a", "b"], 1)
    assert second is not None
    assert second.node == "b"
    third = builder.place(job("three", start=T0 + 60.0, end=T0 + 90.0), ["a", "b"], 2)
    assert third is None
    assert len(builder.build().workloads) == 2


# --- utilization patterns -----------------------------------------------------------------


def test_training_is_busy_with_short_checkpoint_dips() -> None:
    w = job("train", start=T0, end=T0 + DAY_S)
    utils = [utilization(w, 0, T0 + 300.0 + k * 10.0) for k in range(8000)]
    busy = [u for u in utils if u >= 85.0]
    assert all(u <= 99.0 for u in utils)
    assert 0.9 < len(busy) / len(utils) < 1.0
    dips = [u for u in utils if u < 20.0]
    assert dips, "checkpoints show as dips"


def test_inference_follows_the_day() -> None:
    w = job(
        "api",
        start=T0 - DAY_S,
        end=T0 + 7 * DAY_S,
        kind=WorkloadKind.INFERENCE,
        pattern=UtilPattern.BURSTY,
    )
    day0 = T0 - T0 % DAY_S

    def around(hour: float) -> list[float]:
        times = [day0 + d * DAY_S + hour * 3600.0 + k * 37.0 for d in range(7) for k in range(50)]
        return [utilization(w, 0, t) for t in times]

    peak = around(15.0)
    trough = around(3.0)
    assert statistics.fmean(peak) > statistics.fmean(trough) + 30


def test_diurnal_swing_and_batch_phases() -> None:
    day0 = T0 - T0 % DAY_S  # a Thursday
    swing = job("dev", start=day0, end=day0 + DAY_S, pattern=UtilPattern.DIURNAL)
    afternoon = [utilization(swing, 0, day0 + 15 * 3600.0 + k * 60.0) for k in range(60)]
    night = [utilization(swing, 0, day0 + 3 * 3600.0 + k * 60.0) for k in range(60)]
    assert statistics.fmean(afternoon) > statistics.fmean(night) + 40
    batch = job("etl", start=T0, end=T0 + DAY_S, kind=WorkloadKind.BATCH, pattern=UtilPattern.BATCH)
    utils = [utilization(batch, 0, T0 + 120.0 + k * 30.0) for k in range(2000)]
    waiting = [u for u in utils if u < 30.0]
    computing = [u for u in utils if u > 60.0]
    assert 0.1 < len(waiting) / len(utils) < 0.4
    assert len(computing) + len(waiting) == len(utils)


# --- live self-generated schedule -----------------------------------------------------------


def test_live_source_shows_processes_starting_and_stopping_within_an_hour() -> None:
    src = SimGpuSource(gpus=8, seed=0)  # no scenario, no start: days aligned to UTC midnight
    started = stopped = 0
    previous: set[tuple[int, int]] | None = None
    for k in range(0, 3600, 30):
        now = {(g.index, p.pid) for g in src.sample(T0 + k) for p in g.processes}
        if previous is not None:
            started += len(now - previous)
            stopped += len(previous - now)
        previous = now
    assert started >= 1
    assert stopped >= 1


def test_live_schedule_mixes_kinds_and_fits_the_node() -> None:
    window = live_window(seed=3, node="n", gpus=8, window_start_s=T0)
    kinds = {w.kind for w in window.workloads}
    assert kinds == set(WorkloadKind)
    assert all(w.start_s >= T0 and w.end_s <= T0 + DAY_S for w in window.workloads)
    assert window.max_gpu_index("n") <= 7
    assert any(w.gpu_count == 2 for w in window.workloads)
    # Past the first window the schedule goes on: a source runs for days.
    src = SimGpuSource(gpus=8, seed=3, start_s=T0)
    assert any(g.processes for g in src.sample(T0 + 9 * DAY_S + 7200.0))


# --- host --------------------------------------------------------------------------------------


def test_host_follows_gpu_load_and_is_deterministic() -> None:
    train = [
        job(f"t{i}", start=T0 + 3600.0, end=T0 + 3 * 3600.0, gpus=(i,), seed=i) for i in range(8)
    ]
    scenario = Scenario(train)

    def host() -> SystemSource:
        return SimSystemSource(SimGpuSource(gpus=8, node="n1", scenario=scenario))

    a = host()
    b = host()
    times = [T0 + k * 300.0 for k in range(30)]
    samples_a = [a.sample(t) for t in times]
    assert samples_a == [b.sample(t) for t in times]
    idle = [s for t, s in zip(times, samples_a, strict=True) if t < T0 + 3600.0]
    busy = [s for t, s in zip(times, samples_a, strict=True) if T0 + 4000.0 < t < T0 + 3 * 3600]
    assert statistics.fmean(s.cpu_pct or 0 for s in busy) > 3 * statistics.fmean(
        s.cpu_pct or 0 for s in idle
    )
    assert min(s.mem_used_bytes for s in busy) > max(s.mem_used_bytes for s in idle)
    assert statistics.fmean(s.disk_read_bytes_per_s or 0 for s in busy) > 10 * statistics.fmean(
        s.disk_read_bytes_per_s or 0 for s in idle
    )
    for s in samples_a:
        assert s.cpu_count == 64
        assert len(s.cpu_per_core_pct) == 64
        assert all(0.0 <= c <= 100.0 for c in s.cpu_per_core_pct)
        assert s.cpu_pct is not None
        assert 0.0 < s.cpu_pct <= 100.0
        assert 0 < s.mem_used_bytes < s.mem_total_bytes
        assert s.mem_available_bytes == s.mem_total_bytes - s.mem_used_bytes
        assert {d.mount for d in s.disks} == {"/", "/raid"}
        assert {n.iface for n in s.net} == {"eth0", "ib0"}
        assert s.boot_time_s is not None
        assert s.boot_time_s < T0
    totals = [n.rx_bytes_total for s in samples_a for n in s.net if n.iface == "ib0"]
    assert totals == sorted(totals)
    assert totals[-1] > totals[0]


def test_host_without_gpus_shows_background_load_only() -> None:
    host = SimSystemSource(node="plain", seed=1, cpu_count=8, boot_time_s=T0 - DAY_S)
    s = host.sample(T0)
    assert s.cpu_count == 8
    assert len(s.cpu_per_core_pct) == 8
    assert s.cpu_pct is not None
    assert s.cpu_pct < 40.0
    assert s.boot_time_s == T0 - DAY_S
