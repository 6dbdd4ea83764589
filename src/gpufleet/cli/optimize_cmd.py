"""``gpufleet recommend``, ``gpufleet execute`` and ``gpufleet executions``: what to change,
running it through the configured executor, and the execution log (the CLI twin of the API's
``/optimize/*``)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.markup import escape

from gpufleet.cli.analysis_opts import (
    ClusterOpt,
    ConfigOpt,
    DbOpt,
    FromOpt,
    IdleOpt,
    JsonOpt,
    KindOpt,
    ModelOpt,
    NamespaceOpt,
    NodeOpt,
    ToOpt,
    UserOpt,
    idle_from,
    memo_store,
    new_table,
    prices_from,
    print_recommendations,
    run_guarded,
    scope_from_flags,
    usd,
    window_from_flags,
)
from gpufleet.cli.common import console, fail, guarded, open_for_reading, print_json, settings_from


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
    kinds = run_guarded(lambda: kinds_of(kind))
    prices = prices_from(config)
    with memo_store(db, config) as store:
        found = run_guarded(
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
        f"{usd(found.total_monthly_saving_usd)}/month in all",
        highlight=False,
    )
    print_recommendations(found.recommendations)
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
    window = window_from_flags(start, end)
    idle_pct = settings.idle_threshold_pct if idle_threshold is None else idle_threshold
    reader = open_for_reading(db, config)
    reader.close()  # only checks that the database exists; the executor writes to it
    store = guarded(lambda: open_store(settings.db, retention=settings.retention.to_retention()))
    try:
        found = run_guarded(
            lambda: find(
                store, window, idle_threshold_pct=idle_pct, prices=settings.prices.to_table()
            )
        )
        chosen = run_guarded(lambda: pick_recommendations(found, ids))
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
    table = new_table(
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
    table = new_table("executions", "when", "id", "kind", "by", "executor", "status", "detail")
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
