"""``gpufleet submit ... -- COMMAND`` and ``gpufleet tasks [show ID | cancel ID]``: the hub's
task queue. ``submit --wait`` follows the task until it ends, prints each part's output and
exits with the task's result (0 when every part succeeded, else the first non-zero exit
code, 1 when a part failed without one)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gpufleet.cli.common import console, err_console, fail, get_json, print_json, send_json
from gpufleet.cli.lease_cmd import (
    DEFAULT_HUB,
    JsonOpt,
    TokenOpt,
    UrlOpt,
    need_token,
    parse_pairs,
)

tasks_app = typer.Typer(
    help="The hub's task queue: list tasks, show one with its output, cancel one.",
    invoke_without_command=True,
)

FINAL = ("succeeded", "failed", "cancelled")


def submit(
    command: Annotated[list[str], typer.Argument(help="The command and its arguments (after --).")],
    gpus: Annotated[int, typer.Option("--gpus", help="Whole GPUs for each part.")] = 1,
    mem: Annotated[
        int | None, typer.Option("--mem", help="MiB of free memory each GPU needs.")
    ] = None,
    fraction: Annotated[
        float | None, typer.Option("--fraction", help="A share of one GPU (shared, not isolated).")
    ] = None,
    model: Annotated[list[str] | None, typer.Option("--model", help="GPU model.")] = None,
    parts: Annotated[int, typer.Option("--parts", help="Run on this many nodes at once.")] = 1,
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first.")] = 0,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds before a part is stopped.")
    ] = None,
    pool: Annotated[str | None, typer.Option("--pool")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="key=value.")] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="NAME=value for the command (repeatable).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    include_busy: Annotated[
        bool, typer.Option("--include-busy", help="Also GPUs running others' processes.")
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="Hand it to a scale-out engine of the hub (ray)."),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to the end.")] = False,
    url: UrlOpt = DEFAULT_HUB,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Queue COMMAND to run with GPUs on an agent started with --run-tasks."""
    body: dict[str, Any] = {
        "command": command,
        "gpus": gpus,
        "gpu_memory_mib": mem,
        "gpu_fraction": fraction,
        "gpu_model": model or None,
        "parts": parts,
        "priority": priority,
        "timeout_s": timeout,
        "pool": pool,
        "labels": parse_pairs(label) or None,
        "env": parse_pairs(env, "--env") or None,
        "name": name,
        "include_busy": include_busy or None,
        "engine": engine,
    }
    body = {k: v for k, v in body.items() if v is not None}
    auth = need_token(token)
    task = send_json("POST", url, "/fleet/v1/tasks", body, token=auth)
    if not wait:
        if json_out:
            print_json(task)
        else:
            console.print(
                f"task [bold]{escape(task['id'])}[/] {task['state']}; "
                f"follow it with `gpufleet tasks show {task['id']}`"
            )
        return
    err_console.print(f"task {task['id']} {task['state']}", highlight=False)
    last = task["state"]
    said: set[str] = set()
    while task["state"] not in FINAL:
        for p in task["parts"]:
            note = p["error"] or ""
            if p["state"] == "queued" and "waiting: " in note and note not in said:
                said.add(note)
                err_console.print(f"part {p['part']} {escape(note)}", highlight=False)
        time.sleep(1.0)
        task = get_json(url, f"/fleet/v1/tasks/{task['id']}", token=auth)
        if task["state"] != last:
            where = ", ".join(p["node"] or "-" for p in task["parts"])
            err_console.print(f"task {task['id']} {task['state']} ({where})", highlight=False)
            last = task["state"]
    if json_out:
        print_json(task)
    else:
        _print_outputs(task)
    raise typer.Exit(_exit_code(task))


def _exit_code(task: dict[str, Any]) -> int:
    if task["state"] == "succeeded":
        return 0
    for code in task["exit_codes"]:
        if code:
            return int(code) if 0 < code < 256 else 1
    return 1


def _print_outputs(task: dict[str, Any]) -> None:
    for p in task["parts"]:
        if len(task["parts"]) > 1:
            console.print(f"[bold]part {p['part']}[/] on {escape(p['node'] or '-')}: {p['state']}")
        if p["output"]:
            typer.echo(p["output"], nl=not p["output"].endswith("\n"))
        if p["error"]:
            err_console.print(f"part {p['part']}: {escape(p['error'])}", highlight=False)


@tasks_app.callback()
def tasks_list(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option("--state", help="queued, placed, running, succeeded, failed, cancelled."),
    ] = None,
    url: UrlOpt = DEFAULT_HUB,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The hub's tasks, newest first (without a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    data = get_json(url, "/fleet/v1/tasks", {"state": state}, token=need_token(token))
    if json_out:
        print_json(data)
        return
    table = Table("task", "name", "holder", "state", "parts", "nodes", "exit codes")
    for t in data["tasks"]:
        table.add_row(
            escape(t["id"]),
            escape(t["name"]),
            escape(t["holder"]),
            t["state"],
            f"{t['succeeded_parts']}/{len(t['parts'])} done",
            escape(", ".join(p["node"] or "-" for p in t["parts"])),
            ", ".join("-" if c is None else str(c) for c in t["exit_codes"]),
        )
    console.print(table if data["tasks"] else "no tasks")


@tasks_app.command("show")
def tasks_show(
    task_id: Annotated[str, typer.Argument(help="The task's id (tk_...).")],
    url: UrlOpt = DEFAULT_HUB,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """One task: its parts, where they ran, exit codes and output."""
    task = get_json(url, f"/fleet/v1/tasks/{task_id}", token=need_token(token))
    if json_out:
        print_json(task)
        return
    console.print(
        f"task [bold]{escape(task['id'])}[/] ({escape(task['name'])}, {escape(task['holder'])}): "
        f"{task['state']}; command: {escape(' '.join(task['command']))}"
    )
    _print_outputs(task)


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: Annotated[str, typer.Argument(help="The task's id (tk_...).")],
    url: UrlOpt = DEFAULT_HUB,
    token: TokenOpt = None,
) -> None:
    """Cancel a task: parts not yet ended stop, their GPUs go back."""
    task = send_json(
        "POST", url, f"/fleet/v1/tasks/{task_id}/cancel", None, token=need_token(token)
    )
    console.print(f"task {escape(task['id'])} {task['state']}")
    if task["state"] not in FINAL:
        fail(f"task {task_id} is {task['state']}")
