"""``gpufleet analyze ...``, ``gpufleet recommend`` and ``gpufleet execute``: analysis from a store.

Thin wrappers over :mod:`gpufleet.analysis`: the window and scope are read the way the API
reads them (:mod:`gpufleet.analysis.request`), the numbers come from the analysis functions,
and ``--json`` prints exactly what the matching endpoint answers.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.common import (
    console,
    fail,
    guarded,
    open_for_reading,
    print_json,
    settings_from,
)

T = TypeVar("T")

analyze_app = typer.Typer(
    help="Utilization, trends, drill-down, waste, opportunities and the report, from a store.",
    no_args_is_help=True,
)

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


def _run(func: Callable[[], T]) -> T:
    """Run an analysis; its errors (bad window, unknown key listing what exists) are one line."""
    return guarded(func)


@contextmanager
def _store(db: str | None, config: Path | None) -> Iterator[Any]:
    from gpufleet.analysis.memo import MemoStore

    store = open_for_reading(db, config)
    try:
        yield MemoStore(store)
    finally:
        store.close()


def _scope(**levels: str | None) -> Any:
    from gpufleet.analysis.request import scope_of

    return _run(lambda: scope_of(levels))


def _window(start: str | None, end: str | None, *, report: bool = False) -> Any:
    from gpufleet.analysis.request import DEFAULT_SPAN_S, REPORT_SPAN_S, analysis_window

    span = REPORT_SPAN_S if report else DEFAULT_SPAN_S
    return _run(lambda: analysis_window(start, end, default_span_s=span))


def _prices(config: Path | None) -> Any:
    return settings_from(config).prices.to_table()


def _idle(given: float | None, config: Path | None) -> float:
    """``--idle-threshold`` when given, else the settings' ``idle_threshold_pct``."""
    if given is not None:
        return given
    return settings_from(config).idle_threshold_pct


_BASIS_WORDS = {
    "gpu_samples": "readings (GPU rollups)",
    "workload_samples": "readings (workload rows)",
}
"""``UtilizationResult.samples_basis`` in words."""


def _num(value: float | None, fmt: str = ".1f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{suffix}"


def _pct_of(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.1f} %"


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.0f}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, box=None, header_style="bold", title_justify="left")
    for col in columns:
        table.add_column(col, justify="left" if col in _LEFT else "right")
    return table


