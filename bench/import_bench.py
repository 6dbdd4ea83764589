"""Import benchmark: CSV trace import rate (rows per second) into SQLite.

Generates a long-format ``ts,value,entity`` CSV, gzip-compressed, of 1,000,000 rows by
default (1,000 GPUs x 1,000 timestamps a minute apart, sorted by time as public traces are),
then imports it with :func:`gpufleet.store.importers.import_csv` into a fresh SQLite store.
The rate covers the whole import: both reading passes (validation, then write) and the
store's rollups. Run::

    .venv/bin/python bench/import_bench.py [--rows N] [--entities N] [--write]

``--write`` stores the figures in docs/BENCHMARKS.md (section ``import``).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _report import write_section

from gpufleet.store import open_store
from gpufleet.store.importers import import_csv

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def generate(path: Path, rows: int, entities: int) -> None:
    """Write ``rows`` rows over ``entities`` GPUs, one minute apart, sorted by time."""
    with gzip.open(path, "wt", compresslevel=1, newline="") as out:
        out.write("ts,value,entity\n")
        written = 0
        step = 0
        while written < rows:
            ts = T0 + 60 * step
            lines = []
            for e in range(min(entities, rows - written)):
                lines.append(f"{ts},{(e * 7 + step) % 101},gpu-{e:05d}\n")
            out.writelines(lines)
            written += len(lines)
            step += 1


def main(argv: list[str] | None = None) -> int:
    """Generate, import, print the rate; with ``--write`` record it."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--entities", type=int, default=1_000)
    p.add_argument("--batch-rows", type=int, default=50_000)
    p.add_argument("--write", action="store_true", help="record in docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gpufleet-import-bench-") as tmp:
        trace = Path(tmp) / "trace.csv.gz"
        began = time.perf_counter()
        generate(trace, args.rows, args.entities)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - began:.1f} s", flush=True)
        store = open_store(Path(tmp) / "bench.db")
        try:
            report = import_csv(
                store,
                [trace],
                metric="gpu_util_pct",
                time_col="ts",
                value_col="value",
                entity_col="entity",
                batch_rows=args.batch_rows,
                clock=lambda: T0 + 86_400.0,  # rows are recent: raw rows are kept
            )
        finally:
            store.close()
    if report.rows_imported != args.rows:
        print(f"expected {args.rows} rows imported, got {report.rows_imported}", file=sys.stderr)
        return 1
    body = (
        "| rows | GPUs | batch rows | seconds | rows/s |\n"
        "|---:|---:|---:|---:|---:|\n"
        f"| {report.rows_read:,} | {report.entities:,} | {args.batch_rows:,} | "
        f"{report.elapsed_s:.1f} | {report.rows_per_s:,.0f} |\n\n"
        "Long-format `ts,value,entity` CSV (gzip) of GPU utilization a minute apart, sorted by "
        "time, into a fresh SQLite store with raw rows kept; both reading passes and the "
        "store's rollups included."
    )
    print(body)
    if args.write:
        write_section(
            "import",
            "CSV import rate",
            "python bench/import_bench.py --write",
            body,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
