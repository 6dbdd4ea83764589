"""Alert rules and the engine: hold time, dedup, cooldown, immediate rules, store failures."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from typing import cast

import pytest

from gpufleet.agent import alert_rules
from gpufleet.agent.alert_rules import RULES, Evaluation, build_rules
from gpufleet.agent.alert_wording import describe_process, format_bytes, format_duration
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
from gpufleet.store.base import Store, StoreError, StoreUnavailable

GIB = 1024**3
UUID = "GPU-ab12cdef-1111-2222-3333-444455556666"


class FakeAlertStore:
    """What the engine uses: ``save_alert`` (ids like a database) and ``alerts``."""

    def __init__(self) -> None:
        self.saved: list[Alert] = []
        self.fail_with: Exception | None = None
        self.block: threading.Event | None = None
        self.save_threads: list[str] = []
        self._next_id = 1

    def save_alert(self, alert: Alert) -> Alert:
        self.save_threads.append(threading.current_thread().name)
        if self.block is not None:
            self.block.wait(10.0)
        if self.fail_with is not None:
            raise self.fail_with
        if alert.id is None:
            alert = dataclasses.replace(alert, id=self._next_id)
            self._next_id += 1
        self.saved.append(alert)
        return alert

    def alerts(
        self,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        active_only: bool = False,
        limit: int = 500,
    ) -> list[Alert]:
        if self.fail_with is not None:
            raise self.fail_with
        latest: dict[int, Alert] = {}
        for alert in self.saved:
            assert alert.id is not None
            latest[alert.id] = alert
        rows = [a for a in latest.values() if not active_only or a.resolved_s is None]
        return sorted(rows, key=lambda a: a.fired_s, reverse=True)[:limit]


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


_ENGINES: list[AlertEngine] = []


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    while _ENGINES:
        _ENGINES.pop().close(timeout=5.0)


def engine(
    rules: list[str] | None = None,
    store: FakeAlertStore | None = None,
    notified: list[Alert] | None = None,
    *,
    background: bool = False,
    node: str = "",
    cluster: str = "",
    **overrides: object,
) -> AlertEngine:
    """An engine; saving and notifying happen in :meth:`flush_pending` unless ``background``."""
    eng = AlertEngine(
        settings(**overrides),
        store=cast(Store, store) if store is not None else None,
        notify=notified.append if notified is not None else None,
        rules=rules,
        background=background,
        node=node,
        cluster=cluster,
    )
    _ENGINES.append(eng)
    return eng


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
    assert alert.id is None  # not saved yet: saving happens off the sampling thread
    assert eng.active() == [alert]
    eng.flush_pending()
    alert = dataclasses.replace(alert, id=1)
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
    eng.flush_pending()
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
    eng.flush_pending()
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
    caplog.set_level(logging.INFO, logger="gpufleet.agent.alerts")
    eng = engine(["gpu_temperature", "gpu_xid"], store, notified, hold_s=0.0)

    fired = eng.evaluate(snap(0, gpu(temp_c=84.0, xid_errors=(13,))))
    eng.evaluate(snap(2, gpu(temp_c=84.0)))
    eng.flush_pending()

    assert len(fired) == 2
    assert len(notified) == 3  # two fired, the XID one resolved
    assert all(a.id is None for a in notified)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "database is locked" in warnings[0].getMessage()
    error_while_down = eng.store_error
    assert error_while_down == "database is locked"
    assert eng.pending_saves == 2  # the temperature alert, and the XID one fired and resolved

    store.fail_with = None
    eng.evaluate(snap(4, gpu(temp_c=60.0)))
    eng.flush_pending()
    assert eng.store_error is None
    assert eng.pending_saves == 0
    # Nothing is lost: the XID alert is saved once, complete with its resolution, and the
    # temperature alert is saved and then resolved under the id the store gave it.
    assert [(a.rule, a.id, a.resolved_s) for a in store.saved] == [
        ("gpu_temperature", 1, None),
        ("gpu_xid", 2, 2),
        ("gpu_temperature", 1, 4),
    ]
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_a_resolution_that_fails_to_save_is_retried_not_lost() -> None:
    store = FakeAlertStore()
    eng = engine(["gpu_temperature"], store, hold_s=0.0)
    eng.evaluate(snap(0, gpu(temp_c=84.0)))
    eng.flush_pending()
    store.fail_with = StoreUnavailable("database is locked")
    resolved = eng.evaluate(snap(2, gpu(temp_c=60.0)))
    assert [(a.id, a.resolved_s) for a in resolved] == [(1, 2)]
    eng.flush_pending()
    eng.flush_pending()
    assert [a.resolved_s for a in store.saved] == [None]

    store.fail_with = None
    eng.flush_pending()
    assert [(a.id, a.resolved_s) for a in store.saved] == [(1, None), (1, 2)]
    assert eng.pending_saves == 0


def test_an_alert_the_store_rejects_is_dropped_not_retried_forever(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeAlertStore()
    eng = engine(["gpu_temperature"], store, hold_s=0.0)
    eng.evaluate(snap(0, gpu(temp_c=84.0)))
    store.fail_with = StoreError("value out of range")
    with caplog.at_level(logging.WARNING, logger="gpufleet.agent.alerts"):
        eng.flush_pending()
    assert eng.pending_saves == 0
    assert sum("value out of range" in r.getMessage() for r in caplog.records) == 1


def test_evaluation_never_waits_on_a_blocked_store() -> None:
    store = FakeAlertStore()
    store.block = threading.Event()
    notified: list[Alert] = []
    eng = engine(["gpu_temperature", "gpu_xid"], store, notified, background=True, hold_s=0.0)
    try:
        started = time.monotonic()
        fired = eng.evaluate(snap(0, gpu(temp_c=84.0, xid_errors=(79,))))
        resolved = eng.evaluate(snap(2, gpu(temp_c=84.0)))
        assert [a.rule for a in eng.active()] == ["gpu_temperature"]
        assert time.monotonic() - started < 1.0  # the store blocks for up to 10 s
        assert (len(fired), len(resolved)) == (2, 1)
        assert store.saved == []
    finally:
        store.block.set()
    assert eng.flush_pending(timeout=5.0)
    assert [(a.rule, a.resolved_s) for a in store.saved] == [
        ("gpu_temperature", None),
        ("gpu_xid", None),
        ("gpu_xid", 2),
    ]
    assert store.save_threads
    assert set(store.save_threads) == {"gpufleet-alerts"}
    assert len(notified) == 3
    assert [a.id for a in eng.active()] == [1]


def test_close_saves_what_is_queued_and_stops_the_thread() -> None:
    store = FakeAlertStore()
    eng = engine(["gpu_lost"], store, background=True)
    eng.evaluate(snap(0, gpu(lost=True)))
    eng.close(timeout=5.0)
    assert [a.rule for a in store.saved] == ["gpu_lost"]
    assert not any(t.name == "gpufleet-alerts" for t in threading.enumerate())


# -- restart -----------------------------------------------------------------------------------


def test_alerts_left_active_by_a_previous_run_resolve_after_a_restart() -> None:
    store = FakeAlertStore()
    first = engine(["gpu_temperature", "gpu_xid"], store, hold_s=0.0)
    first.evaluate(snap(0, gpu(temp_c=84.0, xid_errors=(79,))))
    first.evaluate(snap(0, gpu(temp_c=84.0, xid_errors=(79,)), node="node-2"))
    first.flush_pending()
    assert len(store.saved) == 4  # two alerts on each node, none resolved: the agent died

    restarted = engine(["gpu_temperature", "gpu_xid"], store, hold_s=0.0, node="node-1")
    assert [(a.rule, a.node, a.id) for a in restarted.active()] == [
        ("gpu_temperature", "node-1", 1),
        ("gpu_xid", "node-1", 2),
    ]
    # Still hot: the temperature alert stays active (no duplicate); the XID event is over.
    changes = restarted.evaluate(snap(100, gpu(temp_c=84.0)))
    assert [(a.rule, a.id, a.resolved_s) for a in changes] == [("gpu_xid", 2, 100)]
    assert [a.id for a in restarted.active()] == [1]
    changes = restarted.evaluate(snap(102, gpu(temp_c=60.0)))
    assert [(a.rule, a.id, a.resolved_s) for a in changes] == [("gpu_temperature", 1, 102)]
    restarted.flush_pending()
    assert [(a.id, a.resolved_s) for a in store.saved[4:]] == [(2, 100), (1, 102)]
    assert [a.node for a in store.alerts(active_only=True)] == ["node-2", "node-2"]


def test_restored_alerts_are_filtered_by_cluster_and_taken_over_per_node() -> None:
    store = FakeAlertStore()
    first = engine(["gpu_lost"], store)
    first.evaluate(snap(0, gpu(lost=True)))
    first.evaluate(snap(0, gpu(lost=True), node="node-2"))
    first.evaluate(Snapshot(0, "other-cluster", "node-3", (gpu(lost=True),), None, 2.0))
    first.flush_pending()
    assert len(store.saved) == 3

    # A hub-style engine (no node): restored alerts wait for their node's first snapshot.
    hub = engine(["gpu_lost", "gpu_temperature"], store, cluster="lab")
    assert hub.active() == []
    assert hub.evaluate(snap(10, gpu(lost=True))) == []  # still lost: taken over, no duplicate
    assert [(a.node, a.cluster, a.id) for a in hub.active()] == [("node-1", "lab", 1)]
    # node-2's alert resolves on node-2's first snapshot; node-3 is another cluster's.
    assert [(a.node, a.id, a.resolved_s) for a in hub.evaluate(snap(11, gpu(), node="node-2"))] == [
        ("node-2", 2, 11)
    ]
    assert hub.evaluate(snap(11, gpu(lost=True), node="node-3")) != []
    assert [a.resolved_s for a in hub.evaluate(snap(12, gpu()))] == [12]


def test_restored_alert_of_a_rule_that_no_longer_runs_is_resolved() -> None:
    store = FakeAlertStore()
    first = engine(["host_cpu"], store, hold_s=0.0)
    first.evaluate(snap(0, system=host(cpu_pct=99.0)))
    first.flush_pending()
    restarted = engine(["gpu_temperature"], store, node="node-1")
    changes = restarted.evaluate(snap(50, gpu()))
    assert [(a.rule, a.id, a.resolved_s) for a in changes] == [("host_cpu", 1, 50)]
    assert restarted.active() == []


def test_restore_is_retried_before_any_save_when_the_store_is_down() -> None:
    store = FakeAlertStore()
    first = engine(["gpu_lost"], store)
    first.evaluate(snap(0, gpu(lost=True)))
    first.flush_pending()

    store.fail_with = StoreUnavailable("database is down")
    restarted = engine(["gpu_lost"], store)
    assert restarted.store_error == "database is down"
    # A new alert on another GPU while the old ones are unknown; nothing is saved yet.
    other = gpu(uuid="GPU-2", lost=True)
    restarted.evaluate(snap(10, gpu(lost=True), other))
    restarted.flush_pending()
    assert len(store.saved) == 1

    store.fail_with = None
    restarted.flush_pending()
    # The restored alert for GPU UUID is superseded by the one fired meanwhile.
    changes = restarted.evaluate(snap(12, gpu(lost=True), other))
    assert [(a.subject, a.id, a.resolved_s) for a in changes] == [(UUID, 1, 12)]
    restarted.flush_pending()
    assert {a.subject for a in store.alerts(active_only=True)} == {UUID, "GPU-2"}
    assert len(restarted.active()) == 2


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
        eng.evaluate(snap(4, gpu(error="GPU is lost")))
        eng.close()

    assert [a.rule for a in first] == ["gpu_lost"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("rule bug" in m for m in messages) == 1
    assert sum("receiver down" in m for m in messages) == 1
    assert all(r.exc_info for r in caplog.records)


def test_a_recurring_rule_failure_logs_once_even_after_many_distinct_ones(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = iter([f"fault {i}" for i in range(150)] + ["same fault"] * 5)

    class FlakyRule:
        name = "flaky"
        immediate = True
        hold_s = 0.0

        def __init__(self, settings: AlertSettings, idle: float) -> None:
            pass

        def check(self, snapshot: Snapshot) -> Evaluation:
            raise RuntimeError(next(failures))

    monkeypatch.setitem(alert_rules.RULES, "flaky", FlakyRule)
    eng = engine(["flaky"])
    with caplog.at_level(logging.ERROR, logger="gpufleet.agent.alerts"):
        for ts in range(155):
            eng.evaluate(snap(ts, gpu()))
    assert sum("same fault" in r.getMessage() for r in caplog.records) == 1


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


def test_ecc_increase_fires_immediately_and_every_new_increase_fires_again() -> None:
    eng = engine(["gpu_ecc_errors"], hold_s=600.0, cooldown_s=900.0)
    # The first reading is only a baseline: errors from before the agent started are old news.
    assert eng.evaluate(snap(0, gpu(ecc_uncorrected_total=3))) == []
    assert eng.evaluate(snap(2, gpu(ecc_uncorrected_total=3))) == []
    fired = eng.evaluate(snap(4, gpu(ecc_uncorrected_total=5)))
    assert [(a.severity, a.value, a.fired_s) for a in fired] == [("critical", 2.0, 4)]
    assert "2 new uncorrected ECC errors since the last sample (5 in total)" in fired[0].message
    resolved = eng.evaluate(snap(6, gpu(ecc_uncorrected_total=5)))
    assert [a.resolved_s for a in resolved] == [6]
    # New errors well within the cooldown are a new event: never suppressed.
    again = eng.evaluate(snap(10, gpu(ecc_uncorrected_total=6)))
    assert [(a.value, a.fired_s, a.resolved_s) for a in again] == [(1.0, 10, None)]
    # And on the very next sample: the previous alert is closed, a new one fires.
    third = eng.evaluate(snap(12, gpu(ecc_uncorrected_total=9)))
    assert [(a.value, a.fired_s, a.resolved_s) for a in third] == [(1.0, 10, 12), (3.0, 12, None)]
    assert [a.fired_s for a in eng.active()] == [12]


def test_a_second_xid_within_the_cooldown_is_not_lost() -> None:
    notified: list[Alert] = []
    eng = engine(["gpu_xid"], None, notified, cooldown_s=900.0)
    assert [a.severity for a in eng.evaluate(snap(0, gpu(xid_errors=(13,))))] == ["warning"]
    assert [a.resolved_s for a in eng.evaluate(snap(2, gpu()))] == [2]
    fired = eng.evaluate(snap(10, gpu(xid_errors=(79,))))
    assert [(a.severity, a.value, a.fired_s) for a in fired] == [("critical", 79.0, 10)]
    assert "fallen off the bus" in fired[0].message
    eng.flush_pending()
    assert [(a.value, a.resolved_s) for a in notified] == [(13.0, None), (13.0, 2), (79.0, None)]


def test_xid_on_consecutive_samples_fires_each_new_code() -> None:
    eng = engine(["gpu_xid"])
    eng.evaluate(snap(0, gpu(xid_errors=(13,))))
    changes = eng.evaluate(snap(2, gpu(xid_errors=(31,))))
    assert [(a.value, a.fired_s, a.resolved_s) for a in changes] == [
        (13.0, 0, 2),
        (31.0, 2, None),
    ]
    assert "XID error 31 (GPU memory page fault" in changes[1].message


def test_a_burst_of_the_same_xid_is_folded_but_critical_codes_always_fire() -> None:
    eng = engine(["gpu_xid"], cooldown_s=900.0)
    eng.evaluate(snap(0, gpu(xid_errors=(13,))))
    eng.evaluate(snap(2, gpu()))
    assert eng.evaluate(snap(10, gpu(xid_errors=(13,)))) == []  # the same fault, again
    mixed = eng.evaluate(snap(20, gpu(xid_errors=(13, 31))))
    assert [a.value for a in mixed] == [31.0]
    assert "XID error 31" in mixed[0].message
    assert "13" not in mixed[0].message.split("reported")[1]
    eng.evaluate(snap(22, gpu()))
    later = eng.evaluate(snap(70, gpu(xid_errors=(13,))))  # past the repeat window
    assert [a.value for a in later] == [13.0]

    eng.evaluate(snap(72, gpu(xid_errors=(79,))))
    eng.evaluate(snap(74, gpu()))
    again = eng.evaluate(snap(76, gpu(xid_errors=(79,))))
    assert [(a.severity, a.fired_s) for a in again] == [("critical", 76)]


def test_a_gpu_lost_again_within_the_cooldown_fires_again() -> None:
    eng = engine(["gpu_lost"], cooldown_s=900.0)
    assert len(eng.evaluate(snap(0, gpu(lost=True)))) == 1
    assert eng.evaluate(snap(2, gpu(lost=True))) == []  # a lasting state: one alert
    assert [a.resolved_s for a in eng.evaluate(snap(4, gpu()))] == [4]
    assert [a.fired_s for a in eng.evaluate(snap(6, gpu(lost=True)))] == [6]


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
