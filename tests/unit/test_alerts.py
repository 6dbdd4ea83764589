"""Alert rules and the engine: hold time, dedup, cooldown, immediate rules, store failures."""

from __future__ import annotations

import dataclasses
import logging
from typing import cast

import pytest

from gpufleet.agent import alert_rules
from gpufleet.agent.alert_rules import (
    RULES,
    Evaluation,
    build_rules,
    describe_process,
    format_bytes,
    format_duration,
)
from gpufleet.agent.alerts import AlertEngine
from gpufleet.model import (
    Alert,
    Attribution,
    DiskUsage,
    GpuProcess,
    GpuSample,
    Snapshot,
    SystemSample,
)
from gpufleet.settings import AlertSettings
from gpufleet.store.base import Store, StoreUnavailable

GIB = 1024**3
UUID = "GPU-ab12cdef-1111-2222-3333-444455556666"


class FakeAlertStore:
    """Only what the engine uses: ``save_alert``, assigning ids like a database would."""

    def __init__(self) -> None:
        self.saved: list[Alert] = []
        self.fail_with: Exception | None = None
        self._next_id = 1

    def save_alert(self, alert: Alert) -> Alert:
        if self.fail_with is not None:
            raise self.fail_with
        if alert.id is None:
            alert = dataclasses.replace(alert, id=self._next_id)
            self._next_id += 1
        self.saved.append(alert)
        return alert


def gpu(**fields: object) -> GpuSample:
    base: dict[str, object] = {
        "uuid": UUID,
        "index": 3,
        "name": "NVIDIA H100 80GB HBM3",
        "util_gpu_pct": 50.0,
        "mem_total_bytes": 80 * GIB,
        "mem_used_bytes": 10 * GIB,
        "temp_c": 50.0,
        "temp_slowdown_c": 87.0,
        "power_w": 300.0,
        "power_limit_w": 700.0,
        "ecc_uncorrected_total": 0,
        "throttle_reasons": (),
    }
    base.update(fields)
    return GpuSample(**base)  # type: ignore[arg-type]


def host(**fields: object) -> SystemSample:
    base: dict[str, object] = {
        "cpu_pct": 20.0,
        "cpu_per_core_pct": (20.0,) * 4,
        "cpu_count": 4,
        "load_1": 1.0,
        "load_5": 1.0,
        "load_15": 1.0,
        "mem_total_bytes": 64 * GIB,
        "mem_used_bytes": 16 * GIB,
        "mem_available_bytes": 48 * GIB,
        "mem_pct": 25.0,
        "swap_total_bytes": 0,
        "swap_used_bytes": 0,
        "swap_pct": 0.0,
        "disks": (disk("/", 40.0),),
    }
    base.update(fields)
    return SystemSample(**base)  # type: ignore[arg-type]


def disk(mount: str, used_pct: float) -> DiskUsage:
    total = 500 * GIB
    used = int(total * used_pct / 100)
    return DiskUsage(mount, "/dev/sda1", "ext4", total, used, total - used, used_pct)


def snap(
    ts: float,
    *gpus: GpuSample,
    system: SystemSample | None = None,
    node: str = "node-1",
) -> Snapshot:
    return Snapshot(ts, "lab", node, tuple(gpus), system, 2.0)


def settings(**overrides: object) -> AlertSettings:
    values: dict[str, object] = {
        "hold_s": 60.0,
        "cooldown_s": 300.0,
        "idle_allocated_hold_s": 600.0,
    }
    values.update(overrides)
    return AlertSettings(**values)  # type: ignore[arg-type]


def engine(
    rules: list[str] | None = None,
    store: FakeAlertStore | None = None,
    notified: list[Alert] | None = None,
    **overrides: object,
) -> AlertEngine:
    return AlertEngine(
        settings(**overrides),
        store=cast(Store, store) if store is not None else None,
        notify=notified.append if notified is not None else None,
        rules=rules,
    )


# -- engine mechanics --------------------------------------------------------------------------


