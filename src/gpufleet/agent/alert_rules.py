"""The built-in alert rules: each looks at one snapshot and says which subjects are in trouble.

A rule only decides *whether* a condition holds and words the message; hold times, dedup,
cooldown, persistence and notification live in :mod:`gpufleet.agent.alerts`. Rules are picked
by name from :data:`RULES`, and every threshold comes from
:class:`~gpufleet.settings.AlertSettings`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from gpufleet.agent.alert_wording import (
    THROTTLE_ALERT_REASONS,
    XID_HINTS,
    format_bytes,
    format_duration,
    gpu_label,
    join_holders,
)
from gpufleet.model import GpuSample, Snapshot, SystemSample
from gpufleet.settings import AlertSettings

SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
"""Order of severities, so an active alert can be escalated but never silently downgraded."""

CRITICAL_XIDS = frozenset({48, 63, 64, 74, 79, 92, 94, 95})
"""XIDs that point at hardware or memory damage rather than an application fault."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One subject for which a rule's condition holds in the snapshot at hand.

    Attributes:
        event: the condition reports something that happened since the previous snapshot
            (an XID, new ECC errors) rather than a state that lasts: each one is a new
            alert, even while an alert for the previous event is still active.
    """

    subject: str
    severity: str
    message: str
    value: float | None
    threshold: float | None
    event: bool = False


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a rule concluded about one snapshot.

    Attributes:
        conditions: subjects whose condition holds now.
        skipped: subjects present in the snapshot that the rule could not judge (a lost GPU,
            a reading that went missing); their alert state is kept rather than resolved,
            because an unknown reading is not a healthy one.
    """

    conditions: list[Condition] = field(default_factory=list)
    skipped: frozenset[str] = frozenset()


@runtime_checkable
class AlertRule(Protocol):
    """A named check over a snapshot.

    Attributes:
        name: stable identifier, stored with every alert.
        immediate: fire on the first snapshot showing the condition, ignoring ``hold_s``.
            Immediate rules report hardware events and failures, so the cooldown does not
            apply to them either: a second failure is never hidden behind the first.
        hold_s: seconds a condition must last before it fires.
    """

    name: str
    immediate: bool
    hold_s: float

    def check(self, snapshot: Snapshot) -> Evaluation | None:
        """Judge ``snapshot``; None when the rule saw nothing to judge (no host reading)."""
        ...


RuleFactory = Callable[[AlertSettings, float], AlertRule]
"""Builds a rule from the alert settings and the idle threshold (percent)."""


# -- GPU rules ---------------------------------------------------------------------------------


class GpuRule(abc.ABC):
    """A rule judged per GPU; lost GPUs and GPUs missing the needed reading are skipped."""

    name: str = ""
    immediate: bool = False

    def __init__(self, settings: AlertSettings, idle_threshold_pct: float) -> None:
        self.settings = settings
        self.idle_threshold_pct = idle_threshold_pct
        self.hold_s = settings.hold_s

    def check(self, snapshot: Snapshot) -> Evaluation:
        """Run :meth:`check_gpu` on every GPU that can be judged."""
        conditions: list[Condition] = []
        skipped: set[str] = set()
        for gpu in snapshot.gpus:
            if gpu.lost or not self.can_judge(gpu):
                skipped.add(gpu.uuid)
                continue
            condition = self.check_gpu(snapshot, gpu)
            if condition is not None:
                conditions.append(condition)
        return Evaluation(conditions, frozenset(skipped))

    def can_judge(self, gpu: GpuSample) -> bool:
        """Whether ``gpu`` carries the readings this rule needs."""
        return True

    @abc.abstractmethod
    def check_gpu(self, snapshot: Snapshot, gpu: GpuSample) -> Condition | None:
        """The condition for one healthy GPU, or None when it is fine."""


class GpuTemperatureRule(GpuRule):
    """Hot GPU: within ``temp_margin_c`` of its slowdown temperature (critical at slowdown)."""

    name = "gpu_temperature"

    def can_judge(self, gpu: GpuSample) -> bool:
        return gpu.temp_c is not None

    def check_gpu(self, snapshot: Snapshot, gpu: GpuSample) -> Condition | None:
        temp = gpu.temp_c
        assert temp is not None  # guaranteed by can_judge
        slowdown = gpu.temp_slowdown_c
        label = gpu_label(gpu)
        if slowdown is None:
            threshold = self.settings.temp_fallback_c
            if temp < threshold:
                return None
            message = (
                f"{label} is at {temp:.0f} °C, at or above the {threshold:.0f} °C alert "
                "threshold (its slowdown temperature is unknown); check airflow and fans "
                "before it starts cutting its clocks."
            )
            return Condition(gpu.uuid, "warning", message, temp, threshold)
        threshold = slowdown - self.settings.temp_margin_c
        if temp < threshold:
            return None
        if temp >= slowdown:
            message = (
                f"{label} is at {temp:.0f} °C, at or above its slowdown temperature "
                f"{slowdown:.0f} °C, so its clocks are being cut; check airflow and fans "
                "or move load off it."
            )
            return Condition(gpu.uuid, "critical", message, temp, slowdown)
        message = (
            f"{label} is at {temp:.0f} °C, {slowdown - temp:.0f} °C below its slowdown "
            f"temperature {slowdown:.0f} °C; check airflow and fans before it throttles."
        )
        return Condition(gpu.uuid, "warning", message, temp, threshold)


