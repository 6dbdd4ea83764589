"""The in-process resource manager (seed 004): watch a program from inside it."""

from __future__ import annotations

import csv
import ctypes
import json
import logging
import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from gpufleet import __version__
from gpufleet.resources.cooperative import CooperativeStrategy, Share
from gpufleet.resources.limits import (
    LIMIT_METRICS,
    LimitViolation,
    ResourceLimitExceeded,
    ResourceLimits,
)
from gpufleet.resources.metrics import METRIC_FIELDS, SCOPES, ResourceMetrics
from gpufleet.resources.reader import LocalReader, MetricsReader
from gpufleet.resources.strategies import (
    STRATEGIES,
    AdaptiveStrategy,
    Check,
    DynamicStrategy,
    PredictiveStrategy,
    Strategy,
    fit_trend,
)
from gpufleet.resources.tracker import ViolationTracker
from gpufleet.timeparse import iso

log = logging.getLogger("gpufleet.resources")
# A library logs only where the program set logging up (the violation handlers always hear).
log.addHandler(logging.NullHandler())

MetricsCallback = Callable[[ResourceMetrics], object]
ViolationHandler = Callable[[LimitViolation], object]
UsageHook = Callable[[], Mapping[str, float | None]]

# Violation reports kept for get_violations() and save_metrics().
MAX_VIOLATIONS = 1000


def make_strategy(name: str) -> Strategy:
    """The strategy called ``name``, with its documented defaults.

    Raises:
        ValueError: not one of :data:`~gpufleet.resources.strategies.STRATEGIES`.
    """
    if name == "dynamic":
        return DynamicStrategy()
    if name == "predictive":
        return PredictiveStrategy()
    if name == "adaptive":
        return AdaptiveStrategy()
    if name == "cooperative":
        return CooperativeStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


# UCUM units of the readings, for OpenTelemetry.
OTEL_UNITS = {
    "memory_used_mb": "MiBy",
    "memory_percent": "%",
    "cpu_percent": "%",
    "gpu_memory_mb": "MiBy",
    "gpu_utilization": "%",
    "power_watts": "W",
    "temperature_celsius": "Cel",
}


