"""Runs recommendations' actions, and logs every run (dry or real) in the store.

A recommendation carries a machine-readable :class:`~gpufleet.analysis.recommend_types.Action`;
:class:`Executor` hands it to whoever can carry it out:

* a handler registered for the action type (the fleet hub drains nodes and reclaims leases
  itself), which wins over the configured executor;
* else the ``[executor]`` settings: ``webhook`` POSTs the action JSON, ``command`` runs a
  program (no shell) with the action JSON on stdin;
* ``kind = "none"`` only allows dry runs: a real run is refused with
  :class:`ExecutionRefusedError` before anything is logged, so the API can answer 422.

A dry run is the default and calls nothing: it logs ``planned`` with what would be done and
by whom. A real run is logged as ``running`` before it starts and updated when it ends, so a
crash in between still leaves a trace. Every failure of the action itself (network error,
non-2xx answer, missing program, non-zero exit, timeout, a handler that raised) is logged as
``failed`` with what happened and never raised. Each action is tried once: an action may
not be safe to repeat.

The action JSON (webhook body and command stdin)::

    {"execution_id": 7, "requested_by": "alice", "requested_at": "2026-11-23T10:00:00Z",
     "dry_run": false, "recommendation": {...to_wire(recommendation)...}}

A command also gets ``GPUFLEET_ACTION_TYPE``, ``GPUFLEET_RECOMMENDATION_ID``,
``GPUFLEET_EXECUTION_ID`` and ``GPUFLEET_DRY_RUN=0`` in its environment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import httpx

from gpufleet.analysis.recommend_types import Recommendation, Target
from gpufleet.analysis.wire import iso, to_wire
from gpufleet.model import Execution
from gpufleet.settings import ExecutorSettings
from gpufleet.store.base import Store

logger = logging.getLogger(__name__)

PLANNED = "planned"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"

DRY_RUN_EXECUTOR = "dry-run"
"""``Execution.executor`` of a dry run (its detail names the executor that would act)."""
RESERVED_NAMES = frozenset({DRY_RUN_EXECUTOR, "webhook", "command", "none"})
"""Executor names a registered handler may not take: the log would be ambiguous."""

OUTPUT_TAIL_CHARS = 2048
"""Characters of a command's output kept in the detail (its end, shared by stderr and stdout)."""
BODY_EXCERPT_CHARS = 500
"""Characters of a webhook's answer kept in the detail (its start)."""
KILL_GRACE_S = 5.0
"""How long to wait for a killed command's pipes to close."""

SETUP_HINT = (
    'set [executor] kind = "webhook" with webhook_url = "https://..." (and webhook_token if '
    'the receiver wants a Bearer token), or kind = "command" with command = '
    '["/path/to/program", "arg"], in the config file (or GPUFLEET_EXECUTOR__KIND, '
    "GPUFLEET_EXECUTOR__WEBHOOK_URL, GPUFLEET_EXECUTOR__COMMAND in the environment)"
)
"""The settings that enable real runs, as the refusal and dry runs quote them."""


class ExecutionRefusedError(ValueError):
    """A real run was asked for but cannot happen as configured; nothing ran or was logged."""


class ActionHandler(Protocol):
    """Carries out one recommendation's action; returns whether it worked and what happened."""

    def __call__(self, recommendation: Recommendation, /) -> tuple[bool, str]:
        """``(ok, detail)``: ``detail`` is logged as is; raising counts as a failure."""
        ...


def target_levels(target: Target) -> dict[str, object]:
    """The levels of ``target`` that are set, JSON-ready (what the log keeps)."""
    wire: dict[str, object] = to_wire(target)
    return {k: v for k, v in wire.items() if v not in (None, "", [])}


def execution_payload(recommendation: Recommendation, execution: Execution) -> dict[str, Any]:
    """The JSON sent to a webhook or a command's stdin (see the module docstring)."""
    return {
        "execution_id": execution.id,
        "requested_by": execution.requested_by,
        "requested_at": iso(execution.requested_s),
        "dry_run": execution.dry_run,
        "recommendation": to_wire(recommendation),
    }


def _display_url(url: str) -> str:
    """``url`` without credentials, query or fragment: safe to log."""
    try:
        u = httpx.URL(url)
    except Exception:
        return "<invalid URL>"
    host = f"[{u.host}]" if ":" in u.host else u.host
    port = f":{u.port}" if u.port is not None else ""
    return f"{u.scheme}://{host}{port}{u.path}"


def _describe(recommendation: Recommendation) -> str:
    """``drain_node {"node": "n1"} on cluster=c node=n1``: the action and its target."""
    params = json.dumps(to_wire(recommendation.action.params), sort_keys=True)
    levels = target_levels(recommendation.target)
    where = " ".join(
        f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in levels.items()
    )
    return f"{recommendation.action.type} {params} on {where}"