class GpuMemoryFullRule(GpuRule):
    """GPU memory nearly full: new allocations are about to fail."""

    name = "gpu_memory_full"

    def can_judge(self, gpu: GpuSample) -> bool:
        return gpu.mem_used_pct is not None

    def check_gpu(self, snapshot: Snapshot, gpu: GpuSample) -> Condition | None:
        pct = gpu.mem_used_pct
        threshold = self.settings.gpu_mem_pct
        if pct is None or pct < threshold:
            return None
        used = format_bytes(gpu.mem_used_bytes or 0)
        total = format_bytes(gpu.mem_total_bytes or 0)
        message = (
            f"{gpu_label(gpu)} has {used} of {total} memory in use ({pct:.1f} %, threshold "
            f"{threshold:.0f} %); new allocations on it may fail with out-of-memory errors."
        )
        if gpu.processes:
            biggest = sorted(gpu.processes, key=lambda p: p.used_memory_bytes or 0, reverse=True)
            message += f" Held by {join_holders(biggest)}."
        return Condition(gpu.uuid, "warning", message, pct, threshold)


class GpuPowerLimitRule(GpuRule):
    """GPU at its power limit, or clocks throttled by power or heat."""

    name = "gpu_power_limit"

    def can_judge(self, gpu: GpuSample) -> bool:
        return gpu.power_pct is not None or gpu.throttle_reasons is not None

    def check_gpu(self, snapshot: Snapshot, gpu: GpuSample) -> Condition | None:
        pct = gpu.power_pct
        threshold = self.settings.power_pct
        reasons = [r for r in gpu.throttle_reasons or () if r in THROTTLE_ALERT_REASONS]
        at_limit = pct is not None and pct >= threshold
        if not at_limit and not reasons:
            return None
        parts: list[str] = []
        if at_limit and pct is not None:
            parts.append(
                f"draws {gpu.power_w:.0f} W, {pct:.1f} % of its {gpu.power_limit_w:.0f} W power "
                f"limit (threshold {threshold:.0f} %)"
            )
        if reasons:
            named = ", ".join(f"{r} ({THROTTLE_ALERT_REASONS[r]})" for r in reasons)
            parts.append(f"has its clocks throttled by {named}")
        message = (
            f"{gpu_label(gpu)} {' and '.join(parts)}; expect lower throughput until power draw "
            "or temperature drops (check the power limit, cooling and fans)."
        )
        return Condition(gpu.uuid, "warning", message, pct, threshold)


class GpuEccErrorsRule(GpuRule):
    """Uncorrected ECC errors appeared since the previous snapshot (fires immediately)."""

    name = "gpu_ecc_errors"
    immediate = True

    def __init__(self, settings: AlertSettings, idle_threshold_pct: float) -> None:
        super().__init__(settings, idle_threshold_pct)
        # Baselines per (node, uuid): the counter is cumulative, only its increase matters.
        self._last_total: dict[tuple[str, str], int] = {}

    def can_judge(self, gpu: GpuSample) -> bool:
        return gpu.ecc_uncorrected_total is not None

    def check_gpu(self, snapshot: Snapshot, gpu: GpuSample) -> Condition | None:
        total = gpu.ecc_uncorrected_total
        assert total is not None  # guaranteed by can_judge
        key = (snapshot.node, gpu.uuid)
        previous = self._last_total.get(key)
        self._last_total[key] = total
        if previous is None or total <= previous:
            return None
        new = total - previous
        message = (
            f"{gpu_label(gpu)} reported {new} new uncorrected ECC error"
            f"{'s' if new != 1 else ''} since the last sample ({total} in total); results of "
            "jobs on it may be corrupt: drain it and reset it, and replace it if errors recur."
        )
        return Condition(gpu.uuid, "critical", message, float(new), 0.0, event=True)


