"""The hub's task queue (schema version 6): tasks and their parts, on SQLite and PostgreSQL.

A task is a command to run with GPUs; it runs as one or more **parts** (one per node asked
for), each with its own lease. A part moves ``queued`` -> ``placed`` (a lease, an agent to
run it) -> ``running`` -> ``succeeded`` | ``failed``, or to ``cancelled``; a part whose node
is lost goes back to ``queued`` (``attempts`` counts the tries). Every move is one UPDATE that
names the state it leaves, so an agent's late report cannot undo a cancel or a requeue.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpufleet.store.lease_records import LeaseRecords

Row = tuple[Any, ...]

PART_STATES = ("queued", "placed", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: str
    token_id: str
    holder: str
    name: str
    command: tuple[str, ...]
    request: dict[str, Any]
    """The lease request each part is placed with (see ``lease_request``)."""
    parts: int
    priority: int
    group: str | None
    created_s: float
    timeout_s: float | None = None
    env: dict[str, str] | None = None
    engine: str | None = None
    """A scale-out engine (``ray``) that runs the parts instead of the hub's agents."""


@dataclass(frozen=True, slots=True)
class PartRecord:
    task_id: str
    part: int
    state: str
    attempts: int
    cluster: str | None = None
    node: str | None = None
    lease_id: str | None = None
    placed_s: float | None = None
    started_s: float | None = None
    ended_s: float | None = None
    exit_code: int | None = None
    output: str = ""
    error: str | None = None
    engine_id: str | None = None
    """The part's id in its task's engine (a Ray submission id)."""


_TASK_COLUMNS = (
    "id, token_id, holder, name, command, request, parts, priority, group_name, created, "
    "timeout_s, env, engine"
)
_PART_COLUMNS = (
    "task_id, part, state, attempts, cluster, node, lease_id, placed, started, ended, "
    "exit_code, output, error, engine_id"
)


def _task(row: Row) -> TaskRecord:
    return TaskRecord(
        id=str(row[0]),
        token_id=str(row[1]),
        holder=str(row[2]),
        name=str(row[3]),
        command=tuple(json.loads(row[4])),
        request=dict(json.loads(row[5])),
        parts=int(row[6]),
        priority=int(row[7]),
        group=row[8],
        created_s=float(row[9]),
        timeout_s=None if row[10] is None else float(row[10]),
        env=dict(json.loads(row[11])) if row[11] else None,
        engine=row[12],
    )


def _part(row: Row) -> PartRecord:
    return PartRecord(
        task_id=str(row[0]),
        part=int(row[1]),
        state=str(row[2]),
        attempts=int(row[3]),
        cluster=row[4],
        node=row[5],
        lease_id=row[6],
        placed_s=None if row[7] is None else float(row[7]),
        started_s=None if row[8] is None else float(row[8]),
        ended_s=None if row[9] is None else float(row[9]),
        exit_code=None if row[10] is None else int(row[10]),
        output=str(row[11] or ""),
        error=row[12],
        engine_id=row[13],
    )


