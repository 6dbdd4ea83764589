"""``gpufleet allocate gpus | leases | renew | release``: GPU leases from a running hub.

``allocate gpus`` prints the lease and the environment to run under; with ``--env`` only
``export`` lines, so ``eval "$(gpufleet allocate gpus --gpus 2 --env)"`` sets
``CUDA_VISIBLE_DEVICES`` (by GPU uuid) and ``CUDA_DEVICE_ORDER`` in the shell.
"""

from __future__ import annotations

import shlex
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.allocate_cmd import allocate_app
from gpufleet.cli.common import console, fail, get_json, print_json, send_json

DEFAULT_HUB = "http://127.0.0.1:8100"

UrlOpt = Annotated[str, typer.Option("--url", envvar="GPUFLEET_HUB_URL", help="The hub's URL.")]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="GPUFLEET_HUB_TOKEN", help="A token with the submit scope."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def need_token(token: str | None) -> str:
    if not token:
        fail("this needs a hub token: pass --token or set GPUFLEET_HUB_TOKEN")
    return token


def parse_pairs(pairs: list[str] | None, flag: str = "--label") -> dict[str, str]:
    """``key=value`` options as a dict, or a one-line error naming ``flag``."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"{flag} must be key=value, got {pair!r}")
        out[key] = value
    return out


def _until(expires_s: float) -> str:
    left = expires_s - time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(expires_s))
    return f"{stamp} (in {left / 60:.0f} min)" if left > 0 else stamp


def _show(lease: dict[str, Any]) -> None:
    gpus = ", ".join(lease["gpus"]) or "none (CPU only)"
    share = "" if lease["gpu_fraction"] in (0.0, 1.0) else f" ({lease['gpu_fraction']:g} of it)"
    console.print(
        f"lease [bold]{escape(lease['id'])}[/] on {escape(lease['cluster'])}/"
        f"{escape(lease['node'])}: {escape(gpus)}{share}, {lease['state']} until "
        f"{_until(lease['expires_s'])}"
    )
    for key, value in lease["env"].items():
        console.print(f"  {key}={escape(value)}", highlight=False)


@allocate_app.command("gpus")
def gpus_cmd(
    gpus: Annotated[int, typer.Option("--gpus", help="Whole GPUs, on one node.")] = 1,
    fraction: Annotated[
        float | None,
        typer.Option("--fraction", help="A share of one GPU (0-1), shared and not isolated."),
    ] = None,
    gpu_memory: Annotated[
        int | None,
        typer.Option(
            "--gpu-memory",
            help="MiB per GPU: free memory needed (whole GPUs) or the budget (--fraction).",
        ),
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Acceptable GPU model (repeatable).")
    ] = None,
    min_cc: Annotated[
        str | None, typer.Option("--min-cc", help="Least compute capability, e.g. 8.0.")
    ] = None,
    cpu: Annotated[float | None, typer.Option("--cpu", help="CPU cores to hold.")] = None,
    memory: Annotated[int | None, typer.Option("--memory", help="Host memory MiB.")] = None,
    zone: Annotated[str | None, typer.Option("--zone", help="Preferred zone.")] = None,
    strict_zone: Annotated[bool, typer.Option("--strict-zone", help="Only --zone.")] = False,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Node label key=value (repeatable).")
    ] = None,
    pool: Annotated[str | None, typer.Option("--pool", help="Only this pool.")] = None,
    priority: Annotated[int, typer.Option("--priority")] = 0,
    ttl: Annotated[float, typer.Option("--ttl", help="Seconds until it expires.")] = 3600.0,
    strategy: Annotated[
        str | None,
        typer.Option(
            "--strategy",
            help="best_fit, least_loaded, round_robin, weighted, geographic or random.",
        ),
    ] = None,
    min_free_memory: Annotated[
        int | None, typer.Option("--min-free-memory", help="MiB free on each GPU now.")
    ] = None,
    max_util: Annotated[
        float | None, typer.Option("--max-util", help="GPU utilization % at most, now.")
    ] = None,
    include_busy: Annotated[
        bool,
        typer.Option("--include-busy", help="Take GPUs running processes the hub did not give."),
    ] = False,
    serves_model: Annotated[
        str | None, typer.Option("--serves-model", help="Only nodes serving this model.")
    ] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Makes a retry return the same lease.")
    ] = None,
    env: Annotated[bool, typer.Option("--env", help="Print only export lines.")] = False,
    url: UrlOpt = DEFAULT_HUB,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Lease GPUs from the hub (exit 1 with the reason when nothing fits now or a group's
    quota is used up, 2 on other errors)."""
    body: dict[str, Any] = {
        "gpus": gpus,
        "gpu_fraction": fraction,
        "gpu_memory_mib": gpu_memory,
        "gpu_model": model or None,
        "min_compute_capability": min_cc,
        "cpu_cores": cpu,
        "memory_mib": memory,
        "zone": zone,
        "strict_zone": strict_zone or None,
        "labels": parse_pairs(label) or None,
        "pool": pool,
        "priority": priority,
        "ttl_s": ttl,
        "strategy": strategy,
        "min_free_memory_mib": min_free_memory,
        "max_gpu_utilization": max_util,
        "include_busy": include_busy or None,
        "serves_model": serves_model,
        "request_id": request_id,
    }
    body = {k: v for k, v in body.items() if v is not None}
    lease = send_json(
        "POST", url, "/fleet/v1/leases", body, token=need_token(token), exit_codes={409: 1}
    )
    if env:
        for key, value in lease["env"].items():
            typer.echo(f"export {key}={shlex.quote(value)}")
    elif json_out:
        print_json(lease)
    else:
        _show(lease)


