"""``gpufleet kvcache``: KV-cache hit rates, pressure and LMCache settings of vLLM servers.

Three places to read from, in this order:

- ``--url``: a running agent's ``/lmcache/*`` (its scrapes and settings);
- ``--db``: the scrapes an agent stored (over ``--window``);
- live: ``--vllm-url`` / ``--lmcache-url`` (else the ``[kvcache]`` settings) scraped now, twice,
  ``--over`` apart, so rates come from counter deltas (``--over 0``: one scrape, counters
  since each server started).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.common import console, fail, get_json, guarded, print_json, send_json
from gpufleet.cli.kvcache_read import (
    db_summary,
    host_resources,
    kv_settings,
    live_summary,
    metrics_data,
    recommend_data,
)

kvcache_app = typer.Typer(
    help="KV-cache of vLLM and LMCache: hit rates, KV pressure, TTFT, LMCache settings. "
    "Reads a running agent (--url), its stored scrapes (--db), or the servers live "
    "(--vllm-url / --lmcache-url, two scrapes --over apart).",
    no_args_is_help=True,
)

VllmUrl = Annotated[
    list[str] | None,
    typer.Option("--vllm-url", help="live: a vLLM server or its /metrics (repeatable)"),
]
LmcacheUrl = Annotated[
    list[str] | None,
    typer.Option("--lmcache-url", help="live: an LMCache MP server's /metrics (repeatable)"),
]
Over = Annotated[
    str,
    typer.Option(
        "--over", help="live: seconds between the two scrapes rates come from (10s; 0: one)"
    ),
]
Db = Annotated[
    str | None,
    typer.Option("--db", help="read an agent's stored scrapes (SQLite path or postgresql://)"),
]
Url = Annotated[str | None, typer.Option("--url", help="a running agent, http://host:8003")]
Window = Annotated[str, typer.Option("--window", help="with --db / --url: how far back (15m)")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (the API's shape).")]
Config = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]


def _num(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def _of(hits: Any, queries: Any) -> str:
    return f"{_num(hits, digits=0)} of {_num(queries, digits=0)} tokens"


def _bytes(value: Any) -> str:
    return "-" if value is None else f"{value / 2**30:.1f} GiB"


@kvcache_app.command("status")
def status(
    url: Url = None,
    db: Db = None,
    vllm_url: VllmUrl = None,
    lmcache_url: LmcacheUrl = None,
    json_out: Json = False,
    config: Config = None,
) -> None:
    """Sources: reachable or not, last scrape, metric-name generations (vllm-v1, lmcache-mp...),
    models."""
    if url:
        data = get_json(url, "/lmcache/status")
        sources = data["sources"]
    else:
        sources = metrics_data(None, db, vllm_url, lmcache_url, "0", "1h", config)["sources"]
        data = {"sources": sources}
    if json_out:
        print_json(data)
        return
    table = Table(box=None, header_style="bold")
    for col in ("url", "kind", "reachable", "last scrape", "names", "models", "error"):
        table.add_column(col)
    for s in sources:
        reach = {True: "yes", False: "NO", None: "-"}[s["reachable"]]
        table.add_row(
            *(
                escape(str(v))
                for v in (
                    s["url"],
                    s["kind"],
                    reach,
                    s["last_scrape"] or "-",
                    ", ".join(s["name_sets"]) or "-",
                    ", ".join(s["models"]) or "-",
                    s["error"] or "",
                )
            )
        )
    console.print(table)


@kvcache_app.command("metrics")
def metrics(
    url: Url = None,
    db: Db = None,
    vllm_url: VllmUrl = None,
    lmcache_url: LmcacheUrl = None,
    over: Over = "10s",
    window: Window = "15m",
    json_out: Json = False,
    config: Config = None,
) -> None:
    """Hit rates (from counter deltas), KV usage, preemptions, queues, TTFT p50/p90/p99."""
    d = metrics_data(url, db, vllm_url, lmcache_url, over, window, config)
    if d["basis"] == "none":
        # Nothing answered: say why (as optimize does) instead of a table of dashes.
        if json_out:
            print_json(d)
        why = "; ".join(f"{s['url']}: {s['error']}" for s in d["sources"] if s.get("error"))
        fail(f"no vLLM or LMCache source answered in the window{': ' + why if why else ''}")
    if json_out:
        print_json(d)
        return
    rows = [
        (
            "vLLM prefix-cache hit rate",
            _num(d["prefix_hit_rate_pct"], " %"),
            _of(d["prefix_hits_tokens"], d["prefix_queries_tokens"]),
        ),
        (
            "external (LMCache) hit rate",
            _num(d["external_hit_rate_pct"], " %"),
            _of(d["external_hits_tokens"], d["external_queries_tokens"]),
        ),
        ("LMCache retrieve hit rate", _num(d["lmcache_hit_rate_pct"], " %"), ""),
        ("LMCache lookup hit rate", _num(d["lmcache_lookup_hit_rate_pct"], " %"), ""),
        (
            "GPU KV usage (mean / max)",
            f"{_num(d['kv_usage_pct'], ' %')} / {_num(d['kv_usage_max_pct'], ' %')}",
            "",
        ),
        (
            "preemptions",
            _num(d["preemptions"], digits=0),
            f"{_num(d['preemptions_per_s'], '/s', 3)}",
        ),
        (
            "requests running / waiting",
            f"{_num(d['requests_running'], digits=0)} / {_num(d['requests_waiting'], digits=0)}",
            "",
        ),
        (
            "TTFT p50 / p90 / p99",
            " / ".join(_num(d[k], " s", 3) for k in ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s")),
            f"{_num(d['ttft_requests'], digits=0)} requests",
        ),
        (
            "LMCache CPU / disk tier",
            f"{_bytes(d['lmcache_cpu_usage_bytes'])} / {_bytes(d['lmcache_disk_usage_bytes'])}",
            "",
        ),
        ("LMCache evictions", _num(d["lmcache_evictions"], digits=0), ""),
    ]
    table = Table(
        box=None, header_style="bold", title=escape(f"basis: {d['basis']} ({d['window']})")
    )
    for col in ("reading", "value", "detail"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    console.print(table)


ConfigPath = Annotated[
    str | None,
    typer.Option("--config-path", help="the LMCache YAML in use (else kvcache.config_path)"),
]
BlockSize = Annotated[
    int | None, typer.Option("--block-size", min=1, help="vLLM's KV block size (16)")
]
RemoteUrl = Annotated[
    str | None, typer.Option("--remote-url", help="a shared tier, lm://host:port")
]
Mode = Annotated[str | None, typer.Option("--mode", help="in_process (LMCacheConnectorV1) | mp")]


@kvcache_app.command("optimize")
def optimize_cmd(
    url: Url = None,
    db: Db = None,
    vllm_url: VllmUrl = None,
    lmcache_url: LmcacheUrl = None,
    over: Over = "10s",
    window: Window = "15m",
    config_path: ConfigPath = None,
    block_size: BlockSize = None,
    remote_url: RemoteUrl = None,
    mode: Mode = None,
    json_out: Json = False,
    config: Config = None,
) -> None:
    """Recommend LMCache settings (chunk_size, CPU / disk / remote tiers) with the reasoning
    and the GPU memory they save. Host memory and disk are this machine's (or the agent's
    with --url)."""
    d = recommend_data(
        url,
        db,
        vllm_url,
        lmcache_url,
        over,
        window,
        config,
        config_path,
        block_size,
        remote_url,
        mode,
    )
    if json_out:
        print_json(d)
        return
    console.print(f"[bold]{escape(d['verdict'])}[/]: {escape(d['summary'])}")
    saved = d["memory_saved_gb"]
    console.print(
        escape(
            f"memory saved: {'-' if saved is None else f'{saved:g} GiB'} "
            f"({d['memory_saved_basis']})"
        )
    )
    for line in d["reasoning"]:
        console.print(escape(f"  - {line}"), soft_wrap=True)
    if d["changes"]:
        table = Table(box=None, header_style="bold")
        for col in ("setting", "now", "recommended", "why"):
            table.add_column(col)
        for c in d["changes"]:
            table.add_row(*(escape(str(c[k])) for k in ("key", "current", "recommended", "reason")))
        console.print(table)
    console.print(escape(f"vLLM: {d['vllm_command']}"), soft_wrap=True)  # copy-pasteable


def _parse_sets(items: list[str] | None) -> dict[str, Any] | None:
    import yaml

    if not items:
        return None
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set must be key=value (e.g. max_local_cpu_size=20), got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


@kvcache_app.command("configure")
def configure_cmd(
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="key=value LMCache setting (repeatable)")
    ] = None,
    apply_recommendation: Annotated[
        bool, typer.Option("--apply-recommendation", help="write what optimize recommends")
    ] = False,
    path: Annotated[
        str | None, typer.Option("--path", help="the YAML to write (else kvcache.config_path)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="validate and show; write nothing")
    ] = False,
    url: Url = None,
    db: Db = None,
    vllm_url: VllmUrl = None,
    lmcache_url: LmcacheUrl = None,
    over: Over = "10s",
    window: Window = "15m",
    block_size: BlockSize = None,
    mode: Mode = None,
    json_out: Json = False,
    config: Config = None,
) -> None:
    """Write LMCache's YAML config (validated; the previous file kept as .bak) and print the
    vLLM flags that load it. With --url the agent writes it, on its machine."""
    from gpufleet.kvcache.actions import configure
    from gpufleet.kvcache.config_file import kv_transfer_config, vllm_command

    settings = _parse_sets(set_)
    if settings is None and not apply_recommendation:
        fail("give --set key=value (repeatable) or --apply-recommendation")
    if url:
        body = {
            "settings": settings,
            "apply_recommendation": apply_recommendation,
            "window": window,
            "path": path,
            "mode": mode,
            "block_size": block_size,
            "dry_run": dry_run,
        }
        d: dict[str, Any] = send_json("POST", url, "/lmcache/configure", body)
    else:
        kv = kv_settings(config).kvcache
        rec = None
        if apply_recommendation:
            from gpufleet.kvcache.actions import optimize

            summary = (
                db_summary(db, window, config)
                if db
                else live_summary(vllm_url, lmcache_url, over, config)
            )
            rec = guarded(
                lambda: optimize(
                    summary,
                    host_resources(kv.disk_path),
                    config_path=path or kv.config_path,
                    block_size=block_size or kv.block_size,
                    disk_path=kv.disk_path,
                    mode=mode or kv.mode,
                )
            )
        written = guarded(
            lambda: configure(
                path or kv.config_path,
                settings=settings,
                recommendation=rec,
                block_size=block_size or kv.block_size,
                dry_run=dry_run,
            )
        )
        the_mode = rec.mode if rec is not None else mode or kv.mode or "in_process"
        d = {
            "path": written.path,
            "written": written.written,
            "backup_path": written.backup_path,
            "settings": written.settings,
            "yaml": written.yaml_text,
            "kv_transfer_config": kv_transfer_config(the_mode),
            "env": {"LMCACHE_CONFIG_FILE": written.path},
            "vllm_command": vllm_command(written.path, the_mode),
            "verdict": None if rec is None else rec.verdict,
        }
    if json_out:
        print_json(d)
        return
    done = "wrote" if d["written"] else "would write (dry run)"
    console.print(escape(f"{done} {d['path']}"))
    if d["backup_path"]:
        console.print(escape(f"previous version kept as {d['backup_path']}"))
    console.print(escape(d["yaml"].rstrip()))
    console.print(escape(f"vLLM: {d['vllm_command']}"), soft_wrap=True)  # copy-pasteable