class TaskRecords(LeaseRecords):
    """A hub's whole store: nodes, tokens, leases, groups, pools and the task queue."""

    def save_task(self, task: TaskRecord) -> None:
        """Store a new task with all its parts queued, in one transaction."""
        with self._writing() as tx:
            tx.execute(
                f"INSERT INTO hub_tasks ({_TASK_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task.id,
                    task.token_id,
                    task.holder,
                    task.name,
                    json.dumps(list(task.command)),
                    json.dumps(task.request, sort_keys=True),
                    task.parts,
                    task.priority,
                    task.group,
                    task.created_s,
                    task.timeout_s,
                    None if task.env is None else json.dumps(task.env, sort_keys=True),
                    task.engine,
                ),
            )
            for part in range(task.parts):
                tx.execute(
                    "INSERT INTO hub_task_parts (task_id, part, state, attempts, output) "
                    "VALUES (?, ?, 'queued', 0, '')",
                    (task.id, part),
                )

    def task(self, task_id: str) -> TaskRecord | None:
        rows = self._read(f"SELECT {_TASK_COLUMNS} FROM hub_tasks WHERE id = ?", (task_id,))
        return _task(rows[0]) if rows else None

    def tasks(self, *, limit: int = 1000) -> list[TaskRecord]:
        """Tasks, newest first."""
        rows = self._read(
            f"SELECT {_TASK_COLUMNS} FROM hub_tasks ORDER BY created DESC, id LIMIT ?", (limit,)
        )
        return [_task(r) for r in rows]

    def tasks_with_parts_in(self, states: Sequence[str]) -> list[TaskRecord]:
        """Tasks with at least one part in one of ``states``, oldest first."""
        marks = ", ".join("?" for _ in states)
        rows = self._read(
            f"SELECT {_TASK_COLUMNS} FROM hub_tasks WHERE id IN "
            f"(SELECT task_id FROM hub_task_parts WHERE state IN ({marks})) ORDER BY created, id",
            tuple(states),
        )
        return [_task(r) for r in rows]

    def parts(self, task_id: str) -> list[PartRecord]:
        rows = self._read(
            f"SELECT {_PART_COLUMNS} FROM hub_task_parts WHERE task_id = ? ORDER BY part",
            (task_id,),
        )
        return [_part(r) for r in rows]

    def parts_in(
        self, states: Sequence[str], *, cluster: str | None = None, node: str | None = None
    ) -> list[PartRecord]:
        """Parts in one of ``states`` (optionally on one node), by task and part."""
        marks = ", ".join("?" for _ in states)
        where, params = f"state IN ({marks})", list(states)
        if cluster is not None and node is not None:
            where += " AND cluster = ? AND node = ?"
            params += [cluster, node]
        rows = self._read(
            f"SELECT {_PART_COLUMNS} FROM hub_task_parts WHERE {where} ORDER BY task_id, part",
            tuple(params),
        )
        return [_part(r) for r in rows]

    def engine_requests_by_group(self) -> list[tuple[str, dict[str, Any]]]:
        """``(group, request)`` of each part a scale-out engine holds for a group (placed or
        running there; such parts hold no lease)."""
        rows = self._read(
            "SELECT t.group_name, t.request FROM hub_tasks t JOIN hub_task_parts p "
            "ON p.task_id = t.id WHERE t.group_name IS NOT NULL AND t.engine IS NOT NULL "
            "AND p.state IN ('placed', 'running')"
        )
        return [(str(group), dict(json.loads(str(text)))) for group, text in rows]

    def count_queued(self, group: str) -> int:
        """Tasks of ``group`` with a part still waiting."""
        rows = self._read(
            "SELECT COUNT(DISTINCT t.id) FROM hub_tasks t JOIN hub_task_parts p "
            "ON p.task_id = t.id WHERE t.group_name = ? AND p.state = 'queued'",
            (group,),
        )
        return int(rows[0][0] or 0)

    def move_part(
        self, task_id: str, part: int, *, from_states: Sequence[str], to: str, **fields: Any
    ) -> bool:
        """Move a part to ``to`` if it is in one of ``from_states``, setting ``fields``
        (``cluster``, ``node``, ``lease_id``, ``placed``, ``started``, ``ended``,
        ``exit_code``, ``output``, ``error``, ``engine_id``; ``attempts`` +1 with
        ``bump=True``)."""
        allowed = {
            "cluster",
            "node",
            "lease_id",
            "placed",
            "started",
            "ended",
            "exit_code",
            "output",
            "error",
            "engine_id",
        }
        bump = bool(fields.pop("bump", False))
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot set {', '.join(sorted(unknown))} of a task part")
        sets = ["state = ?", *(f"{k} = ?" for k in fields)]
        if bump:
            sets.append("attempts = attempts + 1")
        marks = ", ".join("?" for _ in from_states)
        with self._writing() as tx:
            return bool(
                tx.execute(
                    f"UPDATE hub_task_parts SET {', '.join(sets)} "
                    f"WHERE task_id = ? AND part = ? AND state IN ({marks})",
                    (to, *fields.values(), task_id, part, *from_states),
                )
            )
