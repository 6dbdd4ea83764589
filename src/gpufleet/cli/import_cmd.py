"""``gpufleet import csv`` and ``gpufleet import prometheus``: history from elsewhere, into a store.

Thin wrappers over :mod:`gpufleet.store.importers`: the CLI checks what it can before it
opens (or creates) the store, shows progress on stderr, and prints the importer's
:class:`~gpufleet.store.importers.ImportReport` as a summary or, with ``--json``, as JSON.

Retention: opening a store deletes nothing, and neither does an import. Only an agent's
periodic retention pass (``gpufleet agent``, with the agent's own ``[retention]``
settings) deletes rows older than each resolution keeps. ``--keep-days`` says how long
this import's hour and minute rollups are meant to be kept; it silences the "older than
the retention" warning, and the CLI still says when an agent running with the configured
settings would delete the imported rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from gpufleet.cli.common import console, err_console, fail, guarded, print_json, settings_from

if TYPE_CHECKING:
    from gpufleet.settings import Settings
    from gpufleet.store.base import Retention, Store
    from gpufleet.store.importers import ImportReport

import_app = typer.Typer(
    help="Import history users already have: CSV traces, a Prometheus server.",
    no_args_is_help=True,
)

DAY_S = 86_400.0
EXIT_INTERRUPTED = 130
EXAMPLES_SHOWN = 5
SOURCES_SHOWN = 5

METRICS: dict[str, str] = {
    "gpu_util_pct": "gpu_util_pct",
    "gpu_mem_used_bytes": "gpu_mem_used_bytes",
    # The store's reading names (as `gpufleet history` takes them) mean the same.
    "util_gpu_pct": "gpu_util_pct",
    "mem_used_bytes": "gpu_mem_used_bytes",
}
"""CLI metric names -> the importer's :data:`~gpufleet.store.importers.csv_scan.Metric`."""

ENTITY_NOUNS = {"gpu": "GPUs", "workload": "workloads", "node": "nodes"}

_OLD_ROWS_WARNING = "rows go back further than the store's hourly retention"
"""How the CSV importer's retention warning begins; the CLI replaces it with its own."""

_RETENTION_HELP = (
    "Retention: nothing is deleted when the store is opened, nor by an import; only a running "
    "agent's retention pass deletes, with the agent's own retention settings "
    "(retention.hour_days, default 730; GPUFLEET_RETENTION__HOUR_DAYS). Rows older than the "
    "raw retention (retention.raw_days, default 7) are stored as 1-minute and 1-hour rollups "
    "only."
)

_CSV_HELP = (
    "Import long-format CSV (one row per entity per time) into a store. "
    "Needs --metric, --time-col, --value-col and --entity-col. Rows that cannot be read are "
    "counted and reported by reason with file:line examples, never dropped silently; so are "
    "rows timed more than 5 minutes in the future. Importing the same rows twice counts them "
    "twice. Costs are priced by GPU model: pass --gpu-model (e.g. 'NVIDIA A100-SXM4-80GB') or "
    "the imported GPUs are priced at the fallback price. "
    "Exits 0 when rows were imported, 1 when none were (a database this command created is "
    "then removed again), 2 on bad input, 130 on Ctrl-C (whole batches stay written)."
)

