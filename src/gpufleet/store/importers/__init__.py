"""Importers: history from elsewhere (CSV traces, a Prometheus server) written into a store.

Each importer reads its source, maps it onto :class:`~gpufleet.model.Snapshot` records and
writes them through :meth:`gpufleet.store.Store.write_snapshots` in batches, one transaction
each, so Ctrl-C leaves whole batches. Each returns an :class:`ImportReport`; a source that
cannot be read at all raises :class:`ImportFailedError` with what to fix.
"""

from __future__ import annotations

from gpufleet.store.importers.csv_import import import_csv
from gpufleet.store.importers.prometheus import import_prometheus
from gpufleet.store.importers.report import (
    ImportFailedError,
    ImportInterruptedError,
    ImportReport,
    Rejection,
    RowProblem,
)

__all__ = [
    "ImportFailedError",
    "ImportInterruptedError",
    "ImportReport",
    "Rejection",
    "RowProblem",
    "import_csv",
    "import_prometheus",
]
