"""The hub's task queue: commands run by agents on leased GPUs (``gpufleet submit``).

A task is a command (an argv list, run without a shell) and the lease request each of its
``parts`` is placed with (one part per node; a task split over three nodes has three parts,
each with its own GPUs, told apart by ``GPUFLEET_TASK_PART`` / ``GPUFLEET_TASK_PARTS``).

Scheduling, every second and after each submit (:meth:`TaskQueue.schedule`):

* Parts wait in order of **effective priority**: the task's ``priority`` plus one for every
  ``aging_s`` (60 s) it has waited, so low-priority work is not starved forever; ties go to
  the older task.
* Each waiting part is placed with the lease strategy on nodes whose agent runs tasks (started
  with ``--run-tasks``); a part that does not fit now lets the next ones try (backfill),
  unless it has waited ``starve_after_s`` (300 s): then nothing behind it is placed until it
  is, so a large task cannot be passed over forever by small ones.
* Group quotas: a token's task is charged to its first group (by name); ``max_queued`` bounds
  that group's waiting tasks (409 at submit), ``max_gpus`` its leases (a part waits).

The chosen agent learns of its parts in its next heartbeat answer, runs each as a subprocess
with the lease's environment (``CUDA_VISIBLE_DEVICES`` by uuid, ``CUDA_DEVICE_ORDER``), and
reports ``running`` then ``succeeded`` / ``failed`` with the exit code and the output's tail;
the lease ends with the part. While a part runs, its node's heartbeats renew its lease.
When a node turns unreachable its leases are reclaimed and its placed or running parts go
back to the queue (at most ``max_attempts`` tries, 3), to be placed on another node: a part
may therefore run more than once (at-least-once), as with any scheduler that survives the
loss of a node. Cancelling ends the lease, and the agent stops the process.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gpufleet.fleet.errors import AuthError, HubRequestError
from gpufleet.fleet.lease_desk import LeaseDesk, NoCapacityError, lease_env
from gpufleet.fleet.lease_request import LeaseRequest, LeaseRequestError, lease_request_from_wire
from gpufleet.fleet.scaleout import Engine, EngineError
from gpufleet.store.hub_records import HubNode, TokenRecord
from gpufleet.store.task_records import FINAL_STATES, PartRecord, TaskRecord, TaskRecords

logger = logging.getLogger(__name__)

MAX_PARTS = 64
MAX_COMMAND_BYTES = 64 * 1024
MAX_OUTPUT_CHARS = 64 * 1024
"""The tail of a part's output the hub keeps."""
TASK_LEASE_TTL_S = 120.0
"""A task part's lease lives this long past its node's last heartbeat."""