class GpuXidRule(GpuRule):
    """The driver reported XID errors for the GPU since the previous snapshot (immediate).

    Every report is a new event. Only a burst of the same non-critical code is folded: a
    code already reported for the GPU less than ``repeat_window_s`` ago is left out, and a
    report with nothing else in it raises no alert. Critical codes always fire.
    """

    name = "gpu_xid"
    immediate = True
    repeat_window_s = 60.0

    def __init__(self, settings: AlertSettings, idle_threshold_pct: float) -> None:
        super().__init__(settings, idle_threshold_pct)
        # When each code was last reported, per (node, uuid).
        self._reported_s: dict[tuple[str, str], dict[int, float]] = {}

    def check_gpu(self, snapshot: Snapshot, gpu: GpuSample) -> Condition | None:
        if not gpu.xid_errors:
            return None
        codes = self._new_codes(snapshot, gpu)
        if not codes:
            return None
        described = ", ".join(
            f"{code} ({XID_HINTS[code]})" if code in XID_HINTS else str(code) for code in codes
        )
        critical = any(code in CRITICAL_XIDS for code in codes)
        advice = (
            "drain the GPU and check `dmesg`; a reset or a reboot is likely needed."
            if critical
            else "check the failing job's logs and `dmesg`."
        )
        message = (
            f"{gpu_label(gpu)} reported XID error{'s' if len(codes) > 1 else ''} {described} "
            f"since the last sample; {advice}"
        )
        return Condition(
            gpu.uuid,
            "critical" if critical else "warning",
            message,
            float(codes[-1]),
            None,
            event=True,
        )

    def _new_codes(self, snapshot: Snapshot, gpu: GpuSample) -> list[int]:
        """The codes of ``gpu`` worth reporting now, remembering when each was reported."""
        now = snapshot.ts_s
        reported = self._reported_s.setdefault((snapshot.node, gpu.uuid), {})
        for code in [c for c, t in reported.items() if now - t >= self.repeat_window_s]:
            del reported[code]
        codes = sorted(c for c in set(gpu.xid_errors) if c in CRITICAL_XIDS or c not in reported)
        for code in codes:
            reported[code] = now
        return codes


class GpuLostRule:
    """The GPU stopped answering or fell off the bus (critical, immediate)."""

    name = "gpu_lost"
    immediate = True

    def __init__(self, settings: AlertSettings, idle_threshold_pct: float) -> None:
        self.hold_s = 0.0

    def check(self, snapshot: Snapshot) -> Evaluation:
        """Every GPU marked ``lost`` is a condition."""
        conditions = []
        for gpu in snapshot.gpus:
            if not gpu.lost:
                continue
            reason = f": {gpu.error}" if gpu.error else ""
            message = (
                f"{gpu_label(gpu)} on {snapshot.node} stopped answering{reason}; jobs on it have "
                "probably failed: check `dmesg` for XID 79, then reset the GPU or reboot the node."
            )
            conditions.append(Condition(gpu.uuid, "critical", message, None, None))
        return Evaluation(conditions)


class GpuIdleAllocatedRule(GpuRule):
    """A GPU held by processes but idle for ``idle_allocated_hold_s``: capacity others could use."""

    name = "gpu_idle_allocated"

    def __init__(self, settings: AlertSettings, idle_threshold_pct: float) -> None:
        super().__init__(settings, idle_threshold_pct)
        self.hold_s = settings.idle_allocated_hold_s

    def can_judge(self, gpu: GpuSample) -> bool:
        return gpu.util_gpu_pct is not None

    def check_gpu(self, snapshot: Snapshot, gpu: GpuSample) -> Condition | None:
        util = gpu.util_gpu_pct
        threshold = self.idle_threshold_pct
        if util is None or util >= threshold or not gpu.allocated:
            return None
        holders = [p for p in gpu.processes if p.kind == "compute"]
        held_bytes = gpu.mem_used_bytes
        if held_bytes is None:
            held_bytes = sum(p.used_memory_bytes or 0 for p in holders)
        message = (
            f"{gpu_label(gpu)} has been allocated but idle for at least "
            f"{format_duration(self.hold_s)} ({util:.0f} % utilization, below the "
            f"{threshold:.0f} % idle threshold) while holding {format_bytes(held_bytes)} of "
            f"memory; held by {join_holders(holders)}. Stop the idle job or release the GPU "
            "so others can use it."
        )
        return Condition(gpu.uuid, "warning", message, util, threshold)


# -- host rules --------------------------------------------------------------------------------


