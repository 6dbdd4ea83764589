"""``/fleet/v1/tasks``: the task queue. Submitting and cancelling need ``submit`` (cancel:
the token that submitted, or an admin); agents report on the parts they run with their
``node-join`` token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gpufleet.api.routes.fleet import HubDep, JsonBody, NodeToken, SubmitToken
from gpufleet.api.routes.fleet_alloc import AnyReader
from gpufleet.fleet.errors import HubRequestError

router = APIRouter(prefix="/fleet/v1", tags=["fleet tasks"])

TASK_STATES = ("queued", "placed", "running", "succeeded", "failed", "cancelled")


@router.post("/tasks", status_code=201)
def submit(hub: HubDep, body: JsonBody, token: SubmitToken) -> dict[str, Any]:
    """Queue a task: ``command`` (argv list), ``parts`` (nodes, default 1), ``priority``,
    ``timeout_s``, ``env``, ``name`` and the lease fields each part is placed with (``gpus``,
    ``gpu_memory_mib``, ``gpu_model``, ``pool``, ...)."""
    task = hub.tasks.submit(body, token)
    hub.tasks.schedule()
    return hub.tasks.view(task)


@router.get("/tasks")
def tasks(
    hub: HubDep,
    _token: AnyReader,
    state: Annotated[str | None, Query(description=" | ".join(TASK_STATES))] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> dict[str, Any]:
    """Tasks, newest first, with their parts and state as a whole."""
    if state is not None and state not in TASK_STATES:
        raise HubRequestError(f"unknown state {state!r}; use one of: {', '.join(TASK_STATES)}")
    views = [hub.tasks.view(t) for t in hub.store.tasks(limit=limit)]
    if state is not None:
        views = [v for v in views if v["state"] == state]
    return {"tasks": views}


@router.get("/tasks/{task_id}")
def task(hub: HubDep, task_id: str, _token: AnyReader) -> dict[str, Any]:
    return hub.tasks.view(hub.tasks.get(task_id))


@router.post("/tasks/{task_id}/cancel")
def cancel(hub: HubDep, task_id: str, token: SubmitToken) -> dict[str, Any]:
    """Cancel the parts not yet ended: their leases end, agents stop their processes."""
    task = hub.tasks.cancel(task_id, token)
    hub.tasks.schedule()  # its GPUs may let a waiting task start
    return hub.tasks.view(task)


@router.post("/tasks/{task_id}/parts/{part}/report")
def report(
    hub: HubDep, task_id: str, part: int, body: JsonBody, _token: NodeToken
) -> dict[str, Any]:
    """An agent's report on a part it runs (``cluster``, ``node``, ``state``, ``exit_code``,
    ``output``, ``error``)."""
    answer = hub.tasks.report(task_id, part, body)
    if answer["state"] != "running":
        hub.tasks.schedule()  # the part's GPUs are free again
    return answer