def _global_sdk_provider() -> bool:
    """True when the program set an OpenTelemetry SDK MeterProvider as the global one."""
    try:
        from opentelemetry import metrics  # noqa: PLC0415 - optional extra
        from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    except ImportError:
        return False
    return isinstance(metrics.get_meter_provider(), MeterProvider)


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> bool:
    """Have ``thread_id`` raise ``exc_type`` at its next bytecode (None cancels)."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else None
    )
    return int(done) == 1


class ResourceManager:
    """Watches this process (and its children), or the machine, against limits.

    A monitor thread takes a reading every ``monitoring_interval`` seconds (the adaptive
    strategy changes that), passes it to ``callback``, compares it with ``limits`` and tells
    the violation handlers what was exceeded, by how much and for how long. Use it as a
    context manager, or call :meth:`start_monitoring` and :meth:`stop_monitoring`.

    Args:
        limits: What to hold readings to; None watches without limits.
        strategy: ``dynamic``, ``predictive``, ``adaptive``, ``cooperative`` (see
            ``gpufleet.resources.strategies``), or a strategy object.
        callback: Called with every reading, on the monitor thread.
        monitoring_interval: Seconds between readings.
        scope: ``process`` (this process and its children) or ``machine``.
        pid: Watch another process instead of this one (process scope).
        include_children: Count the process's children (process scope).
        on_violation: A first violation handler (more with :meth:`add_violation_handler`).
        hard: Raise :class:`ResourceLimitExceeded` in the thread that started monitoring
            (or entered the ``with`` block) when a limit is exceeded. It arrives at that
            thread's next Python instruction, so code blocked in C (a sleep, a GPU kernel
            wait) sees it when the call returns.
        history_size: Readings kept for :meth:`get_metrics_history` and :meth:`save_metrics`.
        usage: Returns readings that replace the measured ones, e.g.
            ``lambda: {"gpu_memory_mb": torch.cuda.memory_allocated() / 2**20}`` for one
            component of a process sharing a cooperative budget with others.
        reader: Takes the readings instead of the local collectors (tests, remote sources).
        opentelemetry: Export the readings as OpenTelemetry gauges (see :meth:`instrument`):
            None (default) does so on start when the program has set an OpenTelemetry SDK
            ``MeterProvider`` as the global one; True always (it must be installed); False
            never.

    Raises:
        ValueError: a bad interval, scope, strategy or history size.
    """

    def __init__(
        self,
        limits: ResourceLimits | None = None,
        strategy: str | Strategy = "dynamic",
        callback: MetricsCallback | None = None,
        monitoring_interval: float = 1.0,
        *,
        scope: str = "process",
        pid: int | None = None,
        include_children: bool = True,
        on_violation: ViolationHandler | None = None,
        hard: bool = False,
        history_size: int = 3600,
        usage: UsageHook | None = None,
        reader: MetricsReader | None = None,
        opentelemetry: bool | None = None,
    ) -> None:
        if (
            isinstance(monitoring_interval, bool)
            or not isinstance(monitoring_interval, int | float)
            or not math.isfinite(monitoring_interval)
            or monitoring_interval <= 0
        ):
            raise ValueError(
                f"monitoring_interval must be a positive number of seconds, "
                f"not {monitoring_interval!r}"
            )
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        if limits is not None and not isinstance(limits, ResourceLimits):
            raise TypeError(
                f"limits must be a ResourceLimits, not {type(limits).__name__} "
                "(create_resource_manager takes the limits as keywords)"
            )
        if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid < 1):
            raise ValueError(f"pid must be a positive integer, not {pid!r}")
        if pid is not None and scope == "machine":
            raise ValueError("pid watches one process: use it with scope='process'")
        if strategy is None:
            raise ValueError("strategy must be a name (dynamic, predictive, adaptive, cooperative)")
        for label, fn in (("callback", callback), ("on_violation", on_violation)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{label} must be callable, not {type(fn).__name__}")
        self.limits = limits if limits is not None else ResourceLimits()
        self.strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
        self.callback = callback
        self.monitoring_interval = float(monitoring_interval)
        self.scope = scope
        self.hard = hard
        self._pid = pid
        self._include_children = include_children
        self._usage = usage
        self._reader = reader
        self._own_reader = reader is None
        self._handlers: list[ViolationHandler] = [on_violation] if on_violation else []
        self._history: deque[ResourceMetrics] = deque(maxlen=history_size)
        self._violations: deque[LimitViolation] = deque(maxlen=MAX_VIOLATIONS)
        self._tracker = ViolationTracker(
            sustain_s=self.limits.sustain_s, repeat_s=self.limits.repeat_s
        )
        self._interval_s = self.monitoring_interval
        self._read_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._target_thread: int | None = None
        self._armed = False
        self._raised: set[str] = set()
        self._pending: LimitViolation | None = None
        self._failed_callbacks: set[int] = set()
        self._started_s: float | None = None
        self._checks = 0
        self._opentelemetry = opentelemetry
        self._gauges: list[object] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> ResourceManager:
        self.start_monitoring()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_monitoring()
        self.close()

    @property
    def is_monitoring(self) -> bool:
        """True while the monitor thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start_monitoring(self) -> None:
        """Start the monitor thread (a second call while it runs does nothing).

        Raises:
            ProcessLookupError: the process to watch is not running.
        """
        if self.is_monitoring:
            return
        self._ensure_reader()
        if self._gauges is None and (
            self._opentelemetry or (self._opentelemetry is None and _global_sdk_provider())
        ):
            self.instrument()
        self._stop.clear()
        with self._state_lock:
            self._target_thread = threading.get_ident()
            self._armed = self.hard
        self._started_s = time.time()
        self._thread = threading.Thread(
            target=self._run, name="gpufleet-resource-monitor", daemon=True
        )
        self._thread.start()

    def stop_monitoring(self) -> None:
        """Stop the monitor thread and wait for it; a pending hard-mode raise is cancelled."""
        with self._state_lock:
            self._armed = False
            if self._target_thread == threading.get_ident() and self._pending is not None:
                _raise_in_thread(self._target_thread, None)
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._thread = None

    def close(self) -> None:
        """Stop monitoring, leave a cooperative budget and release NVML."""
        self.stop_monitoring()
        self.strategy.close()
        if self._reader is not None and self._own_reader:
            self._reader.close()
            self._reader = None

    # --- readings -------------------------------------------------------------------------

    def _ensure_reader(self) -> MetricsReader:
        if self._reader is None:
            self._reader = LocalReader(
                self.scope, pid=self._pid, include_children=self._include_children
            )
        return self._reader

    def _read(self) -> ResourceMetrics:
        """A new reading, kept in the history (call with ``_read_lock`` held)."""
        metrics = self._ensure_reader().read()
        if self._usage is not None:
            overrides = dict(self._usage())
            unknown = sorted(set(overrides) - set(METRIC_FIELDS))
            if unknown:
                raise ValueError(
                    f"usage() returned unknown readings {', '.join(unknown)}; "
                    f"choose from {', '.join(METRIC_FIELDS)}"
                )
            metrics = replace(metrics, **overrides)  # type: ignore[arg-type]
        self._history.append(metrics)
        return metrics

    def get_current_metrics(self) -> ResourceMetrics:
        """The latest reading: the monitor's when it is fresh, else one taken now.

        Raises:
            ProcessLookupError: the watched process has ended.
        """
        with self._read_lock:
            # Under the lock: a check that was reading when we were called has kept its
            # reading by now, and a second one right after it would have no CPU window.
            latest = self._history[-1] if self._history else None
            if (
                latest is not None
                and self.is_monitoring
                and time.time() - latest.timestamp_s <= 1.5 * self._interval_s
            ):
                return latest
            return self._read()

    def get_metrics_history(self) -> list[ResourceMetrics]:
        """Readings kept so far, oldest first."""
        return list(self._history)

    def get_violations(self) -> list[LimitViolation]:
        """Violation reports so far, oldest first (the last 1000)."""
        return list(self._violations)

    @property
    def interval_s(self) -> float:
        """Seconds until the next reading (the adaptive strategy moves it)."""
        return self._interval_s

    @property
    def shares(self) -> dict[str, Share]:
        """The cooperative strategy's current shares (empty for other strategies)."""
        return dict(getattr(self.strategy, "shares", {}))

    def headroom(self) -> dict[str, float]:
        """Limit -> how much more the latest reading may grow (negative when over)."""
        if not self._history:
            return {}
        latest = self._history[-1]
        out = {}
        for limit, threshold in self.limits.watched().items():
            value = latest.value(LIMIT_METRICS[limit][0])
            if value is not None:
                out[limit] = threshold - value
        return out

    def forecast(self, metric: str, seconds_ahead: float) -> float | None:
        """The straight-line trend of the recent readings of ``metric``, ``seconds_ahead`` on.

        Uses the last 20 readings, as the predictive strategy does; None with fewer than 2.
        """
        trend = fit_trend(list(self._history)[-20:], metric)
        return None if trend is None else trend.value_at(trend.at_s + seconds_ahead)

    def instrument(self, meter_provider: object | None = None) -> list[object]:
        """Export the monitor's readings as OpenTelemetry observable gauges.

        One gauge per reading, named ``gpufleet.resource.<field>`` (``memory_used_mb`` in
        ``MiBy``, percentages in ``%``, ``power_watts`` in ``W``, ``temperature_celsius`` in
        ``Cel``), with ``process.pid``, ``gpufleet.scope`` and ``host.name`` attributes. Each
        export reads the latest reading while monitoring runs; a reading that is None, or a
        manager that is not monitoring, gives no data point.

        Args:
            meter_provider: Where to register; None uses the global provider.

        Returns:
            The gauges (registered once: a second call returns the same ones).

        Raises:
            ImportError: opentelemetry-sdk is not installed (``pip install 'gpufleet[otel]'``).
        """
        if self._gauges is not None:
            return self._gauges
        try:
            from gpufleet.exporters.otlp_readings import (  # noqa: PLC0415 - optional extra
                register_resource_metrics,
                resource_meter,
            )

            meter = resource_meter(meter_provider)
        except ImportError as exc:
            raise ImportError(
                "OpenTelemetry export needs opentelemetry-sdk: pip install 'gpufleet[otel]'"
            ) from exc

        def read() -> dict[str, float | None]:
            if not self.is_monitoring or not self._history:
                return {}
            latest = self._history[-1]
            return {metric: latest.value(metric) for metric in METRIC_FIELDS}

        self._gauges = register_resource_metrics(
            meter,
            read,
            keys=METRIC_FIELDS,
            attributes={
                "process.pid": self._pid if self._pid is not None else os.getpid(),
                "gpufleet.scope": self.scope,
                "host.name": socket.gethostname(),
            },
            units=OTEL_UNITS,
            descriptions={m: f"seed 004's ResourceMetrics.{m}" for m in METRIC_FIELDS},
        )
        return self._gauges

    # --- handlers -------------------------------------------------------------------------

    def add_violation_handler(self, handler: ViolationHandler) -> ViolationHandler:
        """Call ``handler`` with every violation report; usable as a decorator."""
        if not callable(handler):
            raise TypeError(f"a violation handler must be callable, not {type(handler).__name__}")
        self._handlers.append(handler)
        return handler

    def remove_violation_handler(self, handler: ViolationHandler) -> None:
        """Stop calling ``handler``."""
        self._handlers.remove(handler)

    def check(self) -> None:
        """Raise the pending hard-mode violation now, for code that checks at points it chooses.

        Raises:
            ResourceLimitExceeded: a limit was exceeded since the last check.
        """
        with self._state_lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            raise ResourceLimitExceeded(pending)

    # --- the monitor ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                self.check_once()
            except ProcessLookupError as exc:
                log.warning("resource monitoring stopped: %s", exc)
                return
            except Exception:
                log.exception("resource monitoring: a check failed; trying again next interval")
            if self._stop.wait(self._interval_s):
                return

    def check_once(self) -> list[LimitViolation]:
        """Take one reading, apply the strategy and limits, tell callback and handlers.

        The monitor thread calls this every interval; tests and programs that run their own
        loop may call it directly.

        Returns:
            The violation reports this check produced.
        """
        with self._read_lock:
            metrics = self._read()
        self._checks += 1
        watched = self.limits.watched()
        advice = self.strategy.advise(
            Check(
                metrics=metrics,
                history=list(self._history)[-64:],
                limits=watched,
                interval_s=self._interval_s,
                base_interval_s=self.monitoring_interval,
            )
        )
        self._interval_s = advice.next_interval_s
        thresholds = {**watched, **advice.thresholds}
        reports = self._tracker.update(metrics, thresholds, advice.shared, advice.signals)
        if self.callback is not None:
            self._call(self.callback, metrics)
        for report in reports:
            self._violations.append(report)
            level = logging.INFO if report.kind == "recovered" else logging.WARNING
            log.log(level, "resource limit %s: %s", report.kind, report.message)
            for handler in list(self._handlers):
                self._call(handler, report)
            if report.kind == "recovered":
                self._raised.discard(report.limit)
            elif report.kind == "exceeded" and report.limit not in self._raised:
                self._raised.add(report.limit)
                self._hard_raise(report)
        return reports

    def _call(self, fn: Callable[[Any], object], arg: object) -> None:
        try:
            fn(arg)
        except Exception as exc:
            if id(fn) not in self._failed_callbacks:
                self._failed_callbacks.add(id(fn))
                log.exception(
                    "resource manager: %s raised %s (logged once; monitoring goes on)",
                    getattr(fn, "__name__", repr(fn)),
                    type(exc).__name__,
                )

    def _hard_raise(self, report: LimitViolation) -> None:
        if not self.hard:
            return
        with self._state_lock:
            self._pending = report
            if not self._armed or self._target_thread is None:
                return
            if self._target_thread == threading.get_ident():
                return  # check_once called from the monitored thread: check() raises it
            exc_type = type("ResourceLimitExceeded", (ResourceLimitExceeded,), {"pending": report})
            if _raise_in_thread(self._target_thread, exc_type):
                self._pending = None

    # --- saving ---------------------------------------------------------------------------

    def summary(self) -> dict[str, dict[str, float]]:
        """Per reading: min, mean, max and last over the kept history."""
        out: dict[str, dict[str, float]] = {}
        for metric in METRIC_FIELDS:
            values = [v for m in self._history if (v := m.value(metric)) is not None]
            if values:
                out[metric] = {
                    "min": min(values),
                    "mean": sum(values) / len(values),
                    "max": max(values),
                    "last": values[-1],
                }
        return out

    def save_metrics(self, path: str | os.PathLike[str]) -> Path:
        """Write the kept readings, violations and a summary to ``path``.

        JSON by default; a ``.csv`` path gets one row per reading instead. The file is
        written to a temporary name and renamed, so a reader never sees half a file.

        Returns:
            The path written.

        Raises:
            OSError: the file cannot be written (the message names it).
        """
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            if target.suffix.lower() == ".csv":
                self._write_csv(tmp)
            else:
                tmp.write_text(json.dumps(self._report(), indent=2) + "\n")
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OSError(exc.errno, f"cannot save metrics to {target}: {exc.strerror}") from exc
        return target

    def _report(self) -> dict[str, Any]:
        return {
            "gpufleet_version": __version__,
            "scope": self.scope,
            "pid": self._pid if self._pid is not None else os.getpid(),
            "strategy": self.strategy.name,
            "monitoring_interval_s": self.monitoring_interval,
            "limits": self.limits.to_dict(),
            "started_at": iso(self._started_s) if self._started_s else None,
            "saved_at": iso(time.time()),
            "checks": self._checks,
            "summary": self.summary(),
            "violations": [v.to_dict() for v in self._violations],
            "samples": [{"time": iso(m.timestamp_s), **m.to_dict()} for m in self._history],
        }

    def _write_csv(self, path: Path) -> None:
        columns = ["time", "timestamp_s", "scope", *METRIC_FIELDS, "gpu_count", "gpu_uuids"]
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for m in self._history:
                row = m.to_dict()
                writer.writerow(
                    [iso(m.timestamp_s), m.timestamp_s, m.scope]
                    + ["" if row[c] is None else row[c] for c in METRIC_FIELDS]
                    + [m.gpu_count, " ".join(m.gpu_uuids)]
                )
