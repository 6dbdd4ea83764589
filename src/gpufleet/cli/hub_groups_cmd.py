"""``gpufleet hub group ...`` and ``gpufleet hub pool ...``: swarm groups and resource
pools of a running hub (an admin token changes them; a read token lists them)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.common import console, get_json, print_json, send_json
from gpufleet.cli.lease_cmd import DEFAULT_HUB, JsonOpt, UrlOpt, need_token

group_app = typer.Typer(help="Swarm groups: members (tokens), pools, quotas.", no_args_is_help=True)
pool_app = typer.Typer(help="Resource pools: named sets of nodes.", no_args_is_help=True)

AdminTokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="GPUFLEET_HUB_TOKEN", help="An admin token (read to list)."),
]


def _show_group(g: dict[str, Any]) -> None:
    quota = (
        "no GPU quota" if g["max_gpus"] is None else f"{g['gpus_in_use']:g}/{g['max_gpus']:g} GPUs"
    )
    pools = ", ".join(g["pools"]) or "every pool"
    console.print(
        f"group [bold]{escape(g['name'])}[/]: {len(g['members'])}/{g['max_members']} members, "
        f"{escape(pools)}, {quota}"
    )


@group_app.command("create")
def group_create(
    name: Annotated[str, typer.Argument(help="The group's name.")],
    max_members: Annotated[int, typer.Option("--max-members")] = 10,
    pool: Annotated[
        list[str] | None, typer.Option("--pool", help="An existing pool members may use (repeat).")
    ] = None,
    max_gpus: Annotated[float | None, typer.Option("--max-gpus", help="GPUs held at once.")] = None,
    max_queued: Annotated[int | None, typer.Option("--max-queued", help="Tasks waiting.")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    url: UrlOpt = DEFAULT_HUB,
    token: AdminTokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a group (members are added with ``hub group add``)."""
    body = {
        "name": name,
        "max_members": max_members,
        "pools": pool or [],
        "max_gpus": max_gpus,
        "max_queued": max_queued,
        "description": description,
    }
    g = send_json("POST", url, "/fleet/v1/groups", body, token=need_token(token))
    print_json(g) if json_out else _show_group(g)


@group_app.command("list")
def group_list(
    url: UrlOpt = DEFAULT_HUB, token: AdminTokenOpt = None, json_out: JsonOpt = False
) -> None:
    """Every group with its members, pools and quotas."""
    data = get_json(url, "/fleet/v1/groups", token=need_token(token))
    if json_out:
        print_json(data)
        return
    table = Table("group", "members", "pools", "GPUs in use", "max GPUs", "max queued")
    for g in data["groups"]:
        table.add_row(
            escape(g["name"]),
            f"{len(g['members'])}/{g['max_members']}",
            escape(", ".join(g["pools"]) or "every pool"),
            f"{g['gpus_in_use']:g}",
            "-" if g["max_gpus"] is None else f"{g['max_gpus']:g}",
            "-" if g["max_queued"] is None else str(g["max_queued"]),
        )
    console.print(table if data["groups"] else "no groups")


@group_app.command("add")
def group_add(
    name: Annotated[str, typer.Argument(help="The group.")],
    token_id: Annotated[str, typer.Argument(help="The member's token id (hub token list).")],
    url: UrlOpt = DEFAULT_HUB,
    token: AdminTokenOpt = None,
) -> None:
    """Put a token in a group (join)."""
    g = send_json(
        "POST",
        url,
        f"/fleet/v1/groups/{name}/members",
        {"token_id": token_id},
        token=need_token(token),
    )
    _show_group(g)


@group_app.command("remove")
def group_remove(
    name: Annotated[str, typer.Argument(help="The group.")],
    token_id: Annotated[str, typer.Argument(help="The member's token id.")],
    url: UrlOpt = DEFAULT_HUB,
    token: AdminTokenOpt = None,
) -> None:
    """Take a token out of a group (leave; a token may remove itself)."""
    g = send_json(
        "DELETE", url, f"/fleet/v1/groups/{name}/members/{token_id}", None, token=need_token(token)
    )
    _show_group(g)


@group_app.command("delete")
def group_delete(
    name: Annotated[str, typer.Argument(help="The group.")],
    url: UrlOpt = DEFAULT_HUB,
    token: AdminTokenOpt = None,
) -> None:
    """Delete a group (its leases go on, uncharged from now on)."""
    send_json("DELETE", url, f"/fleet/v1/groups/{name}", None, token=need_token(token))
    console.print(f"deleted group {escape(name)}")


@pool_app.command("set")
def pool_set(
    name: Annotated[str, typer.Argument(help="The pool.")],
    node: Annotated[
        list[str] | None,
        typer.Option("--node", help="cluster/node to make a member (repeatable; exactly these)."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    url: UrlOpt = DEFAULT_HUB,
    token: AdminTokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create or describe a pool; with --node, make exactly those nodes its members."""
    body: dict[str, Any] = {"description": description}
    if node is not None:
        body["nodes"] = node
    p = send_json("PUT", url, f"/fleet/v1/pools/{name}", body, token=need_token(token))
    if json_out:
        print_json(p)
    else:
        console.print(
            f"pool {escape(p['name'])}: {', '.join(p['nodes']) or 'no nodes'}, {p['gpus']} GPUs"
        )


@pool_app.command("list")
def pool_list(
    url: UrlOpt = DEFAULT_HUB, token: AdminTokenOpt = None, json_out: JsonOpt = False
) -> None:
    """Every pool with its nodes and GPUs."""
    data = get_json(url, "/fleet/v1/pools", token=need_token(token))
    if json_out:
        print_json(data)
        return
    table = Table("pool", "nodes", "GPUs", "leased", "description")
    for p in data["pools"]:
        table.add_row(
            escape(p["name"]),
            escape(", ".join(p["nodes"]) or "-"),
            str(p["gpus"]),
            f"{p['gpus_leased']:g}",
            escape(p["description"] or "-"),
        )
    console.print(table if data["pools"] else "no pools")


@pool_app.command("delete")
def pool_delete(
    name: Annotated[str, typer.Argument(help="The pool.")],
    url: UrlOpt = DEFAULT_HUB,
    token: AdminTokenOpt = None,
) -> None:
    """Delete a pool; its nodes are left in no pool."""
    send_json("DELETE", url, f"/fleet/v1/pools/{name}", None, token=need_token(token))
    console.print(f"deleted pool {escape(name)}")