_LEFT = frozenset(
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


# ---- analyze utilization ----------------------------------------------------------------


@analyze_app.command()
def utilization(
    db: DbOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    by: Annotated[
        str | None,
        typer.Option(help="Group by cluster, node, gpu, namespace, user, workload, gpu_model"),
    ] = None,
    idle_threshold: IdleOpt = None,
    under: Annotated[float, typer.Option(help="Under-utilized below this mean %")] = 20.0,
    over: Annotated[float, typer.Option(help="Over-utilized above this mean %")] = 90.0,
    cluster: ClusterOpt = None,
    node: NodeOpt = None,
    gpu: GpuOpt = None,
    namespace: NamespaceOpt = None,
    user: UserOpt = None,
    workload: WorkloadOpt = None,
    gpu_model: ModelOpt = None,
    workload_kind: KindOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Time-weighted utilization, allocation rate and idle GPU-hours of a scope."""
    from gpufleet.analysis.utilization import analyze_utilization
    from gpufleet.analysis.wire import utilization_wire

    window = _window(start, end)
    idle_pct = _idle(idle_threshold, config)
    scope = _scope(
        cluster=cluster,
        node=node,
        gpu=gpu,
        namespace=namespace,
        user=user,
        workload=workload,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    with _store(db, config) as store:
        result = _run(
            lambda: analyze_utilization(
                store,
                window,
                scope=scope,
                by=by,
                idle_threshold_pct=idle_pct,
                under_pct=under,
                over_pct=over,
            )
        )
    if json_out:
        print_json(utilization_wire(result))
        return
    console.print(
        f"[bold]Utilization[/] {escape(window.label())} ({result.gpus} GPUs, "
        f"{result.samples:,} {escape(_BASIS_WORDS.get(result.samples_basis, 'readings'))})",
        highlight=False,
    )
    lines = [
        ("mean GPU utilization", _num(result.mean_gpu_util_pct, suffix=" %")),
        ("p50 / p95", f"{_num(result.p50_gpu_util_pct)} / {_num(result.p95_gpu_util_pct)} %"),
        (
            "GPU memory mean / p95 / peak",
            f"{_num(result.mean_mem_used_pct)} / "
            f"{_num(result.p95_mem_used_pct)} / {_num(result.peak_mem_used_pct)} %",
        ),
        ("allocation rate", _pct_of(result.allocation_rate)),
        ("idle fraction", f"{_pct_of(result.idle_fraction)} (< {idle_pct:g} %)"),
        (
            "GPU-hours",
            f"{result.gpu_hours:,.1f} total, {result.allocated_gpu_hours:,.1f} "
            f"allocated, {result.unallocated_gpu_hours:,.1f} unallocated",
        ),
        (
            "idle GPU-hours",
            f"{result.idle_gpu_hours:,.1f} ({result.idle_allocated_gpu_hours:,.1f}"
            " while allocated)",
        ),
        ("throttled", _pct_of(result.bottlenecks.throttled_fraction)),
    ]
    for name, value in lines:
        console.print(f"  {name:<30} {escape(value)}", highlight=False)
    if result.groups:
        table = _table(
            escape(f"by {by}"), "key", "GPUs", "GPU-h", "alloc", "idle", "mean %", "p95 %"
        )
        for g in result.groups:
            table.add_row(
                escape(g.key),
                str(g.gpus),
                f"{g.gpu_hours:,.1f}",
                _pct_of(g.allocation_rate),
                _pct_of(g.idle_fraction),
                _num(g.mean_gpu_util_pct),
                _num(g.p95_gpu_util_pct),
            )
        console.print(table)
    for label, items, pct in (
        ("under-utilized", result.under_utilized, under),
        ("over-utilized", result.over_utilized, over),
    ):
        if items:
            shown = ", ".join(f"{e.label} {e.mean_gpu_util_pct:.1f} %" for e in items[:10])
            more = f" and {len(items) - 10} more" if len(items) > 10 else ""
            console.print(
                f"  {label} ({'<' if label[0] == 'u' else '>'} {pct:g} %): {escape(shown)}{more}",
                highlight=False,
            )
    if result.bottlenecks.mem_saturated_gpus:
        names = ", ".join(f.label for f in result.bottlenecks.mem_saturated_gpus[:10])
        console.print(
            f"  memory nearly full (>= {result.bottlenecks.mem_saturated_pct:g} %): "
            f"{escape(names)}",
            highlight=False,
        )


# ---- analyze trends ---------------------------------------------------------------------


@analyze_app.command()
def trends(
    db: DbOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    granularity: Annotated[str, typer.Option(help="hour | day | week")] = "day",
    metric: Annotated[
        str, typer.Option(help="utilization | allocation_rate | idle_fraction | gpu_hours")
    ] = "utilization",
    horizon: Annotated[int | None, typer.Option(help="Buckets to forecast")] = None,
    idle_threshold: IdleOpt = None,
    cluster: ClusterOpt = None,
    node: NodeOpt = None,
    gpu: GpuOpt = None,
    namespace: NamespaceOpt = None,
    user: UserOpt = None,
    workload: WorkloadOpt = None,
    gpu_model: ModelOpt = None,
    workload_kind: KindOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """A metric bucket by bucket: slope, change against the window before, change points,
    and a forecast with 80/95 % intervals."""
    from gpufleet.analysis.trends import analyze_trends
    from gpufleet.analysis.wire import iso, to_wire

    window = _window(start, end)
    idle_pct = _idle(idle_threshold, config)
    scope = _scope(
        cluster=cluster,
        node=node,
        gpu=gpu,
        namespace=namespace,
        user=user,
        workload=workload,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    with _store(db, config) as store:
        result = _run(
            lambda: analyze_trends(
                store,
                window,
                scope=scope,
                granularity=cast(Any, granularity),
                metric=cast(Any, metric),
                idle_threshold_pct=idle_pct,
                horizon=horizon,
            )
        )
    if json_out:
        print_json(to_wire(result))
        return
    series = result.series
    unit = " %" if series.unit == "pct" else " GPU-h"
    table = _table(
        escape(f"{series.metric} per {series.granularity}, {window.label()}"),
        "bucket",
        "value",
        "GPU-h",
    )
    for p in series.points:
        table.add_row(
            iso(p.start_s) or "",
            _num(p.value, ".2f") + ("*" if p.partial else ""),
            f"{p.gpu_hours:,.1f}",
        )
    console.print(table)
    if result.slope is not None:
        s = result.slope
        ci = (
            ""
            if s.ci_low_per_day is None or s.ci_high_per_day is None
            else f" (95 % CI {s.ci_low_per_day:+.2f} .. {s.ci_high_per_day:+.2f})"
        )
        console.print(
            escape(f"slope: {s.per_day:+.2f}{unit}/day{ci}: {s.direction}"), highlight=False
        )
    c = result.comparison
    console.print(
        escape(f"vs the window before ({c.window_a.label()}): {c.summary}"), highlight=False
    )
    for cp in result.change_points:
        console.print(
            f"change point at {iso(cp.ts_s)}: {cp.before_mean:.2f} -> {cp.after_mean:.2f}{unit}",
            highlight=False,
        )
    if result.forecast is not None and result.forecast.points:
        f = result.forecast
        console.print(
            escape(f"forecast ({f.method}{', ' + f.note if f.note else ''}):"), highlight=False
        )
        for fp in f.points:
            console.print(
                f"  {iso(fp.start_s) or fp.step}: {fp.value:.2f}{unit} "
                f"(80 % {fp.lo80:.2f} .. {fp.hi80:.2f})",
                highlight=False,
            )


# ---- analyze drilldown ------------------------------------------------------------------


@analyze_app.command()
def drilldown(
    db: DbOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    before_from: Annotated[
        str | None, typer.Option(help="Reference window start (default: the window before)")
    ] = None,
    before_to: Annotated[str | None, typer.Option(help="Reference window end")] = None,
    metric: Annotated[str, typer.Option(help="gpu_hours | utilization")] = "gpu_hours",
    levels: Annotated[
        str,
        typer.Option(
            help="Levels to walk, comma-separated, from namespace,user,workload "
            "(default: all three, in that order)"
        ),
    ] = "namespace,user,workload",
    top: Annotated[int, typer.Option(help="Contributors listed per level (1 to 100)")] = 5,
    expand: Annotated[
        int, typer.Option(help="Contributors drilled into per level, biggest first (1 to 20)")
    ] = 1,
    cluster: ClusterOpt = None,
    namespace: NamespaceOpt = None,
    user: UserOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Why a metric changed between two windows: namespace -> user -> workload."""
    from gpufleet.analysis.drilldown import DrillNode, drill_down
    from gpufleet.analysis.scope import Window
    from gpufleet.analysis.wire import to_wire

    # The bounds of GET /analysis/drilldown; the levels are checked by drill_down, as there.
    if not 1 <= top <= 100:
        fail(f"--top must be between 1 and 100; got {top}")
    if not 1 <= expand <= 20:
        fail(f"--expand must be between 1 and 20; got {expand}")
    walk = [lv.strip() for lv in levels.split(",") if lv.strip()]
    after = _window(start, end)
    if (before_from is None) != (before_to is None):
        fail("give both --before-from and --before-to, or neither")
    before = (
        _window(before_from, before_to)
        if before_from is not None
        else Window(after.start_s - after.span_s, after.start_s)
    )
    scope = _scope(cluster=cluster, namespace=namespace, user=user)
    with _store(db, config) as store:
        result = _run(
            lambda: drill_down(
                store,
                before,
                after,
                scope=scope,
                metric=cast(Any, metric),
                levels=walk,
                top=top,
                expand=expand,
            )
        )
    if json_out:
        print_json(to_wire(result))
        return
    console.print(
        f"[bold]{escape(result.metric)}[/] {escape(before.label())} -> {escape(after.label())}",
        highlight=False,
    )

    def show(n: DrillNode, depth: int) -> None:
        console.print(f"{'  ' * depth}{escape(n.summary)}", highlight=False)
        for child in n.children:
            show(child, depth + 1)

    show(result.root, 0)


# ---- analyze waste ----------------------------------------------------------------------


@analyze_app.command()
def waste(
    db: DbOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    by: Annotated[str | None, typer.Option(help="Group by (default namespace)")] = "namespace",
    top: Annotated[int, typer.Option(help="Top wasting workloads listed")] = 10,
    idle_threshold: IdleOpt = None,
    cluster: ClusterOpt = None,
    node: NodeOpt = None,
    gpu: GpuOpt = None,
    namespace: NamespaceOpt = None,
    user: UserOpt = None,
    workload: WorkloadOpt = None,
    gpu_model: ModelOpt = None,
    workload_kind: KindOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Idle-allocated and unallocated GPU-hours and what they cost at the price table."""
    from gpufleet.analysis.waste import compute_waste
    from gpufleet.analysis.wire import to_wire

    window = _window(start, end)
    idle_pct = _idle(idle_threshold, config)
    scope = _scope(
        cluster=cluster,
        node=node,
        gpu=gpu,
        namespace=namespace,
        user=user,
        workload=workload,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    prices = _prices(config)
    with _store(db, config) as store:
        result = _run(
            lambda: compute_waste(
                store,
                window,
                scope=scope,
                by=by or None,
                idle_threshold_pct=idle_pct,
                prices=prices,
                top_n=top,
            )
        )
    if json_out:
        print_json(to_wire(result))
        return
    console.print(f"[bold]Waste[/] {escape(window.label())}", highlight=False)
    console.print(
        f"  idle while allocated: {result.idle_allocated_gpu_hours:,.1f} GPU-h = "
        f"{_usd(result.idle_allocated_cost_usd)} ({_usd(result.monthly_idle_allocated_cost_usd)}"
        f"/month)\n  unallocated: {result.unallocated_gpu_hours:,.1f} GPU-h = "
        f"{_usd(result.unallocated_cost_usd)} ({_usd(result.monthly_unallocated_cost_usd)}/month)"
        f"\n  efficiency (used / allocated): {_pct_of(result.efficiency)}",
        highlight=False,
    )
    if result.groups:
        table = _table(
            escape(f"by {by}"),
            "key",
            "GPUs",
            "alloc GPU-h",
            "idle alloc GPU-h",
            "idle cost",
            "per month",
            "efficiency",
        )
        for g in result.groups:
            table.add_row(
                escape(g.key),
                str(g.gpus),
                f"{g.allocated_gpu_hours:,.1f}",
                f"{g.idle_allocated_gpu_hours:,.1f}",
                _usd(g.idle_allocated_cost_usd),
                _usd(g.monthly_idle_allocated_cost_usd),
                _pct_of(g.efficiency),
            )
        console.print(table)
    if result.top_wasters:
        table = _table(
            "top wasters", "workload", "namespace", "gpus", "idle GPU-h", "idle", "per month"
        )
        for w in result.top_wasters:
            table.add_row(
                escape(w.workload),
                escape(w.namespace),
                escape(", ".join(w.gpus[:4])),
                f"{w.idle_gpu_hours:,.1f}",
                _pct_of(w.idle_fraction),
                _usd(w.monthly_idle_cost_usd),
            )
        console.print(table)
    if result.fallback_models:
        console.print(
            f"[yellow]priced at the fallback: {escape(', '.join(result.fallback_models))}[/]",
            highlight=False,
        )


# ---- analyze opportunities --------------------------------------------------------------


def _print_recommendations(recs: Any, verbose: bool = True) -> None:
    if not recs:
        console.print("no recommendations: nothing in the window crossed a threshold")
        return
    table = _table("recommendations", "id", "kind", "title", "per month", "confidence")
    for r in recs:
        table.add_row(
            escape(r.id),
            escape(r.kind),
            escape(r.title),
            _usd(r.expected_monthly_saving_usd),
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


@analyze_app.command()
def opportunities(
    db: DbOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    idle_threshold: IdleOpt = None,
    under: Annotated[float, typer.Option(help="Under-utilized below this mean %")] = 20.0,
    cluster: ClusterOpt = None,
    node: NodeOpt = None,
    namespace: NamespaceOpt = None,
    user: UserOpt = None,
    gpu_model: ModelOpt = None,
    workload_kind: KindOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Under-utilized workloads, idle holders, and the recommendations that act on them."""
    from gpufleet.analysis.opportunities import find_opportunities
    from gpufleet.analysis.wire import to_wire

    window = _window(start, end)
    idle_pct = _idle(idle_threshold, config)
    scope = _scope(
        cluster=cluster,
        node=node,
        namespace=namespace,
        user=user,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    prices = _prices(config)
    with _store(db, config) as store:
        found = _run(
            lambda: find_opportunities(
                store,
                window,
                scope=scope,
                idle_threshold_pct=idle_pct,
                under_pct=under,
                prices=prices,
            )
        )
    if json_out:
        print_json(to_wire(found))
        return
    console.print(
        f"[bold]Opportunities[/] {escape(window.label())}: {found.idle_allocated_gpu_hours:,.1f} "
        f"GPU-h held idle ({_usd(found.monthly_idle_allocated_cost_usd)}/month); "
        f"potential saving {_usd(found.potential_monthly_saving_usd)}/month",
        highlight=False,
    )
    if found.under_utilized_workloads:
        table = _table(f"workloads under {under:g} %", "workload", "GPU-h", "mean %", "idle")
        for g in found.under_utilized_workloads[:20]:
            table.add_row(
                escape(g.key),
                f"{g.gpu_hours:,.1f}",
                _num(g.mean_gpu_util_pct),
                _pct_of(g.idle_fraction),
            )
        console.print(table)
    _print_recommendations(found.recommendations, verbose=False)


# ---- analyze report ---------------------------------------------------------------------


@analyze_app.command()
def report(
    db: DbOpt = None,
    start: Annotated[
        str | None, typer.Option("--from", help="ISO 8601 or relative (default -30d)")
    ] = None,
    end: ToOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="md | html | json")] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (else stdout)")
    ] = None,
    target_util: Annotated[float, typer.Option(help="Utilization target %")] = 80.0,
    idle_threshold: IdleOpt = None,
    cluster: ClusterOpt = None,
    namespace: NamespaceOpt = None,
    gpu_model: ModelOpt = None,
    workload_kind: KindOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The FinOps report: utilization vs target, savings, recommendations, trends."""
    import json

    from gpufleet.analysis.report import build_report, report_json
    from gpufleet.analysis.report_html import render_html
    from gpufleet.analysis.report_markdown import render_markdown

    fmt = "json" if json_out else fmt
    if fmt not in ("md", "html", "json"):
        fail(f"unknown --format {fmt!r}; use md, html or json")
    if not 0 < target_util <= 100:
        fail(f"--target-util must be above 0 and at most 100; got {target_util:g}")
    window = _window(start, end, report=True)
    idle_pct = _idle(idle_threshold, config)
    scope = _scope(
        cluster=cluster, namespace=namespace, gpu_model=gpu_model, workload_kind=workload_kind
    )
    prices = _prices(config)
    with _store(db, config) as store:
        built = _run(
            lambda: build_report(
                store,
                window,
                scope=scope,
                idle_threshold_pct=idle_pct,
                prices=prices,
                target_util_pct=target_util,
            )
        )
    if fmt == "json":
        text = json.dumps(report_json(built), indent=2) + "\n"
    elif fmt == "html":
        text = render_html(built)
    else:
        text = render_markdown(built)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    console.print(escape(f"wrote {output} ({len(text):,} bytes)"), highlight=False)


# ---- recommend / execute ----------------------------------------------------------------


def recommend(
    db: DbOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this kind (repeatable): scale_down, scale_up, consolidate, "
            "mig_or_share, right_size, reclaim_idle"
        ),
    ] = None,
    idle_threshold: IdleOpt = None,
    cluster: ClusterOpt = None,
    node: NodeOpt = None,
    namespace: NamespaceOpt = None,
    user: UserOpt = None,
    gpu_model: ModelOpt = None,
    workload_kind: KindOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """What to change, with the evidence, expected monthly saving and confidence."""
    from gpufleet.analysis.recommend import recommend as find
    from gpufleet.analysis.request import kinds_of
    from gpufleet.analysis.wire import to_wire

    window = _window(start, end)
    idle_pct = _idle(idle_threshold, config)
    scope = _scope(
        cluster=cluster,
        node=node,
        namespace=namespace,
        user=user,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    kinds = _run(lambda: kinds_of(kind))
    prices = _prices(config)
    with _store(db, config) as store:
        found = _run(
            lambda: find(
                store,
                window,
                scope=scope,
                idle_threshold_pct=idle_pct,
                prices=prices,
                kinds=kinds,
            )
        )
    if json_out:
        print_json(to_wire(found))
        return
    console.print(
        f"[bold]Recommendations[/] {escape(window.label())}: "
        f"{len(found.recommendations)} found, "
        f"{_usd(found.total_monthly_saving_usd)}/month in all",
        highlight=False,
    )
    _print_recommendations(found.recommendations)
    if found.recommendations:
        console.print(
            "\nexecute one (a dry run unless --run): "
            f"gpufleet execute {escape(found.recommendations[0].id)}",
            highlight=False,
        )


def execute(
    ids: Annotated[list[str], typer.Argument(help="Recommendation ids (from recommend)")],
    db: DbOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    run: Annotated[
        bool, typer.Option("--run", help="Really run the actions (default: a dry run)")
    ] = False,
    requested_by: Annotated[
        str | None, typer.Option(help="Who asks (logged; default: your user name)")
    ] = None,
    idle_threshold: IdleOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Execute recommendations through the configured executor; logged in the store."""
    from gpufleet.agent.executor import ExecutionRefusedError, Executor
    from gpufleet.analysis.recommend import recommend as find
    from gpufleet.analysis.request import pick_recommendations
    from gpufleet.analysis.wire import to_wire
    from gpufleet.store import open_store

    settings = settings_from(config, db=db)
    window = _window(start, end)
    idle_pct = settings.idle_threshold_pct if idle_threshold is None else idle_threshold
    reader = open_for_reading(db, config)
    reader.close()  # only checks that the database exists; the executor writes to it
    store = guarded(lambda: open_store(settings.db, retention=settings.retention.to_retention()))
    try:
        found = _run(
            lambda: find(
                store, window, idle_threshold_pct=idle_pct, prices=settings.prices.to_table()
            )
        )
        chosen = _run(lambda: pick_recommendations(found, ids))
        who = requested_by or f"cli:{getpass.getuser()}"
        try:
            done = Executor(store, settings.executor).execute(
                chosen, requested_by=who, dry_run=not run
            )
        except ExecutionRefusedError as exc:
            fail(str(exc))
    finally:
        store.close()
    if json_out:
        print_json(
            {"dry_run": not run, "executor": settings.executor.kind, "executions": to_wire(done)}
        )
        return
    table = _table(
        "dry run: nothing was changed" if not run else "executions",
        "id",
        "kind",
        "executor",
        "status",
        "detail",
    )
    for e in done:
        table.add_row(
            *(escape(v) for v in (e.recommendation_id, e.kind, e.executor, e.status, e.detail))
        )
    console.print(table)
    if any(e.status == "failed" for e in done):
        raise typer.Exit(1)


def executions(
    db: DbOpt = None,
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 20,
    recommendation_id: Annotated[str | None, typer.Option(help="Only this recommendation")] = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """The execution log: who asked for which action, when, and what happened."""
    from gpufleet.agent.executor import DRY_RUN_EXECUTOR
    from gpufleet.analysis.wire import iso, to_wire

    if limit < 1:
        fail(f"--limit must be at least 1; got {limit}")
    store = open_for_reading(db, config)
    try:
        rows = guarded(lambda: store.executions(limit=limit, recommendation_id=recommendation_id))
    finally:
        store.close()
    if json_out:
        print_json({"count": len(rows), "executions": to_wire(rows)})
        return
    if not rows:
        console.print("no executions logged yet (gpufleet execute ID runs one)")
        return
    table = _table("executions", "when", "id", "kind", "by", "executor", "status", "detail")
    for e in rows:
        # A dry run's executor is "dry-run" already; older logs name the executor instead.
        executor = e.executor
        if e.dry_run and executor != DRY_RUN_EXECUTOR:
            executor += " (dry run)"
        table.add_row(
            iso(e.requested_s) or "",
            *(
                escape(v)
                for v in (e.recommendation_id, e.kind, e.requested_by, executor, e.status, e.detail)
            ),
        )
    console.print(table)