_LEASE_FIELDS = frozenset(
    {
        "gpus",
        "gpu_fraction",
        "gpu_memory_mib",
        "gpu_model",
        "min_compute_capability",
        "cpu_cores",
        "memory_mib",
        "zone",
        "strict_zone",
        "labels",
        "pool",
        "strategy",
        "min_free_memory_mib",
        "max_gpu_utilization",
        "max_memory_utilization",
        "include_busy",
        "serves_model",
    }
)
_TASK_FIELDS = frozenset({"command", "name", "parts", "priority", "timeout_s", "env", "engine"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED_ENV = frozenset({"CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"})


def _task_state(parts: list[PartRecord]) -> str:
    states = {p.state for p in parts}
    if states <= {"succeeded"}:
        return "succeeded"
    if "cancelled" in states:
        return "cancelled"
    if states <= FINAL_STATES:
        return "failed"
    for state in ("running", "placed"):
        if state in states:
            return state
    return "queued"


WAITING = "waiting: "
"""Starts the note of why a queued part cannot be placed yet (in its ``error``)."""


@dataclass(frozen=True, slots=True)
class Placed:
    task_id: str
    part: int
    lease_id: str
    node: str


class TaskQueue:
    """Submit, schedule, report and cancel tasks over the hub's store.

    Args:
        store: the hub's store.
        leases: the hub's lease desk (tasks' parts are placed through it).
        clock: wall clock.
        runs_tasks: whether a node's agent takes tasks (it said so in its heartbeat).
    """

    def __init__(
        self,
        store: TaskRecords,
        leases: LeaseDesk,
        clock: Callable[[], float],
        *,
        aging_s: float = 60.0,
        starve_after_s: float = 300.0,
        max_attempts: int = 3,
        engines: Mapping[str, Engine] | None = None,
    ) -> None:
        self.engines = dict(engines or {})
        self.store = store
        self.leases = leases
        self.clock = clock
        self.aging_s = aging_s
        self.starve_after_s = starve_after_s
        self.max_attempts = max_attempts
        self._lock = threading.Lock()
        leases.outside_use = self._engine_gpus  # engine jobs count against group quotas

    def _engine_gpus(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for group, body in self.store.engine_requests_by_group():
            used[group] = used.get(group, 0.0) + _gpus_asked(lease_request_from_wire(body))
        return used

    # ---- submitting --------------------------------------------------------------------------

    def submit(self, body: Mapping[str, Any], token: TokenRecord) -> TaskRecord:
        """Queue a task (see the module docstring for the fields).

        Raises:
            HubRequestError: a bad task (422) or the group's ``max_queued`` reached (409).
        """
        unknown = sorted(set(body) - _TASK_FIELDS - _LEASE_FIELDS)
        if unknown:
            raise HubRequestError(
                f"unknown field(s) {', '.join(unknown)}; a task may carry: "
                f"{', '.join(sorted(_TASK_FIELDS | _LEASE_FIELDS))}"
            )
        command = body.get("command")
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) for a in command)
            or not command[0]
        ):
            raise HubRequestError(
                "command must be a non-empty list of strings (argv, run without a shell; "
                'use ["sh", "-c", "..."] for shell syntax)'
            )
        if sum(len(a.encode()) for a in command) > MAX_COMMAND_BYTES:
            raise HubRequestError(f"command is longer than {MAX_COMMAND_BYTES} bytes")
        lease_body = {k: v for k, v in body.items() if k in _LEASE_FIELDS}
        try:
            request = lease_request_from_wire(lease_body)
        except LeaseRequestError as exc:
            raise HubRequestError(str(exc)) from None
        parts = body.get("parts", 1)
        if isinstance(parts, bool) or not isinstance(parts, int) or not 1 <= parts <= MAX_PARTS:
            raise HubRequestError(f"parts must be a whole number 1-{MAX_PARTS}, got {parts!r}")
        priority = body.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 1000:
            raise HubRequestError(f"priority must be a whole number -1000..1000, got {priority!r}")
        timeout = body.get("timeout_s")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
        ):
            raise HubRequestError(
                f"timeout_s must be a positive number of seconds, got {timeout!r}"
            )
        env = body.get("env")
        if env is not None:
            if not isinstance(env, Mapping) or not all(
                isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str)
                for k, v in env.items()
            ):
                raise HubRequestError("env must map variable names to string values")
            clash = sorted(k for k in env if k in _RESERVED_ENV or k.startswith("GPUFLEET_"))
            if clash:
                raise HubRequestError(f"env cannot set {', '.join(clash)}: the lease sets them")
        engine = body.get("engine")
        if engine is not None and engine not in self.engines:
            configured = ", ".join(sorted(self.engines)) or "none (gpufleet hub --ray-address URL)"
            raise HubRequestError(
                f"no scale-out engine {engine!r} on this hub; configured: {configured}"
            )
        name = body.get("name") or command[0].rsplit("/", 1)[-1]
        if not isinstance(name, str) or len(name) > 200:
            raise HubRequestError("name must be a string of at most 200 characters")
        group = sorted(token.groups)[0] if token.groups else None
        if group is not None:
            record = self.store.group(group)
            if record is not None and record.max_queued is not None:
                waiting = self.store.count_queued(group)
                if waiting >= record.max_queued:
                    raise HubRequestError(
                        f"group {group} has {waiting} tasks waiting, its max_queued: wait for "
                        "some to start or cancel one",
                        status=409,
                    )
        self.leases.check_possible(request, token)
        del request  # checked; each part is placed from lease_body
        task = TaskRecord(
            id="tk_" + secrets.token_hex(8),
            token_id=token.id,
            holder=token.name,
            name=name,
            command=tuple(command),
            request=lease_body,
            parts=parts,
            priority=priority,
            group=group,
            created_s=self.clock(),
            timeout_s=None if timeout is None else float(timeout),
            env=None if env is None else dict(env),
            engine=engine,
        )
        self.store.save_task(task)
        return task

    def get(self, task_id: str) -> TaskRecord:
        task = self.store.task(task_id)
        if task is None:
            raise HubRequestError(f"no task {task_id!r}", status=404)
        return task

    def view(self, task: TaskRecord) -> dict[str, Any]:
        """A task with its parts and its state as a whole (the result aggregation)."""
        parts = self.store.parts(task.id)
        codes = [p.exit_code for p in parts]
        return {
            "id": task.id,
            "name": task.name,
            "holder": task.holder,
            "group": task.group,
            "command": list(task.command),
            "request": task.request,
            "priority": task.priority,
            "timeout_s": task.timeout_s,
            "engine": task.engine,
            "created_s": task.created_s,
            "state": _task_state(parts),
            "exit_codes": codes,
            "succeeded_parts": sum(1 for p in parts if p.state == "succeeded"),
            "parts": [
                {
                    "part": p.part,
                    "state": p.state,
                    "attempts": p.attempts,
                    "node": None if p.node is None else f"{p.cluster}/{p.node}",
                    "lease_id": p.lease_id,
                    "engine_id": p.engine_id,
                    "placed_s": p.placed_s,
                    "started_s": p.started_s,
                    "ended_s": p.ended_s,
                    "exit_code": p.exit_code,
                    "error": p.error,
                    "output": p.output,
                }
                for p in parts
            ],
        }

    def cancel(self, task_id: str, token: TokenRecord) -> TaskRecord:
        """Cancel every part not yet ended; their leases end and agents stop them."""
        task = self.get(task_id)
        if task.token_id != token.id and not token.allows("admin"):
            raise AuthError(403, f"task {task_id} was submitted with another token")
        now = self.clock()
        for p in self.store.parts(task_id):
            if p.state in FINAL_STATES:
                continue
            if not self.store.move_part(
                task_id,
                p.part,
                from_states=("queued", "placed", "running"),
                to="cancelled",
                ended=now,
                error=f"cancelled by {token.name}",
            ):
                continue
            if p.lease_id is not None:
                self.store.end_lease(p.lease_id, "released", now, "its task was cancelled")
            engine = self.engines.get(task.engine or "")
            if p.engine_id is not None and engine is not None:
                try:
                    engine.stop(p.engine_id)
                except EngineError as exc:
                    logger.warning("could not stop %s in %s: %s", p.engine_id, engine.name, exc)
        return task

    # ---- scheduling --------------------------------------------------------------------------

    def schedule(self) -> list[Placed]:
        """Requeue parts whose lease was taken back, bring engines' parts up to date, then
        place waiting parts."""
        with self._lock:
            self._requeue_lost()
            self._follow_engines()
            return self._place_waiting()

    def _requeue_lost(self) -> None:
        now = self.clock()
        for p in self.store.parts_in(("placed", "running")):
            if p.engine_id is not None:
                continue  # the engine looks after it
            lease = None if p.lease_id is None else self.store.lease(p.lease_id)
            if lease is not None and lease.state == "active":
                continue
            why = (
                f"node {p.cluster}/{p.node} was lost ({lease.end_reason})"
                if lease is not None
                else "its lease is gone"
            )
            if p.attempts >= self.max_attempts:
                self.store.move_part(
                    p.task_id,
                    p.part,
                    from_states=(p.state,),
                    to="failed",
                    ended=now,
                    error=f"{why}; gave up after {p.attempts} attempts",
                )
            else:
                self.store.move_part(
                    p.task_id,
                    p.part,
                    from_states=(p.state,),
                    to="queued",
                    cluster=None,
                    node=None,
                    lease_id=None,
                    placed=None,
                    started=None,
                    error=f"{why}; queued again",
                )

    def _effective(self, task: TaskRecord, now: float) -> float:
        return task.priority + max(0.0, now - task.created_s) / self.aging_s

    def _place_waiting(self) -> list[Placed]:
        now = self.clock()
        waiting = self.store.tasks_with_parts_in(("queued",))
        waiting.sort(key=lambda t: (-self._effective(t, now), t.created_s, t.id))
        placed: list[Placed] = []
        for task in waiting:
            token = self.store.token(task.token_id)
            for p in self.store.parts(task.id):
                if p.state != "queued":
                    continue
                if task.engine is not None:
                    outcome = self._hand_off(task, p, now)
                    if isinstance(outcome, Placed):
                        placed.append(outcome)
                    continue
                outcome = self._place_part(task, p, token, now)
                if isinstance(outcome, Placed):
                    placed.append(outcome)
                elif outcome == "wait" and now - task.created_s >= self.starve_after_s:
                    return placed  # reserve: nothing behind a starving task goes first
        return placed

    def _place_part(
        self, task: TaskRecord, p: PartRecord, token: TokenRecord | None, now: float
    ) -> Placed | str:
        if (
            token is None
            or token.revoked_s is not None
            or (token.expires_s is not None and token.expires_s <= now)
        ):
            self._fail(task, p, "the token it was submitted with is revoked or expired", now)
            return "failed"
        body = {**task.request, "ttl_s": TASK_LEASE_TTL_S, "priority": task.priority}
        body["holder"] = f"task {task.id}/{p.part}"
        request = lease_request_from_wire(body)
        # The parts of one task go to different nodes.
        taken = {
            (q.cluster, q.node)
            for q in self.store.parts(task.id)
            if q.state in ("placed", "running") and q.node is not None
        }
        try:
            lease = self.leases.place(
                request,
                token,
                node_ok=lambda n: _runs_tasks(n) and (n.cluster, n.node) not in taken,
            )
        except NoCapacityError as exc:
            self._note_waiting(task, p, exc.detail)
            return "wait"
        except HubRequestError as exc:
            if exc.status == 409:
                # A group's max_gpus: waits without holding others back.
                self._note_waiting(task, p, exc.detail)
                return "quota"
            self._fail(task, p, exc.detail, now)
            return "failed"
        except AuthError as exc:
            self._fail(task, p, exc.detail, now)
            return "failed"
        if not self.store.move_part(
            task.id,
            p.part,
            from_states=("queued",),
            to="placed",
            cluster=lease.cluster,
            node=lease.node,
            lease_id=lease.id,
            placed=now,
            error=_without_waiting(p.error),
            bump=True,
        ):
            # Cancelled meanwhile: give the GPUs back.
            self.store.end_lease(lease.id, "released", now, "its task was cancelled")
            return "cancelled"
        return Placed(task.id, p.part, lease.id, f"{lease.cluster}/{lease.node}")

    def _note_waiting(self, task: TaskRecord, p: PartRecord, why: str) -> None:
        """Keep why a queued part cannot be placed yet (written only when it changes)."""
        earlier = _without_waiting(p.error)  # e.g. that its node was lost
        text = f"{earlier}; {WAITING}{why}" if earlier else f"{WAITING}{why}"
        if p.error != text:
            self.store.move_part(task.id, p.part, from_states=("queued",), to="queued", error=text)

    # ---- scale-out engines --------------------------------------------------------------------

    def _hand_off(self, task: TaskRecord, p: PartRecord, now: float) -> Placed | str:
        """Submit a queued part to its task's engine."""
        engine = self.engines.get(task.engine or "")
        if engine is None:
            self._fail(task, p, f"the hub has no engine {task.engine!r} any more", now)
            return "failed"
        request = lease_request_from_wire(task.request)
        gpus = _gpus_asked(request)
        record = None if task.group is None else self.store.group(task.group)
        if record is not None and record.max_gpus is not None:
            in_use = self.leases.group_gpus_in_use().get(record.name, 0.0)
            if in_use + gpus > record.max_gpus:
                self._note_waiting(
                    task,
                    p,
                    f"group {record.name} holds {in_use:g} of its max_gpus {record.max_gpus:g}; "
                    f"this part asks for {gpus:g}",
                )
                return "quota"
        job_id = f"gpufleet-{task.id}-{p.part}-{p.attempts + 1}"
        env = {
            **(task.env or {}),
            "GPUFLEET_TASK_ID": task.id,
            "GPUFLEET_TASK_PART": str(p.part),
            "GPUFLEET_TASK_PARTS": str(task.parts),
        }
        try:
            engine_id = engine.submit(
                job_id,
                task.command,
                gpus=gpus,
                cpus=request.cpu_cores,
                env=env,
                metadata={"gpufleet_task": task.id, "gpufleet_part": str(p.part)},
            )
        except EngineError as exc:
            self.store.move_part(
                task.id, p.part, from_states=("queued",), to="queued", error=str(exc)
            )
            return "wait"
        if not self.store.move_part(
            task.id,
            p.part,
            from_states=("queued",),
            to="placed",
            cluster=engine.name,
            node=engine.where,
            engine_id=engine_id,
            placed=now,
            error=_without_waiting(p.error),
            bump=True,
        ):
            engine.stop(engine_id)
            return "cancelled"
        return Placed(task.id, p.part, engine_id, f"{engine.name} {engine.where}")

    def _follow_engines(self) -> None:
        """Bring the parts engines run up to date: started, ended with code and output."""
        now = self.clock()
        for p in self.store.parts_in(("placed", "running")):
            if p.engine_id is None:
                continue
            task = self.store.task(p.task_id)
            engine = None if task is None else self.engines.get(task.engine or "")
            if engine is None:
                continue
            try:
                status = engine.status(p.engine_id)
                if status.state == "running" and p.state == "placed":
                    self.store.move_part(
                        p.task_id, p.part, from_states=("placed",), to="running", started=now
                    )
                elif status.state in FINAL_STATES:
                    output = engine.logs(p.engine_id)
                    self.store.move_part(
                        p.task_id,
                        p.part,
                        from_states=("placed", "running"),
                        to=status.state,
                        ended=now,
                        started=p.started_s or now,
                        exit_code=status.exit_code,
                        output=output[-MAX_OUTPUT_CHARS:],
                        error=None if status.state == "succeeded" else status.message,
                    )
            except EngineError as exc:
                logger.warning("cannot follow %s in %s: %s", p.engine_id, engine.name, exc)

    def _fail(self, task: TaskRecord, p: PartRecord, why: str, now: float) -> None:
        self.store.move_part(
            task.id, p.part, from_states=("queued",), to="failed", ended=now, error=why
        )

    # ---- the agents' side --------------------------------------------------------------------

    def for_node(self, node: HubNode, running: list[str]) -> dict[str, Any]:
        """What a node's agent is to do: its placed parts to start (with their environment)
        and, of the parts it says it runs, those to stop. Renews the leases of its parts."""
        now = self.clock()
        start = []
        keep = set()
        for p in self.store.parts_in(("placed", "running"), cluster=node.cluster, node=node.node):
            keep.add(f"{p.task_id}:{p.part}")
            if p.lease_id is not None:
                self.store.renew_lease(p.lease_id, now + TASK_LEASE_TTL_S)
            if p.state != "placed":
                continue
            task = self.store.task(p.task_id)
            lease = None if p.lease_id is None else self.store.lease(p.lease_id)
            if task is None or lease is None:
                continue
            env = {
                **(task.env or {}),
                **lease_env(lease),
                "GPUFLEET_TASK_ID": task.id,
                "GPUFLEET_TASK_PART": str(p.part),
                "GPUFLEET_TASK_PARTS": str(task.parts),
            }
            start.append(
                {
                    "task_id": task.id,
                    "part": p.part,
                    "command": list(task.command),
                    "env": env,
                    "timeout_s": task.timeout_s,
                    "lease_id": lease.id,
                }
            )
        return {"tasks": start, "cancel": sorted(set(running) - keep)}

    def report(self, task_id: str, part: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """An agent's report on a part it runs: ``running``, or ``succeeded`` / ``failed``
        with ``exit_code`` and ``output`` (its tail is kept)."""
        cluster, node = body.get("cluster"), body.get("node")
        state = body.get("state")
        if state not in ("running", "succeeded", "failed"):
            raise HubRequestError("state must be running, succeeded or failed")
        found = [p for p in self.store.parts(task_id) if p.part == part]
        if not found:
            raise HubRequestError(f"no part {part} of task {task_id!r}", status=404)
        p = found[0]
        if (p.cluster, p.node) != (cluster, node):
            raise HubRequestError(
                f"part {part} of task {task_id} is not placed on {cluster}/{node}", status=409
            )
        now = self.clock()
        if state == "running":
            if (
                not self.store.move_part(
                    task_id, part, from_states=("placed",), to="running", started=now
                )
                and p.state != "running"
            ):
                raise HubRequestError(f"part {part} of task {task_id} is {p.state}", 409)
            return {"state": "running"}
        code = body.get("exit_code")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            raise HubRequestError("exit_code must be a whole number")
        output = body.get("output") or ""
        if not isinstance(output, str):
            raise HubRequestError("output must be a string")
        error = body.get("error")
        if not self.store.move_part(
            task_id,
            part,
            from_states=("placed", "running"),
            to=str(state),
            ended=now,
            exit_code=code,
            output=output[-MAX_OUTPUT_CHARS:],
            error=error if isinstance(error, str) else None,
            started=p.started_s or now,
        ):
            raise HubRequestError(f"part {part} of task {task_id} is {p.state}", 409)
        if p.lease_id is not None:
            self.store.end_lease(p.lease_id, "released", now, f"its task part {state}")
        return {"state": state}


def _gpus_asked(request: LeaseRequest) -> float:
    """GPUs a part holds: whole GPUs, or the fraction of one shared."""
    return request.gpus * (request.gpu_fraction if request.gpu_fraction else 1.0)


def _without_waiting(error: str | None) -> str | None:
    """A part's note without why it is waiting (placing it ends the wait)."""
    if error is None or WAITING not in error:
        return error
    return error[: error.index(WAITING)].rstrip("; ") or None


def _runs_tasks(node: HubNode) -> bool:
    return bool(node.health_check.get("runs_tasks"))