class HostRule(abc.ABC):
    """A rule on the host reading; it judges nothing when the snapshot has none."""

    name: str = ""
    immediate: bool = False

    def __init__(self, settings: AlertSettings, idle_threshold_pct: float) -> None:
        self.settings = settings
        self.hold_s = settings.hold_s

    def check(self, snapshot: Snapshot) -> Evaluation | None:
        """Run :meth:`check_host` when the snapshot carries a host reading."""
        if snapshot.system is None:
            return None
        return self.check_host(snapshot, snapshot.system)

    @abc.abstractmethod
    def check_host(self, snapshot: Snapshot, system: SystemSample) -> Evaluation:
        """Judge the host reading ``system`` of ``snapshot``."""


class HostCpuRule(HostRule):
    """Host CPU saturated: data loading and launch overheads starve the GPUs."""

    name = "host_cpu"

    def check_host(self, snapshot: Snapshot, system: SystemSample) -> Evaluation:
        """Condition on subject ``host`` when CPU use is at or above ``host_cpu_pct``."""
        if system.cpu_pct is None:
            return Evaluation(skipped=frozenset({"host"}))
        threshold = self.settings.host_cpu_pct
        if system.cpu_pct < threshold:
            return Evaluation()
        load = ""
        if system.load_1 is not None and system.cpu_count:
            load = f", load average {system.load_1:.1f} on {system.cpu_count} cores"
        message = (
            f"Host CPU on {snapshot.node} is at {system.cpu_pct:.0f} % (threshold "
            f"{threshold:.0f} %){load}; GPU jobs may be starved of input data, so look for "
            "runaway processes or reduce data-loader workers."
        )
        return Evaluation([Condition("host", "warning", message, system.cpu_pct, threshold)])


class HostMemoryRule(HostRule):
    """Host memory nearly full: the OOM killer is close."""

    name = "host_memory"

    def check_host(self, snapshot: Snapshot, system: SystemSample) -> Evaluation:
        """Condition on subject ``host`` when memory use is at or above ``host_mem_pct``."""
        threshold = self.settings.host_mem_pct
        if system.mem_pct < threshold:
            return Evaluation()
        message = (
            f"Host memory on {snapshot.node} is {system.mem_pct:.0f} % used "
            f"({format_bytes(system.mem_used_bytes)} of {format_bytes(system.mem_total_bytes)}, "
            f"threshold {threshold:.0f} %); processes may be killed by the OOM killer, so stop "
            "or shrink memory-hungry jobs."
        )
        return Evaluation([Condition("host", "warning", message, system.mem_pct, threshold)])


class HostDiskRule(HostRule):
    """A filesystem nearly full, one alert per mount (subject ``host:/mount``)."""

    name = "host_disk"

    def check_host(self, snapshot: Snapshot, system: SystemSample) -> Evaluation:
        """One condition per mount at or above ``host_disk_pct``."""
        threshold = self.settings.host_disk_pct
        conditions = []
        for disk in system.disks:
            if disk.used_pct < threshold:
                continue
            message = (
                f"Filesystem {disk.mount} on {snapshot.node} is {disk.used_pct:.0f} % full "
                f"({format_bytes(disk.free_bytes)} free of {format_bytes(disk.total_bytes)}, "
                f"threshold {threshold:.0f} %); free space there before checkpoints and logs "
                "fail to write."
            )
            conditions.append(
                Condition(f"host:{disk.mount}", "warning", message, disk.used_pct, threshold)
            )
        return Evaluation(conditions)


RULES: dict[str, RuleFactory] = {
    "gpu_temperature": GpuTemperatureRule,
    "gpu_memory_full": GpuMemoryFullRule,
    "gpu_power_limit": GpuPowerLimitRule,
    "gpu_ecc_errors": GpuEccErrorsRule,
    "gpu_xid": GpuXidRule,
    "gpu_lost": GpuLostRule,
    "gpu_idle_allocated": GpuIdleAllocatedRule,
    "host_cpu": HostCpuRule,
    "host_memory": HostMemoryRule,
    "host_disk": HostDiskRule,
}
"""Every built-in rule by name; :func:`build_rules` picks from here."""


def build_rules(
    settings: AlertSettings, idle_threshold_pct: float, names: Iterable[str] | None = None
) -> list[AlertRule]:
    """Instantiate the rules called ``names`` (all of them when None), in registry order.

    Raises:
        ValueError: a name is not a known rule; the message lists the known ones.
    """
    wanted = list(RULES) if names is None else list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in RULES]
    if unknown:
        raise ValueError(
            f"unknown alert rule(s) {', '.join(unknown)}; known rules: {', '.join(RULES)}"
        )
    return [RULES[name](settings, idle_threshold_pct) for name in wanted]