@allocate_app.command("leases")
def leases_cmd(
    state: Annotated[
        str | None, typer.Option("--state", help="active, released, expired or reclaimed.")
    ] = "active",
    all_states: Annotated[bool, typer.Option("--all", help="Every state.")] = False,
    url: UrlOpt = DEFAULT_HUB,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The hub's leases (active ones unless --state or --all)."""
    params = {"state": None if all_states else state}
    data = get_json(url, "/fleet/v1/leases", params, token=need_token(token))
    if json_out:
        print_json(data)
        return
    table = Table("lease", "holder", "node", "gpus", "state", "expires", "group")
    for x in data["leases"]:
        table.add_row(
            escape(x["id"]),
            escape(x["holder"]),
            escape(f"{x['cluster']}/{x['node']}"),
            str(len(x["gpus"])) if x["gpu_fraction"] in (0.0, 1.0) else f"{x['gpu_fraction']:g}",
            x["state"],
            _until(x["expires_s"]),
            escape(x["group"] or "-"),
        )
    console.print(table if data["leases"] else "no leases")


@allocate_app.command("renew")
def renew_cmd(
    lease_id: Annotated[str, typer.Argument(help="The lease's id (ls_...).")],
    ttl: Annotated[
        float | None, typer.Option("--ttl", help="Seconds from now (default: its own TTL).")
    ] = None,
    url: UrlOpt = DEFAULT_HUB,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Push a lease's expiry out."""
    body = {} if ttl is None else {"ttl_s": ttl}
    lease = send_json(
        "POST", url, f"/fleet/v1/leases/{lease_id}/renew", body, token=need_token(token)
    )
    print_json(lease) if json_out else _show(lease)


@allocate_app.command("release")
def release_cmd(
    lease_id: Annotated[str, typer.Argument(help="The lease's id (ls_...).")],
    url: UrlOpt = DEFAULT_HUB,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Give a lease's GPUs back (releasing twice is harmless)."""
    lease = send_json("DELETE", url, f"/fleet/v1/leases/{lease_id}", None, token=need_token(token))
    if json_out:
        print_json(lease)
    elif lease["released_now"]:
        console.print(f"released {escape(lease_id)}")
    else:
        console.print(f"{escape(lease_id)} had ended already ({lease['state']})")