def test_temperature_fires_only_after_hold_and_resolves_when_it_cools() -> None:
    store = FakeAlertStore()
    notified: list[Alert] = []
    eng = engine(["gpu_temperature"], store, notified)

    assert eng.evaluate(snap(0, gpu(temp_c=84.0))) == []
    assert eng.evaluate(snap(30, gpu(temp_c=84.0))) == []
    fired = eng.evaluate(snap(60, gpu(temp_c=84.0)))

    assert len(fired) == 1
    alert = fired[0]
    assert (alert.rule, alert.severity, alert.subject, alert.node) == (
        "gpu_temperature",
        "warning",
        UUID,
        "node-1",
    )
    assert (alert.started_s, alert.fired_s, alert.resolved_s) == (0, 60, None)
    assert alert.id == 1
    assert alert.cluster == "lab"
    assert (alert.value, alert.threshold) == (84.0, 82.0)
    assert alert.message.startswith(
        "GPU 3 (GPU-ab12…) is at 84 °C, 3 °C below its slowdown temperature 87 °C"
    )
    assert eng.active() == [alert]

    resolved = eng.evaluate(snap(62, gpu(temp_c=70.0)))
    assert len(resolved) == 1
    assert resolved[0].resolved_s == 62
    assert resolved[0].id == 1
    assert eng.active() == []
    assert [a.resolved_s for a in store.saved] == [None, 62]
    assert notified == [alert, resolved[0]]


def test_hold_time_restarts_when_the_condition_clears() -> None:
    eng = engine(["gpu_temperature"])
    eng.evaluate(snap(0, gpu(temp_c=84.0)))
    eng.evaluate(snap(50, gpu(temp_c=60.0)))
    assert eng.evaluate(snap(100, gpu(temp_c=84.0))) == []
    assert eng.evaluate(snap(150, gpu(temp_c=84.0))) == []
    fired = eng.evaluate(snap(160, gpu(temp_c=84.0)))
    assert [a.started_s for a in fired] == [100]


def test_one_active_alert_per_rule_node_and_subject() -> None:
    eng = engine(["gpu_temperature"], hold_s=0.0)
    first = eng.evaluate(snap(0, gpu(temp_c=84.0)))
    assert len(first) == 1
    for ts in range(2, 40, 2):
        assert eng.evaluate(snap(ts, gpu(temp_c=85.0))) == []
    assert eng.active() == first


def test_escalates_to_critical_at_slowdown_without_a_second_alert() -> None:
    store = FakeAlertStore()
    eng = engine(["gpu_temperature"], store, hold_s=0.0)
    eng.evaluate(snap(0, gpu(temp_c=84.0)))
    escalated = eng.evaluate(snap(2, gpu(temp_c=88.0)))
    assert [a.severity for a in escalated] == ["critical"]
    assert escalated[0].id == 1
    assert escalated[0].fired_s == 0
    assert "at or above its slowdown temperature 87 °C" in escalated[0].message
    assert [a.severity for a in eng.active()] == ["critical"]
    # Cooling to the warning band keeps the critical alert rather than flapping severity.
    assert eng.evaluate(snap(4, gpu(temp_c=84.0))) == []


def test_temperature_falls_back_when_slowdown_is_unknown() -> None:
    eng = engine(["gpu_temperature"], hold_s=0.0, temp_fallback_c=85.0)
    assert eng.evaluate(snap(0, gpu(temp_c=84.0, temp_slowdown_c=None))) == []
    fired = eng.evaluate(snap(2, gpu(temp_c=85.0, temp_slowdown_c=None)))
    assert [(a.severity, a.threshold) for a in fired] == [("warning", 85.0)]
    assert "slowdown temperature is unknown" in fired[0].message


def test_cooldown_blocks_refiring_after_resolution() -> None:
    eng = engine(["gpu_temperature"], hold_s=0.0, cooldown_s=300.0)
    eng.evaluate(snap(0, gpu(temp_c=84.0)))
    eng.evaluate(snap(10, gpu(temp_c=60.0)))
    assert eng.evaluate(snap(20, gpu(temp_c=84.0))) == []
    assert eng.evaluate(snap(309, gpu(temp_c=84.0))) == []
    refired = eng.evaluate(snap(310, gpu(temp_c=84.0)))
    assert len(refired) == 1
    assert refired[0].started_s == 20


def test_a_missing_reading_keeps_the_alert_instead_of_resolving_it() -> None:
    eng = engine(["gpu_temperature"], hold_s=0.0)
    eng.evaluate(snap(0, gpu(temp_c=84.0)))
    assert eng.evaluate(snap(2, gpu(temp_c=None))) == []
    assert eng.evaluate(snap(4, gpu(lost=True, temp_c=None))) == []
    assert len(eng.active()) == 1


