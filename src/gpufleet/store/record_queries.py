"""The records the SQL store keeps beside its history: alerts, the execution log and the
analyst's chat sessions, read back the same way on SQLite and PostgreSQL.

Also the small pieces every read shares: the row type and ``AND col = ?`` filters.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from gpufleet.model import Alert, ChatSession, ChatTurn, Execution

Row = tuple[Any, ...]

ALERT_COLUMNS = (
    "id, cluster, node, rule, severity, subject, message, value, threshold, started, fired, "
    "resolved"
)

EXECUTION_COLUMNS = (
    "id, recommendation_id, kind, action_type, action_params, target, title, requested_by, "
    "requested, dry_run, executor, status, detail, finished, expected_monthly_saving_usd"
)


def filters(pairs: Sequence[tuple[str, str | None]]) -> tuple[str, list[Any]]:
    """`` AND col = ?`` for every filter given, and its parameters."""
    given = [(col, value) for col, value in pairs if value is not None]
    return "".join(f" AND {col} = ?" for col, _ in given), [value for _, value in given]


def _json_object(text: str | None) -> dict[str, object]:
    """A stored JSON object column; anything else (NULL, damaged text) reads as empty."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class RecordReads(ABC):
    """Reads of alerts, executions and chat sessions; a backend supplies :meth:`_read`."""

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query on the read connection."""

    def alerts(
        self,
        *,
        start_s: float | None = None,
        end_s: float | None = None,
        active_only: bool = False,
        limit: int = 500,
        node: str | None = None,
        cluster: str | None = None,
    ) -> list[Alert]:
        """Alerts active at some time in ``[start_s, end_s)`` (either bound optional), newest
        first (by ``fired``).

        An alert is active from ``fired`` until ``resolved`` (forever while unresolved), so
        one that fired before the window and was still firing, or resolved, inside it is
        included; so is one that fired in the window. ``active_only`` keeps the unresolved
        ones; ``node`` and ``cluster`` keep one node's or cluster's.
        """
        clauses: list[str] = []
        params: list[Any] = []
        if end_s is not None:
            clauses.append(" AND fired < ?")
            params.append(end_s)
        if start_s is not None:
            clauses.append(" AND (resolved IS NULL OR resolved > ? OR fired >= ?)")
            params += [start_s, start_s]
        if active_only:
            clauses.append(" AND resolved IS NULL")
        where, subject = filters((("cluster", cluster), ("node", node)))
        params += subject
        rows = self._read(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE 1 = 1{''.join(clauses)}{where} "
            "ORDER BY fired DESC, id DESC LIMIT ?",
            (*params, max(int(limit), 0)),
        )
        return [
            Alert(
                rule=rule,
                severity=severity,
                node=node,
                subject=subject,
                message=message,
                value=value,
                threshold=threshold,
                started_s=started,
                fired_s=fired,
                resolved_s=resolved,
                id=int(alert_id),
                cluster=cluster,
            )
            for (
                alert_id,
                cluster,
                node,
                rule,
                severity,
                subject,
                message,
                value,
                threshold,
                started,
                fired,
                resolved,
            ) in rows
        ]

    def chat_turns(self, session_id: str) -> list[ChatTurn]:
        """A session's turns in order (empty when there is no such session)."""
        rows = self._read(
            "SELECT session_id, seq, ts, cluster, query, reply, state FROM chat_turns "
            "WHERE session_id = ? ORDER BY seq",
            (session_id,),
        )
        return [
            ChatTurn(
                session_id=sid,
                seq=int(seq),
                ts_s=ts,
                cluster=cluster,
                query=query,
                reply=_json_object(reply),
                state=_json_object(state),
            )
            for sid, seq, ts, cluster, query, reply, state in rows
        ]

    def chat_sessions(self, *, limit: int = 100) -> list[ChatSession]:
        """Sessions, most recently updated first (each with its first question as title)."""
        rows = self._read(
            "SELECT s.session_id, s.created, s.updated, s.turns, f.query, f.cluster FROM ("
            "SELECT session_id, MIN(ts) AS created, MAX(ts) AS updated, COUNT(*) AS turns, "
            "MIN(seq) AS first FROM chat_turns GROUP BY session_id) s "
            "JOIN chat_turns f ON f.session_id = s.session_id AND f.seq = s.first "
            "ORDER BY s.updated DESC, s.session_id LIMIT ?",
            (max(int(limit), 0),),
        )
        return [
            ChatSession(
                id=sid,
                created_s=created,
                updated_s=updated,
                turns=int(turns),
                title=query[:120],
                cluster=cluster,
            )
            for sid, created, updated, turns, query, cluster in rows
        ]

    def chat_session_count(self) -> int:
        """How many sessions there are: what :meth:`chat_sessions` lists with no limit."""
        rows = self._read("SELECT COUNT(DISTINCT session_id) FROM chat_turns")
        return int(rows[0][0]) if rows else 0

    def executions(
        self,
        *,
        limit: int = 100,
        recommendation_id: str | None = None,
        start_s: float | None = None,
        end_s: float | None = None,
    ) -> list[Execution]:
        """Execution log entries requested in ``[start_s, end_s)`` (either bound optional),
        newest first (by request time, then id); ``recommendation_id`` keeps one's."""
        clauses: list[str] = []
        params: list[Any] = []
        if start_s is not None:
            clauses.append(" AND requested >= ?")
            params.append(start_s)
        if end_s is not None:
            clauses.append(" AND requested < ?")
            params.append(end_s)
        where, subject = filters((("recommendation_id", recommendation_id),))
        rows = self._read(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE 1 = 1{''.join(clauses)}{where} "
            "ORDER BY requested DESC, id DESC LIMIT ?",
            (*params, *subject, max(int(limit), 0)),
        )
        return [
            Execution(
                id=int(execution_id),
                recommendation_id=rec_id,
                kind=kind,
                action_type=action_type,
                action_params=_json_object(action_params),
                target=_json_object(target),
                title=title,
                requested_by=requested_by,
                requested_s=requested,
                dry_run=bool(dry_run),
                executor=executor,
                status=status,
                detail=detail,
                finished_s=finished,
                expected_monthly_saving_usd=saving,
            )
            for (
                execution_id,
                rec_id,
                kind,
                action_type,
                action_params,
                target,
                title,
                requested_by,
                requested,
                dry_run,
                executor,
                status,
                detail,
                finished,
                saving,
            ) in rows
        ]
