"""Import long-format CSV traces (one row per entity per timestamp) into a store.

How rows become history:

* Rows are grouped by timestamp into :class:`~gpufleet.model.Snapshot` records, one per
  (timestamp, node, interval). The metric (``gpu_util_pct`` or ``gpu_mem_used_bytes``) sets
  one reading of each sample; every other reading is None (unknown, never 0).
* ``entity_kind="gpu"``: each entity is a GPU, its UUID the entity id, its index its
  position among its node's entities sorted by id (deterministic across runs).
* ``entity_kind="workload"``: each entity (a pod, job, ...) holds a GPU of its own: a
  synthetic GPU ``workload-<id>`` carrying one compute process attributed to namespace
  (``namespace`` or ``unknown``) / user ``unknown`` / workload ``<id>``, so allocation and
  idle-allocated analysis see it as allocated while it reports.
* ``entity_kind="node"``: each entity is a node whose GPUs were aggregated by the trace; it
  becomes one pseudo-GPU ``node-<id>`` (index 0) on node ``<id>``. Utilization is then the
  node's mean, memory the node's total; GPU counts of such a store count nodes.
* Node: the ``node_col`` column when given, else the entity itself for ``node``, else
  ``cluster``.
* ``gpu_model`` (e.g. ``NVIDIA A100-SXM4-80GB``) is every sample's ``name``, so the
  inventory knows the model and waste and savings are priced by it; without it the model is
  unknown and priced at the fallback.
* ``interval_s`` of an entity's samples is the median spacing of its timestamps, so
  time-weighted means and GPU-hours are right for 15 s and 5 min traces alike (gaps in a
  trace do not stretch samples). An entity with a single row gets the median of the other
  entities' intervals (60 s when there are none).

Order: each entity's rows must go forward in time within the call (files are read in the
order given, tar members in archive order). That is how public traces come (sorted by time,
or by entity then time); a global sort is not needed. A row at or before its entity's
previous time is rejected (``duplicate`` / ``out_of_order``) and reported, and so is a row
timed more than 5 minutes after the import started (``future_time``). Rows are read
twice: a first pass validates them and measures each entity's spacing, the second writes.
Within the second pass each batch of ``batch_rows`` rows is sorted by time and written as
one transaction, so a batch is the bounded reordering window; writes of time-sorted input
go forward in time. The store merges rollups per bucket, so results do not depend on the
order of batches.

Snapshots older than the store's raw retention are written with ``keep_raw=False`` (only
rollups), since retention would delete those raw rows at once.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

from gpufleet.model import GpuProcess, GpuSample, Snapshot
from gpufleet.store.base import Store
from gpufleet.store.importers.batching import SnapshotWriter
from gpufleet.store.importers.csv_scan import (
    CsvSpec,
    EntityInfo,
    EntityKind,
    Metric,
    Row,
    Scan,
)
from gpufleet.store.importers.csv_source import (
    READ_ERRORS,
    CsvSource,
    TimeReader,
    column_positions,
    open_sources,
    read_failed,
    snippet,
)
from gpufleet.store.importers.report import (
    ImportFailedError,
    ImportInterruptedError,
    ImportReport,
    Progress,
    RejectTally,
)

_PROGRESS_EVERY = 50_000

FUTURE_ALLOWANCE_S = 300.0
"""Rows timed more than this after the import started are rejected (clock skew allowed)."""

FUTURE_REASON = "future_time"
"""Rejection reason of rows timed after now plus :data:`FUTURE_ALLOWANCE_S`."""


@dataclass
class _Counts:
    read: int = 0
    sources: list[str] = field(default_factory=list)


def import_csv(
    store: Store,
    paths: Sequence[Path],
    *,
    metric: Metric,
    time_col: str,
    value_col: str,
    entity_col: str,
    entity_kind: EntityKind = "gpu",
    namespace: str | None = None,
    cluster: str = "imported",
    progress: Progress | None = None,
    batch_rows: int = 50_000,
    node_col: str | None = None,
    value_scale: float = 1.0,
    gpu_model: str | None = None,
    clock: Callable[[], float] = time.time,
) -> ImportReport:
    """Import long-format CSV files into ``store`` (see the module docstring for the mapping).

    Args:
        store: Where the snapshots go.
        paths: ``.csv``, ``.csv.gz`` or ``.tar.gz`` / ``.tgz`` / ``.tar`` files (every
            ``.csv`` / ``.csv.gz`` member is read, streamed, in archive order).
        metric: Which reading the value column holds.
        time_col: Column of epoch seconds / milliseconds (told apart by magnitude) or ISO
            8601 times (naive means UTC).
        value_col: Column of the reading, in percent or bytes (after ``value_scale``).
        entity_col: Column naming the GPU, workload or node of the row.
        entity_kind: What the entity column names.
        namespace: Namespace of imported workloads (``unknown`` when None).
        cluster: Cluster the snapshots belong to; also the node when nothing names one.
        progress: Called with ``(rows, None)`` while the first pass reads, then
            ``(rows, total_rows)`` after each written batch.
        batch_rows: Rows per store transaction (and per time-sorting window).
        node_col: Optional column naming the node of each row.
        value_scale: Factor applied to each value (100 for utilization given as 0..1
            fractions, 1048576 for memory in MiB).
        gpu_model: GPU model of every imported GPU (e.g. ``NVIDIA A100-SXM4-80GB``), stored
            as the samples' ``name``: the inventory's model, by which prices are looked up.
            None leaves it unknown (priced at the fallback).
        clock: Current epoch seconds (to compare rows with the store's raw retention, and
            to reject rows more than :data:`FUTURE_ALLOWANCE_S` in the future).

    Returns:
        What was read, imported and rejected (by reason, with file and line examples).

    Raises:
        ImportFailedError: no file, an unreadable file, a missing column (the message
            lists the columns the file has), or bad arguments.
        ImportInterruptedError: Ctrl-C; ``.report`` says what whole batches were written.
    """
    if batch_rows < 1:
        raise ImportFailedError(f"batch_rows must be at least 1, not {batch_rows}")
    if not (math.isfinite(value_scale) and value_scale > 0):
        raise ImportFailedError(f"value_scale must be a positive number, not {value_scale}")
    started = time.perf_counter()
    now_s = clock()
    spec = CsvSpec(
        paths=tuple(Path(p) for p in paths),
        wanted={"time": time_col, "value": value_col, "entity": entity_col, "node": node_col},
        metric=metric,
        entity_kind=entity_kind,
        cluster=cluster,
        value_scale=value_scale,
        gpu_model=gpu_model,
        latest_s=now_s + FUTURE_ALLOWANCE_S,
    )
    tally = RejectTally()
    scan = Scan()
    counts = _Counts()  # the first pass: every row is read and judged there
    writer = _Writer(store, spec, now_s=now_s)

    def report(completed: bool) -> ImportReport:
        elapsed = time.perf_counter() - started
        return ImportReport(
            rows_read=counts.read,
            rows_imported=writer.samples,
            rows_rejected=tally.total,
            rejections=tally.freeze(),
            entities=len(scan.first_node),
            first_ts_s=scan.first_ts,
            last_ts_s=scan.last_ts,
            samples_written=writer.samples,
            snapshots_written=writer.snapshots,
            elapsed_s=elapsed,
            rows_per_s=counts.read / elapsed if elapsed > 0 else 0.0,
            sources=tuple(counts.sources),
            warnings=tuple(scan.warnings(spec, store, clock(), tally.total)),
            completed=completed,
        )

    try:
        for row in _accepted_rows(spec, tally, counts):
            scan.add(row)
            if progress is not None and counts.read % _PROGRESS_EVERY == 0:
                progress(counts.read, None)
        writer.entities = scan.entities(spec, namespace)
        # The second pass re-reads the same rows; its rejections were tallied in the first.
        again = _Counts()
        batch: list[Row] = []
        for row in _accepted_rows(spec, None, again):
            batch.append(row)
            if len(batch) >= batch_rows:
                writer.write_rows(batch)
                batch = []
                if progress is not None:
                    progress(again.read, counts.read)
        writer.write_rows(batch)
        if progress is not None:
            progress(again.read, counts.read)
    except KeyboardInterrupt:
        raise ImportInterruptedError(report(completed=False)) from None
    return report(completed=True)


def _accepted_rows(spec: CsvSpec, tally: RejectTally | None, counts: _Counts) -> Iterator[Row]:
    """Yield each valid row of every source, in file order; tally the others."""
    util = spec.metric == "gpu_util_pct"
    scale = spec.value_scale
    latest = spec.latest_s
    last_ts: dict[str, float] = {}
    skipped: list[str] = []
    for source in open_sources(spec.paths, skipped):
        pos = column_positions(source, spec.wanted)
        t_i, v_i, e_i, n_i = pos["time"], pos["value"], pos["entity"], pos["node"]
        # column_positions gives every required role a position; only "node" is optional.
        assert t_i is not None
        assert v_i is not None
        assert e_i is not None
        width = max(p for p in pos.values() if p is not None) + 1
        read_time = TimeReader()
        counts.sources.append(source.name)
        rows = source.rows

        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except READ_ERRORS as exc:
                raise read_failed(source.name, exc) from exc
            except csv.Error as exc:
                counts.read += 1
                _reject(tally, source, "unreadable", str(exc), [])
                continue
            if not row:
                continue  # a blank line is no row
            counts.read += 1
            if len(row) < width:
                _reject(tally, source, "short_row", f"{len(row)} cells, {width} needed", row)
                continue
            entity = row[e_i].strip()
            if not entity:
                _reject(tally, source, "missing_entity", "empty entity cell", row)
                continue
            ts = read_time(row[t_i])
            if ts is None:
                _reject(tally, source, "bad_time", f"cannot read time {row[t_i]!r}", row)
                continue
            if ts > latest:
                ahead = ts - (latest - FUTURE_ALLOWANCE_S)
                _reject(
                    tally,
                    source,
                    FUTURE_REASON,
                    f"time {row[t_i]!r} is {_ahead(ahead)} after the import started",
                    row,
                )
                continue
            text = row[v_i]
            try:
                value = float(text) * scale
            except ValueError:
                reason = "missing_value" if not text.strip() else "bad_value"
                _reject(tally, source, reason, f"cannot read value {text!r}", row)
                continue
            if math.isnan(value):  # NaN: the trace's own "no reading"
                _reject(tally, source, "missing_value", "value is NaN", row)
                continue
            if not (0.0 <= value <= 100.0 if util else 0.0 <= value < math.inf):
                _reject(
                    tally, source, "out_of_range", f"value {value:g} outside {_range(util)}", row
                )
                continue
            previous = last_ts.get(entity)
            if previous is not None and ts <= previous:
                reason = "duplicate" if ts == previous else "out_of_order"
                _reject(tally, source, reason, f"{entity} already has a row at {previous:.3f}", row)
                continue
            last_ts[entity] = ts
            if spec.entity_kind == "node":
                node = entity
            elif n_i is not None:
                node = row[n_i].strip() or spec.cluster
            else:
                node = spec.cluster
            yield ts, entity, node, value
    if tally is not None and skipped:
        counts.sources.extend(f"{s} (skipped: not CSV)" for s in skipped)


def _reject(
    tally: RejectTally | None, source: CsvSource, reason: str, detail: str, row: list[str]
) -> None:
    if tally is not None:
        tally.add(reason, source.name, source.line, f"{detail}: {snippet(row)}")


def _ahead(seconds: float) -> str:
    """``seconds`` in the largest unit that keeps it readable (min, h or days)."""
    if seconds < 3600.0:
        return f"{seconds / 60.0:.0f} min"
    if seconds < 86_400.0:
        return f"{seconds / 3600.0:.1f} h"
    return f"{seconds / 86_400.0:,.1f} days"


def _range(util: bool) -> str:
    return "0..100 %" if util else "0..inf bytes"


class _Writer(SnapshotWriter):
    """Turns batches of rows into snapshots and writes them, counting what was written.

    One imported row is one GPU sample, so ``samples`` is also the rows imported.
    """

    def __init__(self, store: Store, spec: CsvSpec, *, now_s: float) -> None:
        super().__init__(store, now_s=now_s)
        self.spec = spec
        self.entities: dict[str, EntityInfo] = {}

    def write_rows(self, batch: list[Row]) -> None:
        """Write ``batch`` sorted by time; older-than-raw-retention part without raw rows."""
        if not batch:
            return
        batch.sort(key=itemgetter(0))
        memory = self.spec.metric == "gpu_mem_used_bytes"
        groups: dict[tuple[float, str, float], list[GpuSample]] = {}
        for ts, entity, node, value in batch:
            info = self.entities[entity]
            groups.setdefault((ts, node, info.interval_s), []).append(
                _sample(info, entity, value, memory, self.spec.gpu_model)
            )
        snapshots = [
            Snapshot(ts, self.spec.cluster, node, tuple(gpus), None, interval)
            for (ts, node, interval), gpus in groups.items()
        ]
        self.write(snapshots)


def _sample(
    info: EntityInfo, entity: str, value: float, memory: bool, model: str | None
) -> GpuSample:
    mem = round(value) if memory else None
    util = None if memory else value
    processes: tuple[GpuProcess, ...] = ()
    if info.attribution is not None:
        # pid 0: a trace names workloads, not processes; the process only carries attribution.
        processes = (
            GpuProcess(pid=0, name=entity, used_memory_bytes=mem, attribution=info.attribution),
        )
    return GpuSample(
        uuid=info.uuid,
        index=info.index,
        name=model,
        util_gpu_pct=util,
        mem_used_bytes=mem,
        processes=processes,
    )