def test_snapshot_of_one_node_does_not_resolve_another_nodes_alerts() -> None:
    eng = engine(["gpu_temperature"], hold_s=0.0)
    eng.evaluate(snap(0, gpu(temp_c=84.0), node="a"))
    eng.evaluate(snap(1, gpu(temp_c=50.0), node="b"))
    assert [a.node for a in eng.active()] == ["a"]


def test_disabled_settings_evaluate_nothing() -> None:
    eng = engine(hold_s=0.0, enabled=False)
    assert eng.evaluate(snap(0, gpu(temp_c=95.0, lost=True))) == []
    assert eng.active() == []


def test_rules_are_picked_by_name() -> None:
    assert engine().rules == list(RULES)
    assert engine(["host_disk", "gpu_xid"]).rules == ["host_disk", "gpu_xid"]
    with pytest.raises(ValueError, match=r"unknown alert rule.*gpu_tmperature.*known rules"):
        engine(["gpu_tmperature"])


def test_every_registered_rule_builds_from_settings() -> None:
    built = build_rules(settings(), 5.0)
    assert [r.name for r in built] == list(RULES)
    holds = {r.name: (r.immediate, r.hold_s) for r in built}
    assert holds["gpu_temperature"] == (False, 60.0)
    assert holds["gpu_idle_allocated"] == (False, 600.0)
    assert holds["gpu_xid"][0] is True


# -- store and notifier failures ---------------------------------------------------------------


