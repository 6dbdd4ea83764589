"""What an import did: the report every importer returns, and the errors it raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Progress = Callable[[int, int | None], None]
"""``progress(done, total)``: rows (or points) handled so far, and the total when known."""

MAX_EXAMPLES = 20
"""Rejected rows kept as examples per reason; the rest are only counted."""


class ImportFailedError(Exception):
    """An import could not run at all; the message says what to fix.

    Raised before anything is written (a missing column, an unreadable file, Prometheus
    unreachable or answering with an error), or part-way when the source fails mid-read;
    batches written before the failure stay in the store.
    """


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One rejected row: where it was and what was wrong with it."""

    source: str
    """File name, ``archive.tar.gz:member.csv`` for a member, or a Prometheus series."""
    line: int
    """1-based line number in ``source`` (0 when the source has no lines)."""
    detail: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """Every row rejected for one reason: the count and the first few examples."""

    reason: str
    count: int
    examples: tuple[RowProblem, ...]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """The outcome of one import.

    ``rows_read == rows_imported + rows_rejected`` once an import completes; an interrupted
    import reports what it wrote up to the interruption. ``rejections`` maps each reason
    (``bad_time``, ``bad_value``, ``out_of_range``, ...) to its count and first examples,
    so no row is dropped silently.
    """

    rows_read: int
    rows_imported: int
    rows_rejected: int
    rejections: dict[str, Rejection]
    entities: int
    """Distinct entities (GPUs, workloads or nodes) seen in accepted rows."""
    first_ts_s: float | None
    last_ts_s: float | None
    samples_written: int
    """GPU samples written to the store (one per imported row or joined point)."""
    snapshots_written: int
    elapsed_s: float
    rows_per_s: float
    sources: tuple[str, ...] = ()
    """Files (or members, or queries) that were read, in the order read."""
    warnings: tuple[str, ...] = ()
    """Things that did not stop the import but may surprise (old data, unit hints)."""
    completed: bool = True
    """False when the import was interrupted; the store then holds whole batches only."""


class ImportInterruptedError(KeyboardInterrupt):
    """Ctrl-C stopped an import between (or during) batches; ``report`` says what was written.

    A KeyboardInterrupt subclass, so callers that do not know it still stop as on any
    Ctrl-C. Each batch is one store transaction, so the store holds whole batches only.
    """

    def __init__(self, report: ImportReport) -> None:
        """Keep the partial report."""
        super().__init__(
            f"import interrupted after {report.samples_written} samples "
            f"({report.snapshots_written} snapshots)"
        )
        self.report = report


@dataclass
class RejectTally:
    """Counts rejected rows per reason and keeps the first examples of each."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[RowProblem]] = field(default_factory=dict)

    def add(self, reason: str, source: str, line: int, detail: str) -> None:
        """Count one rejected row, keeping it as an example while there are few."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < MAX_EXAMPLES:
            kept.append(RowProblem(source, line, detail))

    @property
    def total(self) -> int:
        """Rows rejected for any reason."""
        return sum(self.counts.values())

    def freeze(self) -> dict[str, Rejection]:
        """The tally as report entries, most frequent reason first."""
        ordered = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        return {
            reason: Rejection(reason, count, tuple(self.examples.get(reason, ())))
            for reason, count in ordered
        }