_PROMETHEUS_HELP = (
    "Import dcgm-exporter (or gpufleet) GPU series from Prometheus's range-query API into a "
    "store. Needs --url, --from and --to. Importing the same window twice counts it twice. "
    "Exits 0 when points were imported, 1 when none were, 2 on bad input or an unreachable "
    "server, 130 on Ctrl-C (whole chunks stay written)."
)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLite path (created with its folders when missing) or postgresql:// URL "
        "(default: settings)",
    ),
]
KeepDaysOpt = Annotated[
    float | None,
    typer.Option(
        "--keep-days",
        help="Days the hour and minute rollups of this import are meant to be kept (overrides "
        "retention.hour_days and minute_days for this import), e.g. 2000 for a 2022 trace",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the import report as JSON, nothing else on stdout.")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]


@import_app.command("csv", help=_CSV_HELP, epilog=_RETENTION_HELP)
def csv_command(
    files: Annotated[
        list[Path] | None,
        typer.Argument(help=".csv, .csv.gz, or .tar.gz / .tgz / .tar holding CSV files"),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="What the value column holds: gpu_util_pct | gpu_mem_used_bytes"),
    ] = None,
    time_col: Annotated[
        str | None,
        typer.Option(help="Column of epoch seconds (or ms) or ISO 8601 times (naive = UTC)"),
    ] = None,
    value_col: Annotated[str | None, typer.Option(help="Column of the reading")] = None,
    entity_col: Annotated[
        str | None, typer.Option(help="Column naming the GPU, workload or node of each row")
    ] = None,
    entity_kind: Annotated[
        str, typer.Option(help="What the entity column names: gpu | workload | node")
    ] = "gpu",
    namespace: Annotated[
        str | None, typer.Option(help="Namespace (team) of imported workloads (default unknown)")
    ] = None,
    cluster: Annotated[
        str, typer.Option(help="Cluster of the imported history; also the node when none is named")
    ] = "imported",
    node_col: Annotated[str | None, typer.Option(help="Column naming each row's node")] = None,
    value_scale: Annotated[
        float,
        typer.Option(help="Factor applied to each value: 100 for 0..1 fractions, 1048576 for MiB"),
    ] = 1.0,
    gpu_model: Annotated[
        str | None,
        typer.Option(
            help="GPU model of every imported GPU, e.g. 'NVIDIA A100-SXM4-80GB': stored as the "
            "GPUs' name, by which waste and savings look up the price per GPU-hour "
            "(default: none, priced at the fallback)"
        ),
    ] = None,
    batch_rows: Annotated[
        int, typer.Option(help="Rows per store transaction (and per time-sorting window)")
    ] = 50_000,
    db: DbOpt = None,
    keep_days: KeepDaysOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Import long-format CSV into a store (help: :data:`_CSV_HELP`)."""
    if not (metric and time_col and value_col and entity_col):
        missing = [
            flag
            for flag, value in (
                ("--metric", metric),
                ("--time-col", time_col),
                ("--value-col", value_col),
                ("--entity-col", entity_col),
            )
            if not value
        ]
        fail(f"{', '.join(missing)} required: name the columns of the CSV (see --help)")
    if metric not in METRICS:
        fail(f"unknown metric {metric!r}; use gpu_util_pct or gpu_mem_used_bytes")
    if entity_kind not in ENTITY_NOUNS:
        fail(f"unknown entity kind {entity_kind!r}; use one of {', '.join(ENTITY_NOUNS)}")
    if not (math.isfinite(value_scale) and value_scale > 0):
        fail(f"--value-scale must be a positive number, not {value_scale:g}")
    if batch_rows < 1:
        fail(f"--batch-rows must be at least 1, not {batch_rows}")
    if gpu_model is not None and not gpu_model.strip():
        fail("--gpu-model must not be empty; name the model, e.g. 'NVIDIA A100-SXM4-80GB'")
    if not files:
        fail("no CSV files given: pass at least one .csv, .csv.gz or .tar.gz")
    for path in files:
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "no such file"
            fail(f"{path}: {what}; pass .csv, .csv.gz or .tar.gz files")

    from gpufleet.store.importers import import_csv
    from gpufleet.store.importers.csv_scan import EntityKind, Metric

    chosen_metric: Metric = _pick(METRICS[metric], get_args(Metric))
    kind: EntityKind = _pick(entity_kind, get_args(EntityKind))
    bar = _ProgressBar(rows_known=False, enabled=not json_out)

    def run(store: Store) -> ImportReport:
        return import_csv(
            store,
            files,
            metric=chosen_metric,
            time_col=time_col,
            value_col=value_col,
            entity_col=entity_col,
            entity_kind=kind,
            namespace=namespace,
            cluster=cluster,
            progress=bar,
            batch_rows=batch_rows,
            node_col=node_col,
            value_scale=value_scale,
            gpu_model=gpu_model.strip() if gpu_model is not None else None,
        )

    _import(run, bar, db=db, config=config, keep_days=keep_days, json_out=json_out, noun=kind)


@import_app.command("prometheus", help=_PROMETHEUS_HELP, epilog=_RETENTION_HELP)
def prometheus_command(
    url: Annotated[
        str | None, typer.Option(help="The Prometheus server's root, e.g. http://localhost:9090")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="Window start: ISO 8601, epoch seconds, or relative (-7d)"),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Window end (exclusive): ISO 8601, epoch s, now")
    ] = None,
    step: Annotated[
        float, typer.Option(help="Seconds between imported samples; each stands for this long")
    ] = 60.0,
    cluster: Annotated[
        str | None,
        typer.Option(help="Cluster of every sample (default: each series' cluster label)"),
    ] = None,
    db: DbOpt = None,
    keep_days: KeepDaysOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Import GPU series from Prometheus into a store (help: :data:`_PROMETHEUS_HELP`)."""
    if not (url and start and end):
        missing = [f for f, v in (("--url", url), ("--from", start), ("--to", end)) if not v]
        fail(f"{', '.join(missing)} required, e.g. --url http://localhost:9090 --from -7d --to now")
    if not (math.isfinite(step) and step > 0):
        fail(f"--step must be a positive number of seconds, not {step:g}")

    from gpufleet.store.importers import import_prometheus
    from gpufleet.timeparse import parse_window

    start_s, end_s = guarded(
        lambda: parse_window(start, end, now_s=time.time(), default_span_s=DAY_S),
        "--from/--to",
    )
    bar = _ProgressBar(rows_known=True, enabled=not json_out)

    def run(store: Store) -> ImportReport:
        return import_prometheus(
            store, url, start_s=start_s, end_s=end_s, step_s=step, cluster=cluster, progress=bar
        )

    _import(run, bar, db=db, config=config, keep_days=keep_days, json_out=json_out, noun=None)


# ---- shared ------------------------------------------------------------------------------


def _pick(value: str, allowed: tuple[Any, ...]) -> Any:
    """``value`` as one of a Literal's members (checked already; this narrows the type)."""
    assert value in allowed
    return value


def _import(
    run: Callable[[Store], ImportReport],
    bar: _ProgressBar,
    *,
    db: str | None,
    config: Path | None,
    keep_days: float | None,
    json_out: bool,
    noun: str | None,
) -> None:
    """Open the store, run the import, print the report; errors are one line, exit 2."""
    from gpufleet.store.base import StoreError
    from gpufleet.store.importers import ImportFailedError, ImportInterruptedError

    if keep_days is not None and not (math.isfinite(keep_days) and keep_days > 0):
        fail(f"--keep-days must be a positive number of days, not {keep_days:g}")
    settings = settings_from(config, db=db)
    retention = _retention(settings, keep_days)
    store, created = _open(settings.db, retention)
    code = 0
    problem: str | None = None
    try:
        with bar:
            report = run(store)
    except ImportInterruptedError as exc:
        report, code = exc.report, EXIT_INTERRUPTED
    except (ImportFailedError, StoreError) as exc:
        problem = str(exc)
    finally:
        store.close()
    if problem is not None:
        _forget_if_empty(settings.db, created, retention)
        fail(problem)
    if report.rows_imported == 0 and code == 0:
        code = 1
    removed = report.samples_written == 0 and _forget_if_empty(settings.db, created, retention)
    warnings = _warnings(report, retention, settings, keep_days, time.time())
    if json_out:
        from gpufleet.analysis.wire import to_wire

        wire = to_wire(report)
        wire["warnings"] = warnings
        print_json(wire)
    else:
        _print_report(report, warnings, noun=noun, target=settings.db, removed=removed)
    if code == EXIT_INTERRUPTED:
        _say(
            f"interrupted: {report.samples_written} samples in {report.snapshots_written} "
            "snapshots were written (whole batches only); importing the same data again adds "
            "it again"
        )
    elif code == 1:
        what = "the columns and --value-scale" if noun is not None else "the window and --step"
        kept = f"; {settings.db} was not created" if removed else ""
        _say(f"nothing was imported: check {what} against the rejections in the report{kept}")
    if code:
        raise typer.Exit(code)


def _say(message: str) -> None:
    """A one-line ``gpufleet: ...`` note on stderr that does not exit."""
    err_console.print(f"[bold red]gpufleet:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _retention(settings: Settings, keep_days: float | None) -> Retention:
    configured = settings.retention.to_retention()
    if keep_days is None:
        return configured
    return replace(configured, minute_s=keep_days * DAY_S, hour_s=keep_days * DAY_S)


def _open(target: str, retention: Retention) -> tuple[Store, bool]:
    """The store at ``target``, created (with its folders) when missing; whether it was new."""
    from gpufleet.store import open_store

    created = False
    if "://" not in target:
        path = Path(target).expanduser()
        created = not path.exists()
        if created:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                fail(f"cannot create {path.parent} for the database: {exc.strerror or exc}")
        target = str(path)
    return guarded(lambda: open_store(target, retention=retention)), created


def _forget_if_empty(target: str, created: bool, retention: Retention) -> bool:
    """Remove a database this command created when the import left nothing in it.

    A failed import, or one that imported no row, must not leave an empty database that
    later reads as "0 GPUs". Only a file this command created (``created``) is removed, with
    its ``-wal`` and ``-shm``; a database that existed before is never touched. Returns
    whether it was removed.
    """
    if not created or "://" in target:
        return False
    from gpufleet.store import open_store
    from gpufleet.store.base import StoreError

    path = Path(target).expanduser()
    try:
        store = open_store(str(path), retention=retention)
        try:
            empty = not store.inventory()
        finally:
            store.close()
    except (StoreError, OSError):  # best effort: a file that cannot be read again stays
        return False
    if not empty:
        return False
    for leftover in (
        path,
        path.with_name(path.name + "-wal"),
        path.with_name(path.name + "-shm"),
    ):
        leftover.unlink(missing_ok=True)
    return True


def _warnings(
    report: ImportReport,
    retention: Retention,
    settings: Settings,
    keep_days: float | None,
    now_s: float,
) -> list[str]:
    """The report's warnings in the CLI's words, plus what retention will do to the rows."""
    out = [
        w.replace("value_scale=100", "--value-scale 100")
        for w in report.warnings
        if not w.startswith(_OLD_ROWS_WARNING)
    ]
    first = report.first_ts_s
    if first is None:
        return out
    needed = math.ceil((now_s - first) / DAY_S)
    agent_days = settings.retention.hour_days
    if now_s - first > retention.hour_s:
        out.append(
            f"rows go back {needed} days, further than the hour retention of "
            f"{retention.hour_s / DAY_S:g} days: the next retention pass of an agent writing "
            f"to this database deletes them (the import itself deletes nothing); to keep them "
            f"pass --keep-days {needed} and give such agents retention.hour_days above "
            f"{needed} (GPUFLEET_RETENTION__HOUR_DAYS), the oldest row's age today"
        )
    elif keep_days is not None and now_s - first > agent_days * DAY_S:
        out.append(
            f"kept for --keep-days {keep_days:g} here, but an agent with these settings keeps "
            f"{agent_days:g} days and its retention pass would delete rows older than that: "
            f"give agents writing to this database retention.hour_days above {needed} "
            "(GPUFLEET_RETENTION__HOUR_DAYS), the oldest row's age today"
        )
    return out


def _print_report(
    report: ImportReport,
    warnings: list[str],
    *,
    noun: str | None,
    target: str,
    removed: bool = False,
) -> None:
    from gpufleet.analysis.wire import iso

    csv_like = noun is not None
    unit = "rows" if csv_like else "points"
    entities = ENTITY_NOUNS[noun] if noun is not None else "GPUs"
    sources = list(report.sources)
    shown = ", ".join(sources[:SOURCES_SHOWN])
    if len(sources) > SOURCES_SHOWN:
        shown += f", and {len(sources) - SOURCES_SHOWN} more"
    table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    status = "imported" if report.completed else "interrupted"
    if removed:
        status = "nothing written; the new empty database was removed"
    table.add_row(
        "into", escape(target) + ("" if report.completed and not removed else f" ({status})")
    )
    table.add_row("files" if csv_like else "queries", f"{len(sources)}: {escape(shown)}")
    table.add_row(
        unit,
        f"{report.rows_read:,} read, {report.rows_imported:,} imported, "
        f"{report.rows_rejected:,} rejected",
    )
    table.add_row(escape(entities), f"{report.entities:,}")
    if report.first_ts_s is not None and report.last_ts_s is not None:
        hours = (report.last_ts_s - report.first_ts_s) / 3600.0
        table.add_row(
            "span", f"{iso(report.first_ts_s)} .. {iso(report.last_ts_s)} ({hours:,.1f} h)"
        )
    else:
        table.add_row("span", "none (no accepted rows)")
    table.add_row(
        "written", f"{report.samples_written:,} samples in {report.snapshots_written:,} snapshots"
    )
    table.add_row("speed", f"{report.rows_per_s:,.0f} {unit}/s, {report.elapsed_s:,.1f} s elapsed")
    console.print(table)
    if report.rejections:
        rejected = Table(
            title=f"rejected {unit}", box=None, header_style="bold", title_justify="left"
        )
        rejected.add_column("reason")
        rejected.add_column("count", justify="right")
        rejected.add_column("examples", overflow="fold")
        for reason, rejection in report.rejections.items():
            examples = "\n".join(
                escape(f"{p.source}:{p.line}: {p.detail}" if p.line else f"{p.source}: {p.detail}")
                for p in rejection.examples[:EXAMPLES_SHOWN]
            )
            rejected.add_row(escape(reason), f"{rejection.count:,}", examples)
        console.print(rejected)
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


class _ProgressBar:
    """The importers' progress callback as a rich bar on stderr (nothing when not a terminal).

    CSV imports call ``(rows, None)`` while checking rows, then ``(rows, total)`` while
    writing; Prometheus imports ``(steps, total)`` after each chunk.
    """

    def __init__(self, *, rows_known: bool, enabled: bool) -> None:
        """A bar for an import whose totals are known from the start (``rows_known``) or not."""
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=not (enabled and err_console.is_terminal),
        )
        first = "importing" if rows_known else "checking rows"
        self._task: TaskID | None = None
        self._first = first
        self._writing = rows_known

    def __enter__(self) -> _ProgressBar:
        self._progress.start()
        self._task = self._progress.add_task(self._first, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, done: int, total: int | None) -> None:
        """Show ``done`` of ``total`` (an open count while ``total`` is None)."""
        if self._task is None:
            return
        if total is not None and not self._writing:
            self._writing = True
            self._progress.update(self._task, description="writing", completed=0)
        self._progress.update(self._task, completed=done, total=total)
