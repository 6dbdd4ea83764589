"""``gpufleet analyze ...``: utilization, trends, drill-down, waste, opportunities, report.

Thin wrappers over :mod:`gpufleet.analysis`: the window and scope are read the way the API
reads them (:mod:`gpufleet.analysis.request`), the numbers come from the analysis functions,
and ``--json`` prints exactly what the matching endpoint answers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from rich.markup import escape

from gpufleet.cli.analysis_opts import (
    BASIS_WORDS,
    ClusterOpt,
    ConfigOpt,
    DbOpt,
    FromOpt,
    GpuOpt,
    IdleOpt,
    JsonOpt,
    KindOpt,
    ModelOpt,
    NamespaceOpt,
    NodeOpt,
    ToOpt,
    UserOpt,
    WorkloadOpt,
    idle_from,
    memo_store,
    new_table,
    num,
    pct_of,
    prices_from,
    print_recommendations,
    run_guarded,
    scope_from_flags,
    usd,
    window_from_flags,
)
from gpufleet.cli.common import (
    console,
    fail,
    print_json,
)

T = TypeVar("T")

analyze_app = typer.Typer(
    help="Utilization, trends, drill-down, waste, opportunities and the report, from a store.",
    no_args_is_help=True,
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

    window = window_from_flags(start, end)
    idle_pct = idle_from(idle_threshold, config)
    scope = scope_from_flags(
        cluster=cluster,
        node=node,
        gpu=gpu,
        namespace=namespace,
        user=user,
        workload=workload,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    with memo_store(db, config) as store:
        result = run_guarded(
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
        f"{result.samples:,} {escape(BASIS_WORDS.get(result.samples_basis, 'readings'))})",
        highlight=False,
    )
    lines = [
        ("mean GPU utilization", num(result.mean_gpu_util_pct, suffix=" %")),
        ("p50 / p95", f"{num(result.p50_gpu_util_pct)} / {num(result.p95_gpu_util_pct)} %"),
        (
            "GPU memory mean / p95 / peak",
            f"{num(result.mean_mem_used_pct)} / "
            f"{num(result.p95_mem_used_pct)} / {num(result.peak_mem_used_pct)} %",
        ),
        ("allocation rate", pct_of(result.allocation_rate)),
        ("idle fraction", f"{pct_of(result.idle_fraction)} (< {idle_pct:g} %)"),
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
        ("throttled", pct_of(result.bottlenecks.throttled_fraction)),
    ]
    for name, value in lines:
        console.print(f"  {name:<30} {escape(value)}", highlight=False)
    if result.groups:
        table = new_table(
            escape(f"by {by}"), "key", "GPUs", "GPU-h", "alloc", "idle", "mean %", "p95 %"
        )
        for g in result.groups:
            table.add_row(
                escape(g.key),
                str(g.gpus),
                f"{g.gpu_hours:,.1f}",
                pct_of(g.allocation_rate),
                pct_of(g.idle_fraction),
                num(g.mean_gpu_util_pct),
                num(g.p95_gpu_util_pct),
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

    window = window_from_flags(start, end)
    idle_pct = idle_from(idle_threshold, config)
    scope = scope_from_flags(
        cluster=cluster,
        node=node,
        gpu=gpu,
        namespace=namespace,
        user=user,
        workload=workload,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    with memo_store(db, config) as store:
        result = run_guarded(
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
    table = new_table(
        escape(f"{series.metric} per {series.granularity}, {window.label()}"),
        "bucket",
        "value",
        "GPU-h",
    )
    for p in series.points:
        table.add_row(
            iso(p.start_s) or "",
            num(p.value, ".2f") + ("*" if p.partial else ""),
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
    after = window_from_flags(start, end)
    if (before_from is None) != (before_to is None):
        fail("give both --before-from and --before-to, or neither")
    before = (
        window_from_flags(before_from, before_to)
        if before_from is not None
        else Window(after.start_s - after.span_s, after.start_s)
    )
    scope = scope_from_flags(cluster=cluster, namespace=namespace, user=user)
    with memo_store(db, config) as store:
        result = run_guarded(
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

    window = window_from_flags(start, end)
    idle_pct = idle_from(idle_threshold, config)
    scope = scope_from_flags(
        cluster=cluster,
        node=node,
        gpu=gpu,
        namespace=namespace,
        user=user,
        workload=workload,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    prices = prices_from(config)
    with memo_store(db, config) as store:
        result = run_guarded(
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
        f"{usd(result.idle_allocated_cost_usd)} ({usd(result.monthly_idle_allocated_cost_usd)}"
        f"/month)\n  unallocated: {result.unallocated_gpu_hours:,.1f} GPU-h = "
        f"{usd(result.unallocated_cost_usd)} ({usd(result.monthly_unallocated_cost_usd)}/month)"
        f"\n  efficiency (used / allocated): {pct_of(result.efficiency)}",
        highlight=False,
    )
    if result.groups:
        table = new_table(
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
                usd(g.idle_allocated_cost_usd),
                usd(g.monthly_idle_allocated_cost_usd),
                pct_of(g.efficiency),
            )
        console.print(table)
    if result.top_wasters:
        table = new_table(
            "top wasters", "workload", "namespace", "gpus", "idle GPU-h", "idle", "per month"
        )
        for w in result.top_wasters:
            table.add_row(
                escape(w.workload),
                escape(w.namespace),
                escape(", ".join(w.gpus[:4])),
                f"{w.idle_gpu_hours:,.1f}",
                pct_of(w.idle_fraction),
                usd(w.monthly_idle_cost_usd),
            )
        console.print(table)
    if result.fallback_models:
        console.print(
            f"[yellow]priced at the fallback: {escape(', '.join(result.fallback_models))}[/]",
            highlight=False,
        )


# ---- analyze opportunities --------------------------------------------------------------


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

    window = window_from_flags(start, end)
    idle_pct = idle_from(idle_threshold, config)
    scope = scope_from_flags(
        cluster=cluster,
        node=node,
        namespace=namespace,
        user=user,
        gpu_model=gpu_model,
        workload_kind=workload_kind,
    )
    prices = prices_from(config)
    with memo_store(db, config) as store:
        found = run_guarded(
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
        f"GPU-h held idle ({usd(found.monthly_idle_allocated_cost_usd)}/month); "
        f"potential saving {usd(found.potential_monthly_saving_usd)}/month",
        highlight=False,
    )
    if found.under_utilized_workloads:
        table = new_table(f"workloads under {under:g} %", "workload", "GPU-h", "mean %", "idle")
        for g in found.under_utilized_workloads[:20]:
            table.add_row(
                escape(g.key),
                f"{g.gpu_hours:,.1f}",
                num(g.mean_gpu_util_pct),
                pct_of(g.idle_fraction),
            )
        console.print(table)
    print_recommendations(found.recommendations, verbose=False)


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
    window = window_from_flags(start, end, report=True)
    idle_pct = idle_from(idle_threshold, config)
    scope = scope_from_flags(
        cluster=cluster, namespace=namespace, gpu_model=gpu_model, workload_kind=workload_kind
    )
    prices = prices_from(config)
    with memo_store(db, config) as store:
        built = run_guarded(
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
