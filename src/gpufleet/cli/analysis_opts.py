"""What the ``analyze`` and the optimize commands (``recommend``, ``execute``,
``executions``) share: their options, reading a store, windows, scopes, thresholds, prices,
and how numbers and recommendations are printed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.common import console, guarded, open_for_reading, settings_from

T = TypeVar("T")

DbOpt = Annotated[
    str | None, typer.Option("--db", help="SQLite path or postgresql:// URL (default: settings)")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="ISO 8601, epoch s, now, or -7d (default -7d)")
]
ToOpt = Annotated[str | None, typer.Option("--to", help="ISO 8601 or relative (default now)")]
IdleOpt = Annotated[
    float | None,
    typer.Option(
        "--idle-threshold",
        help="Idle below this utilization % (default: the settings' idle_threshold_pct, 5 "
        "unless configured)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
ClusterOpt = Annotated[str | None, typer.Option(help="Only this cluster")]
NodeOpt = Annotated[str | None, typer.Option(help="Only this node")]
GpuOpt = Annotated[str | None, typer.Option(help="Only this GPU (UUID, or index with --node)")]
NamespaceOpt = Annotated[str | None, typer.Option(help="Only this namespace (team)")]
UserOpt = Annotated[str | None, typer.Option(help="Only this user")]
WorkloadOpt = Annotated[str | None, typer.Option(help="Only this workload (job, pod)")]
ModelOpt = Annotated[str | None, typer.Option(help="Only this GPU model (substring, e.g. h100)")]
KindOpt = Annotated[
    str | None,
    typer.Option(
        "--workload-kind", help="Only this workload kind (training, inference, notebook, ...)"
    ),
]


def run_guarded(func: Callable[[], T]) -> T:
    """Run an analysis; its errors (bad window, unknown key listing what exists) are one line."""
    return guarded(func)


@contextmanager
def memo_store(db: str | None, config: Path | None) -> Iterator[Any]:
    from gpufleet.analysis.memo import MemoStore

    store = open_for_reading(db, config)
    try:
        yield MemoStore(store)
    finally:
        store.close()


def scope_from_flags(**levels: str | None) -> Any:
    from gpufleet.analysis.request import scope_of

    return run_guarded(lambda: scope_of(levels))


def window_from_flags(start: str | None, end: str | None, *, report: bool = False) -> Any:
    from gpufleet.analysis.request import DEFAULT_SPAN_S, REPORT_SPAN_S, analysis_window

    span = REPORT_SPAN_S if report else DEFAULT_SPAN_S
    return run_guarded(lambda: analysis_window(start, end, default_span_s=span))


def prices_from(config: Path | None) -> Any:
    return settings_from(config).prices.to_table()


def idle_from(given: float | None, config: Path | None) -> float:
    """``--idle-threshold`` when given, else the settings' ``idle_threshold_pct``."""
    if given is not None:
        return given
    return settings_from(config).idle_threshold_pct


BASIS_WORDS = {
    "gpu_samples": "readings (GPU rollups)",
    "workload_samples": "readings (workload rows)",
}
"""``UtilizationResult.samples_basis`` in words."""


def num(value: float | None, fmt: str = ".1f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{suffix}"


def pct_of(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.1f} %"


def usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.0f}"


def new_table(title: str, *columns: str) -> Table:
    table = Table(title=title, box=None, header_style="bold", title_justify="left")
    for col in columns:
        table.add_column(col, justify="left" if col in LEFT_COLUMNS else "right")
    return table


LEFT_COLUMNS = frozenset(
    {
        "key",
        "kind",
        "title",
        "id",
        "workload",
        "gpus",
        "namespace",
        "bucket",
        "entity",
        "contributor",
        "summary",
        "status",
        "executor",
        "detail",
    }
)


def print_recommendations(recs: Any, verbose: bool = True) -> None:
    if not recs:
        console.print("no recommendations: nothing in the window crossed a threshold")
        return
    table = new_table("recommendations", "id", "kind", "title", "per month", "confidence")
    for r in recs:
        table.add_row(
            escape(r.id),
            escape(r.kind),
            escape(r.title),
            usd(r.expected_monthly_saving_usd),
            escape(f"{r.confidence_label} ({r.confidence:.2f})"),
        )
    console.print(table)
    if verbose:
        for r in recs:
            console.print(f"\n[bold]{escape(r.id)}[/] {escape(r.title)}", highlight=False)
            for line in r.evidence:
                console.print(f"  - {escape(line)}", highlight=False)
            console.print(
                escape(f"  action: {r.action.type} {dict(r.action.params)}"), highlight=False
            )
