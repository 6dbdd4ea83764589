"""Fill a store with a month of history of the simulated demo cluster.

``write_demo`` samples every node of the cluster laid out by ``build_demo_scenario`` (see
``demo_cluster``) once per ``interval_s``, exactly as live agents would have, and writes the
snapshots in one-hour batches. Each batch is one ``write_snapshots`` call, which the store
makes atomic, so Ctrl-C between batches leaves whole hours behind and nothing half written.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gpufleet.agent.demo_cluster import (
    CLUSTER,
    DEMO_TEAMS,
    DemoScenario,
    build_demo_scenario,
    node_names,
)
from gpufleet.agent.demo_truth import DiurnalLoad, GroundTruth, IdleHolder, TeamDrop
from gpufleet.collectors.sim import SimGpuSource, SimSystemSource
from gpufleet.collectors.sim_models import DEFAULT_MODEL
from gpufleet.model import Snapshot
from gpufleet.store.base import DAY_S, Retention

__all__ = [
    "CLUSTER",
    "DEMO_TEAMS",
    "DemoInterrupted",
    "DemoScenario",
    "DemoSummary",
    "DemoTarget",
    "DiurnalLoad",
    "GroundTruth",
    "IdleHolder",
    "TeamDrop",
    "build_demo_scenario",
    "demo_sources",
    "node_names",
    "write_demo",
]

log = logging.getLogger(__name__)

BATCH_S = 3600.0
"""History written per ``write_snapshots`` call."""


class DemoTarget(Protocol):
    """What ``write_demo`` needs of a store: every ``Store`` is one."""

    retention: Retention

    def write_snapshots(self, snapshots: Sequence[Snapshot], *, keep_raw: bool = True) -> None:
        """Write a batch atomically (see ``Store.write_snapshots``)."""
        ...


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What ``write_demo`` wrote, or got through before it was interrupted."""

    demo: DemoScenario
    """The cluster, its schedule and the planted findings (``demo.truth``)."""
    interval_s: float
    snapshots: int
    gpu_samples: int
    batches_written: int
    batches_total: int
    written_until_s: float | None
    """Timestamp of the newest snapshot written, None when nothing was."""
    generate_cpu_s: float
    """CPU seconds spent making samples, not counting the store."""
    store_s: float
    """Wall seconds spent in ``store.write_snapshots``."""
    elapsed_s: float

    @property
    def complete(self) -> bool:
        """Whether every batch was written."""
        return self.batches_written == self.batches_total

    @property
    def truth(self) -> GroundTruth:
        """The findings analysis of this history should make."""
        return self.demo.truth

    def describe(self) -> str:
        """What was written and what analysis should find in it, in a few lines of text."""
        demo = self.demo
        gpus = len(demo.nodes) * demo.gpus_per_node
        per_sample_us = 1e6 * self.generate_cpu_s / self.gpu_samples if self.gpu_samples else 0.0
        state = "wrote" if self.complete else "interrupted; wrote"
        lines = [
            f"{state} {self.batches_written} of {self.batches_total} hourly batches of "
            f"{demo.cluster} ({len(demo.nodes)} nodes x {demo.gpus_per_node} {demo.model}, "
            f"{_utc(demo.start_s)} to {_utc(demo.end_s)}): {self.snapshots:,} snapshots, "
            f"{self.gpu_samples:,} GPU samples",
            f"generated in {self.generate_cpu_s:.1f} s CPU ({per_sample_us:.1f} us per GPU "
            f"sample, {gpus} GPUs); the store took {self.store_s:.1f} s",
            "planted findings:",
        ]
        for h in self.truth.idle_holders:
            lines.append(
                f"  idle but holding memory: {h.namespace}/{h.user}/{h.workload} on {h.node} "
                f"GPU {','.join(map(str, h.gpu_indices))} ({h.mem_frac:.0%} of memory, "
                f"open since {_utc(h.start_s)})"
            )
        drop = self.truth.team_drop
        if drop is not None:
            lines.append(
                f"  {drop.namespace} GPU-hours fell {drop.drop_pct:.0f}% in the last 7 days "
                f"({drop.previous_gpu_hours:.0f} -> {drop.last_gpu_hours:.0f}): {drop.user} "
                f"ran {drop.previous_jobs} -> {drop.last_jobs} jobs"
            )
        d = self.truth.diurnal
        lines.append(
            f"  {d.namespace} inference ({', '.join(d.workloads)}) follows the day: peak "
            f"{d.peak_hour_utc:02.0f}:00 UTC, trough {d.trough_hour_utc:02.0f}:00 UTC"
        )
        return "\n".join(lines)