def _tail(data: bytes, limit: int) -> str:
    text = data[-4 * limit :].decode(errors="replace").strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def _output(stdout: bytes, stderr: bytes) -> str:
    """``; stderr: ...; stdout: ...`` with the last :data:`OUTPUT_TAIL_CHARS` between them."""
    streams = [(n, d) for n, d in (("stderr", stderr), ("stdout", stdout)) if d.strip()]
    if not streams:
        return "; no output"
    limit = OUTPUT_TAIL_CHARS // len(streams)
    return "".join(f"; {name}: {_tail(data, limit)}" for name, data in streams)


def _exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class Executor:
    """Carries out recommendations' actions and logs each run in ``store``.

    Args:
        store: where every execution is logged.
        settings: the ``[executor]`` settings (kind, webhook, command, timeout).
        clock: current epoch seconds (request and finish times).
        transport: HTTP transport for the webhook; tests pass ``httpx.MockTransport``.
    """

    def __init__(
        self,
        store: Store,
        settings: ExecutorSettings,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._transport = transport
        self._handlers: dict[str, tuple[str, ActionHandler]] = {}

    def register(self, action_type: str, handler: ActionHandler, name: str) -> None:
        """Let ``handler`` carry out actions of ``action_type``, logged as executor ``name``.

        A registered handler wins over the configured webhook or command for its action type
        (and works with ``kind = "none"``); registering a type again replaces its handler.

        Raises:
            ValueError: ``name`` is blank or one of :data:`RESERVED_NAMES`.
        """
        if not name.strip() or name in RESERVED_NAMES:
            reserved = ", ".join(sorted(RESERVED_NAMES))
            raise ValueError(f"handler name must be non-empty and none of {reserved}: {name!r}")
        self._handlers[action_type] = (name, handler)

    def executor_for(self, action_type: str) -> str:
        """Who would carry out ``action_type``: a handler's name, ``webhook``, ``command``
        or ``none``."""
        handler = self._handlers.get(action_type)
        return handler[0] if handler is not None else self._settings.kind

    def execute(
        self,
        recommendations: Sequence[Recommendation],
        *,
        requested_by: str,
        dry_run: bool = True,
    ) -> list[Execution]:
        """Carry out (or, by default, only plan) each recommendation's action, in order.

        Returns the logged executions, one per recommendation: ``planned`` for a dry run,
        else ``succeeded`` or ``failed`` with what happened in ``detail``.

        Raises:
            ExecutionRefusedError: ``requested_by`` is blank, or a real run was asked for an
                action type that has no handler while ``[executor] kind`` is ``none``;
                checked before anything runs or is logged.
            StoreError: the log could not be written. The entry is written before its action
                starts, so an action whose entry failed did not run; if only the final update
                failed, the action ran and its entry stays ``running``.
        """
        who = requested_by.strip()
        if not who:
            raise ExecutionRefusedError("requested_by must say who asks for the execution")
        if not dry_run and self._settings.kind == "none":
            unhandled = sorted(
                {r.action.type for r in recommendations if r.action.type not in self._handlers}
            )
            if unhandled:
                raise ExecutionRefusedError(
                    f"nothing executed: no executor is configured for {', '.join(unhandled)}. "
                    f"To run actions, {SETUP_HINT}; or ask for a dry run to only log what "
                    "would be done"
                )
        return [self._one(r, who, dry_run) for r in recommendations]

    # ---- one execution ------------------------------------------------------------------

    def _one(self, recommendation: Recommendation, requested_by: str, dry_run: bool) -> Execution:
        now = self._clock()
        executor = self.executor_for(recommendation.action.type)
        params: dict[str, object] = to_wire(recommendation.action.params)
        base = Execution(
            recommendation_id=recommendation.id,
            kind=recommendation.kind,
            action_type=recommendation.action.type,
            action_params=params,
            target=target_levels(recommendation.target),
            title=recommendation.title,
            requested_by=requested_by,
            requested_s=now,
            dry_run=dry_run,
            executor=DRY_RUN_EXECUTOR if dry_run else executor,
            status=PLANNED if dry_run else RUNNING,
            detail=self._plan(recommendation, executor) if dry_run else "started",
            finished_s=now if dry_run else None,
            expected_monthly_saving_usd=recommendation.expected_monthly_saving_usd,
        )
        saved = self._store.save_execution(base)
        if dry_run:
            return saved
        try:
            ok, detail = self._run(recommendation, executor, saved)
        except Exception as exc:  # a bug here must still end as a logged failure
            logger.exception("executing %s failed unexpectedly", recommendation.id)
            ok, detail = False, f"unexpected error: {type(exc).__name__}: {exc}"
        done = replace(
            saved, status=SUCCEEDED if ok else FAILED, detail=detail, finished_s=self._clock()
        )
        if ok:
            logger.info(
                "executed %s (%s) via %s", done.action_type, done.recommendation_id, executor
            )
        else:
            logger.warning(
                "execution of %s (%s) via %s failed: %s",
                done.action_type,
                done.recommendation_id,
                executor,
                detail,
            )
        return self._store.save_execution(done)

    def _plan(self, recommendation: Recommendation, executor: str) -> str:
        """What a real run would do, in words (the detail of a dry run)."""
        what = _describe(recommendation)
        timeout = f"timeout {self._settings.timeout_s:g} s"
        if executor == "webhook":
            url = _display_url(self._settings.webhook_url or "")
            how = f"POST the action JSON to {url} (webhook, {timeout})"
        elif executor == "command":
            argv = shlex.join(self._settings.command or [])
            how = f"run {argv} with the action JSON on stdin (command, {timeout})"
        elif executor == "none":
            return (
                f"dry run, nothing was called: would do {what}, but no executor is configured "
                f"so a real run would be refused; to run actions, {SETUP_HINT}"
            )
        else:
            how = f"call handler {executor!r}"
        return f"dry run, nothing was called: would {how} for {what}"

    def _run(
        self, recommendation: Recommendation, executor: str, execution: Execution
    ) -> tuple[bool, str]:
        handler = self._handlers.get(recommendation.action.type)
        if handler is not None:
            return self._call(handler[0], handler[1], recommendation)
        payload = execution_payload(recommendation, execution)
        if executor == "webhook":
            return self._post(payload)
        if executor == "command":
            return self._command(recommendation, execution, payload)
        return False, f"no executor is configured; {SETUP_HINT}"

    @staticmethod
    def _call(
        name: str, handler: ActionHandler, recommendation: Recommendation
    ) -> tuple[bool, str]:
        try:
            ok, detail = handler(recommendation)
        except Exception as exc:
            return False, f"handler {name!r} raised {type(exc).__name__}: {exc}"
        return bool(ok), str(detail)

    def _post(self, payload: Mapping[str, Any]) -> tuple[bool, str]:
        url = self._settings.webhook_url
        if not url:
            return False, 'executor kind "webhook" has no webhook_url: set [executor] webhook_url'
        where = _display_url(url)
        timeout = self._settings.timeout_s
        headers = {"User-Agent": "gpufleet"}
        if self._settings.webhook_token:
            headers["Authorization"] = f"Bearer {self._settings.webhook_token}"
        try:
            with httpx.Client(transport=self._transport, timeout=timeout) as client:
                response = client.post(url, json=payload, headers=headers)
        except httpx.TimeoutException:
            return (
                False,
                f"webhook {where} did not answer within {timeout:g} s ([executor] timeout_s)",
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return False, f"cannot reach webhook {where}: {type(exc).__name__}: {exc}"
        status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        body = response.text.strip()
        if len(body) > BODY_EXCERPT_CHARS:
            body = body[:BODY_EXCERPT_CHARS] + "…"
        detail = f"webhook {where} answered {status}" + (f": {body}" if body else "")
        return response.is_success, detail

    def _command(
        self, recommendation: Recommendation, execution: Execution, payload: Mapping[str, Any]
    ) -> tuple[bool, str]:
        argv = list(self._settings.command or [])
        if not argv:
            return False, 'executor kind "command" has no command: set [executor] command'
        timeout = self._settings.timeout_s
        env = {
            **os.environ,
            "GPUFLEET_ACTION_TYPE": recommendation.action.type,
            "GPUFLEET_RECOMMENDATION_ID": recommendation.id,
            "GPUFLEET_EXECUTION_ID": str(execution.id),
            "GPUFLEET_DRY_RUN": "0",
        }
        try:
            # Its own session, so a timeout kills whatever the program started too.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            return False, (
                f"program not found: {argv[0]} (set [executor] command to the argv of an "
                "installed program)"
            )
        except PermissionError:
            return False, f"cannot run {argv[0]}: permission denied (is it executable?)"
        except OSError as exc:
            return False, f"cannot run {argv[0]}: {exc}"
        try:
            stdout, stderr = proc.communicate(json.dumps(payload).encode(), timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            try:
                stdout, stderr = proc.communicate(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                # Something outside its process group still holds the pipes: give up on
                # the output rather than wait for it.
                stdout, stderr = b"", b""
                _close_pipes(proc)
                proc.wait()
            return False, (
                f"timed out after {timeout:g} s ([executor] timeout_s): killed {shlex.join(argv)}"
                + _output(stdout, stderr)
            )
        except BaseException:  # interrupted: leave no program running behind
            _kill(proc)
            _close_pipes(proc)
            proc.wait()
            raise
        return proc.returncode == 0, _exit(proc.returncode) + _output(stdout, stderr)


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` and its process group (it was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()


__all__ = [
    "DRY_RUN_EXECUTOR",
    "FAILED",
    "PLANNED",
    "RUNNING",
    "SETUP_HINT",
    "SUCCEEDED",
    "ActionHandler",
    "ExecutionRefusedError",
    "Executor",
    "execution_payload",
    "target_levels",
]