def test_store_failure_is_logged_once_and_alerts_still_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeAlertStore()
    store.fail_with = StoreUnavailable("database is locked")
    notified: list[Alert] = []
    eng = engine(["gpu_temperature", "gpu_xid"], store, notified, hold_s=0.0)
    caplog.set_level(logging.INFO, logger="gpufleet.agent.alerts")

    fired = eng.evaluate(snap(0, gpu(temp_c=84.0, xid_errors=(13,))))
    eng.evaluate(snap(2, gpu(temp_c=84.0)))

    assert len(fired) == 2
    assert len(notified) == 3  # two fired, the XID one resolved
    assert all(a.id is None for a in notified)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "database is locked" in warnings[0].getMessage()
    error_while_down = eng.store_error
    assert error_while_down == "database is locked"

    store.fail_with = None
    eng.evaluate(snap(4, gpu(temp_c=60.0)))
    assert eng.store_error is None
    assert [a.rule for a in store.saved] == ["gpu_temperature"]
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_failing_notifier_and_failing_rule_do_not_stop_evaluation(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrokenRule:
        name = "broken"
        immediate = True
        hold_s = 0.0

        def __init__(self, settings: AlertSettings, idle: float) -> None:
            pass

        def check(self, snapshot: Snapshot) -> Evaluation:
            raise ZeroDivisionError("rule bug")

    monkeypatch.setitem(alert_rules.RULES, "broken", BrokenRule)

    def notify(alert: Alert) -> None:
        raise ConnectionError("receiver down")

    eng = AlertEngine(settings(hold_s=0.0), notify=notify, rules=["broken", "gpu_lost"])
    with caplog.at_level(logging.ERROR, logger="gpufleet.agent.alerts"):
        first = eng.evaluate(snap(0, gpu(lost=True, error="GPU is lost")))
        eng.evaluate(snap(2, gpu(lost=True, error="GPU is lost")))

    assert [a.rule for a in first] == ["gpu_lost"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("rule bug" in m for m in messages) == 1
    assert sum("receiver down" in m for m in messages) == 1
    assert all(r.exc_info for r in caplog.records)


# -- rules -------------------------------------------------------------------------------------


def test_memory_full_names_the_biggest_holder() -> None:
    eng = engine(["gpu_memory_full"], hold_s=0.0, gpu_mem_pct=95.0)
    small = GpuProcess(pid=7, name="python", used_memory_bytes=1 * GIB)
    big = GpuProcess(
        pid=42,
        name="python",
        used_memory_bytes=76 * GIB,
        attribution=Attribution(user="alice", workload="train-llm"),
    )
    assert eng.evaluate(snap(0, gpu(mem_used_bytes=70 * GIB, processes=(small, big)))) == []
    fired = eng.evaluate(snap(2, gpu(mem_used_bytes=77 * GIB, processes=(small, big))))
    assert len(fired) == 1
    message = fired[0].message
    assert "77.0 GiB of 80.0 GiB memory in use (96.2 %, threshold 95 %)" in message
    assert message.index("train-llm of alice (pid 42, python, 76.0 GiB)") < message.index("pid 7")
    assert eng.evaluate(snap(4, gpu(mem_used_bytes=40 * GIB)))[0].resolved_s == 4


@pytest.mark.parametrize(
    ("fields", "fires", "fragment"),
    [
        ({"power_w": 690.0}, True, "690 W, 98.6 % of its 700 W power limit"),
        ({"throttle_reasons": ("hw_thermal_slowdown",)}, True, "hardware thermal slowdown"),
        ({"throttle_reasons": ("sw_power_cap",)}, True, "sw_power_cap (software power cap)"),
        ({"throttle_reasons": ("gpu_idle",)}, False, ""),
        ({"power_w": 600.0}, False, ""),
    ],
)
def test_power_limit_and_throttling(fields: dict[str, object], fires: bool, fragment: str) -> None:
    eng = engine(["gpu_power_limit"], hold_s=0.0, power_pct=98.0)
    fired = eng.evaluate(snap(0, gpu(**fields)))
    assert len(fired) == int(fires)
    if fires:
        assert fragment in fired[0].message


def test_ecc_increase_fires_immediately_and_clears_on_the_next_quiet_sample() -> None:
    eng = engine(["gpu_ecc_errors"], hold_s=600.0)
    # The first reading is only a baseline: errors from before the agent started are old news.
    assert eng.evaluate(snap(0, gpu(ecc_uncorrected_total=3))) == []
    assert eng.evaluate(snap(2, gpu(ecc_uncorrected_total=3))) == []
    fired = eng.evaluate(snap(4, gpu(ecc_uncorrected_total=5)))
    assert [(a.severity, a.value, a.fired_s) for a in fired] == [("critical", 2.0, 4)]
    assert "2 new uncorrected ECC errors since the last sample (5 in total)" in fired[0].message
    resolved = eng.evaluate(snap(6, gpu(ecc_uncorrected_total=5)))
    assert [a.resolved_s for a in resolved] == [6]


def test_xid_fires_immediately_and_names_the_codes() -> None:
    eng = engine(["gpu_xid"], hold_s=600.0)
    fired = eng.evaluate(snap(0, gpu(xid_errors=(31, 13, 31))))
    assert [a.severity for a in fired] == ["warning"]
    assert "XID errors 13 (graphics engine exception" in fired[0].message
    assert "31 (GPU memory page fault" in fired[0].message

    other = gpu(uuid="GPU-ffff0000-9999", index=0, xid_errors=(79,))
    fired = eng.evaluate(snap(2, other))
    assert [(a.subject, a.severity) for a in fired if a.resolved_s is None] == [
        ("GPU-ffff0000-9999", "critical")
    ]
    assert "XID error 79 (GPU has fallen off the bus)" in fired[0].message


def test_lost_gpu_is_critical_and_immediate() -> None:
    eng = engine(["gpu_lost"], hold_s=600.0)
    lost = GpuSample(uuid=UUID, index=3, lost=True, error="GPU is lost (NVML_ERROR_GPU_IS_LOST)")
    fired = eng.evaluate(snap(0, lost))
    assert [(a.severity, a.started_s, a.fired_s) for a in fired] == [("critical", 0, 0)]
    assert "GPU 3 (GPU-ab12…) on node-1 stopped answering: GPU is lost" in fired[0].message
    assert eng.evaluate(snap(2, gpu()))[0].resolved_s == 2


def test_idle_allocated_needs_its_own_hold_and_names_holders() -> None:
    eng = engine(["gpu_idle_allocated"], hold_s=0.0, idle_allocated_hold_s=600.0)
    holder = GpuProcess(
        pid=4242,
        name="python",
        used_memory_bytes=12 * GIB,
        attribution=Attribution(user="alice", workload="notebook-7"),
    )
    idle = gpu(util_gpu_pct=2.0, mem_used_bytes=12 * GIB, processes=(holder,))
    for ts in range(0, 600, 60):
        assert eng.evaluate(snap(ts, idle)) == []
    fired = eng.evaluate(snap(600, idle))
    assert len(fired) == 1
    message = fired[0].message
    assert "allocated but idle for at least 10 min" in message
    assert "2 % utilization, below the 5 % idle threshold" in message
    assert "holding 12.0 GiB of memory" in message
    assert "notebook-7 of alice (pid 4242, python, 12.0 GiB)" in message
    assert eng.evaluate(snap(660, gpu(util_gpu_pct=80.0, processes=(holder,))))[0].resolved_s


def test_idle_but_unallocated_or_busy_gpu_does_not_fire() -> None:
    eng = engine(["gpu_idle_allocated"], idle_allocated_hold_s=0.0)
    graphics = GpuProcess(pid=1, name="Xorg", kind="graphics")
    assert eng.evaluate(snap(0, gpu(util_gpu_pct=0.0))) == []
    assert eng.evaluate(snap(2, gpu(util_gpu_pct=0.0, processes=(graphics,)))) == []
    busy = gpu(util_gpu_pct=60.0, processes=(GpuProcess(pid=2),))
    assert eng.evaluate(snap(4, busy)) == []


def test_idle_threshold_is_configurable() -> None:
    eng = AlertEngine(
        settings(idle_allocated_hold_s=0.0), idle_threshold_pct=20.0, rules=["gpu_idle_allocated"]
    )
    fired = eng.evaluate(snap(0, gpu(util_gpu_pct=15.0, processes=(GpuProcess(pid=9),))))
    assert [a.threshold for a in fired] == [20.0]


def test_host_cpu_and_memory_hold_then_fire() -> None:
    eng = engine(["host_cpu", "host_memory"], hold_s=60.0)
    hot = host(cpu_pct=99.0, load_1=31.5, mem_pct=97.0, mem_used_bytes=62 * GIB)
    assert eng.evaluate(snap(0, system=hot)) == []
    fired = eng.evaluate(snap(60, system=hot))
    by_rule = {a.rule: a for a in fired}
    assert set(by_rule) == {"host_cpu", "host_memory"}
    assert by_rule["host_cpu"].subject == "host"
    assert "99 % (threshold 95 %), load average 31.5 on 4 cores" in by_rule["host_cpu"].message
    assert "97 % used (62.0 GiB of 64.0 GiB" in by_rule["host_memory"].message


def test_missing_host_reading_keeps_host_alerts() -> None:
    eng = engine(["host_cpu"], hold_s=0.0)
    eng.evaluate(snap(0, system=host(cpu_pct=99.0)))
    assert eng.evaluate(snap(2, system=None)) == []
    assert eng.evaluate(snap(4, system=host(cpu_pct=None))) == []
    assert len(eng.active()) == 1
    assert eng.evaluate(snap(6, system=host(cpu_pct=10.0)))[0].resolved_s == 6


def test_host_disk_alerts_per_mount() -> None:
    eng = engine(["host_disk"], hold_s=0.0)
    fired = eng.evaluate(snap(0, system=host(disks=(disk("/", 40.0), disk("/data", 97.0)))))
    assert [a.subject for a in fired] == ["host:/data"]
    assert "Filesystem /data on node-1 is 97 % full (15.0 GiB free of 500.0 GiB" in (
        fired[0].message
    )

    both = host(disks=(disk("/", 40.0), disk("/data", 97.0), disk("/scratch", 99.0)))
    assert [a.subject for a in eng.evaluate(snap(2, system=both))] == ["host:/scratch"]

    data_freed = host(disks=(disk("/", 40.0), disk("/data", 50.0), disk("/scratch", 99.0)))
    resolved = eng.evaluate(snap(4, system=data_freed))
    assert [(a.subject, a.resolved_s) for a in resolved] == [("host:/data", 4)]
    assert [a.subject for a in eng.active()] == ["host:/scratch"]


# -- wording helpers ---------------------------------------------------------------------------


def test_wording_helpers() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(80 * GIB) == "80.0 GiB"
    assert format_duration(45) == "45 s"
    assert format_duration(1800) == "30 min"
    assert format_duration(3 * 3600) == "3.0 h"
    assert describe_process(GpuProcess(pid=5)) == "pid 5"
    unix_only = GpuProcess(pid=5, name="python", attribution=Attribution(unix_user="bob"))
    assert describe_process(unix_only) == "bob (pid 5, python)"