def _utc(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class DemoInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``write_demo``; ``summary`` says which whole batches were written.

    A ``KeyboardInterrupt``, so code that does not know it still stops as on any Ctrl-C.
    """

    def __init__(self, summary: DemoSummary) -> None:
        super().__init__(
            f"demo interrupted after {summary.batches_written} of "
            f"{summary.batches_total} batches ({summary.snapshots} snapshots written)"
        )
        self.summary = summary


def demo_sources(
    demo: DemoScenario,
) -> list[tuple[str, SimGpuSource, SimSystemSource]]:
    """(node, GPU source, host source) for every node of ``demo``."""
    out = []
    for pos, node in enumerate(demo.nodes):
        gpu = SimGpuSource(
            gpus=demo.gpus_per_node,
            model=demo.model,
            seed=demo.seed,
            node=node,
            scenario=demo.scenario,
        )
        # Nodes were rebooted on different days before the history starts.
        boot = math.floor(demo.start_s - (9.0 + 2.5 * pos) * DAY_S)
        out.append((node, gpu, SimSystemSource(gpu, boot_time_s=float(boot))))
    return out


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a batch.

    A batch is thousands of small acyclic records that reference counting frees; the
    collector would only rescan the schedule and caches on every few hundred of them,
    which costs about a tenth of the generation time.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _batches(steps: int, per_batch: int, first_raw_step: int) -> Iterator[tuple[int, int, bool]]:
    """(first step, end step, keep raw) per write; the raw-retention edge splits a batch."""
    for a in range(1, steps + 1, per_batch):
        b = min(a + per_batch, steps + 1)
        if a < first_raw_step < b:
            yield a, first_raw_step, False
            yield first_raw_step, b, True
        else:
            yield a, b, a >= first_raw_step


def write_demo(
    store: DemoTarget,
    *,
    days: float = 30,
    nodes: int = 4,
    gpus: int = 8,
    seed: int = 0,
    end_s: float | None = None,
    interval_s: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
    model: str = DEFAULT_MODEL,
) -> DemoSummary:
    """Write ``days`` of history of the demo cluster, ending at ``end_s`` (default: now).

    Snapshots are taken at ``start + k * interval_s`` for k = 1 .. days / interval, one per
    node, each with every GPU and the host. Raw rows are kept only for snapshots the store's
    raw retention still covers at ``end_s``. ``progress(done, total)`` is called after each
    batch is written.

    Raises:
        ValueError: a non-positive ``days`` or ``interval_s``, or a cluster too small for
            the demo (see ``build_demo_scenario``).
        DemoInterrupted: on Ctrl-C, after the batches before it were written whole.
        StoreUnavailable: the store stopped accepting writes.
    """
    if days <= 0 or interval_s <= 0:
        raise ValueError("days and interval_s must be positive")
    started = time.perf_counter()
    if end_s is None:
        end_s = math.floor(time.time() / interval_s) * interval_s
    steps = round(days * DAY_S / interval_s)
    if steps < 1:
        raise ValueError("days must cover at least one interval_s")
    start_s = end_s - steps * interval_s
    demo = build_demo_scenario(
        seed=seed, nodes=nodes, gpus_per_node=gpus, start_s=start_s, end_s=end_s, model=model
    )
    sources = demo_sources(demo)
    raw_from = end_s - store.retention.raw_s
    # First step whose snapshot raw retention still covers.
    first_raw = max(1, min(steps + 1, math.floor((raw_from - start_s) / interval_s) + 1))
    per_batch = max(1, round(BATCH_S / interval_s))
    plan = list(_batches(steps, per_batch, first_raw))
    cpu = store_s = 0.0
    written = snapshots = 0
    newest: float | None = None

    def summary() -> DemoSummary:
        return DemoSummary(
            demo=demo,
            interval_s=interval_s,
            snapshots=snapshots,
            gpu_samples=snapshots * gpus,
            batches_written=written,
            batches_total=len(plan),
            written_until_s=newest,
            generate_cpu_s=cpu,
            store_s=store_s,
            elapsed_s=time.perf_counter() - started,
        )

    try:
        for a, b, keep_raw in plan:
            t0 = time.process_time()
            with _collector_paused():
                times = [start_s + k * interval_s for k in range(a, b)]
                readings = [(node, gpu.sample_many(times), host) for node, gpu, host in sources]
                batch = [
                    Snapshot(
                        ts_s=ts,
                        cluster=demo.cluster,
                        node=node,
                        gpus=rows[j],
                        system=host.sample(ts),
                        interval_s=interval_s,
                    )
                    for j, ts in enumerate(times)
                    for node, rows, host in readings
                ]
            cpu += time.process_time() - t0
            t1 = time.perf_counter()
            store.write_snapshots(batch, keep_raw=keep_raw)
            store_s += time.perf_counter() - t1
            written += 1
            snapshots += len(batch)
            newest = batch[-1].ts_s
            if progress is not None:
                progress(written, len(plan))
    except KeyboardInterrupt as exc:
        done = summary()
        log.warning(
            "demo interrupted: %d of %d batches written (%d snapshots, up to %s)",
            done.batches_written,
            done.batches_total,
            done.snapshots,
            done.written_until_s,
        )
        raise DemoInterrupted(done) from exc
    return summary()
