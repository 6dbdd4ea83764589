"""Running the hub's task parts on this node (``gpufleet agent --hub ... --run-tasks``).

Off unless the agent is started with ``--run-tasks``: a task is a command any holder of a
``submit`` token can send, and it runs as the agent's user. A part starts only when its
lease is in the agent's ledger (the agent enforces its leases: no lease, no GPUs, no run).

Each part runs as a subprocess in a folder of its own (``<task_dir>/<task>-<part>``), in a
new session so that stopping it stops its children, with the lease's environment
(``CUDA_VISIBLE_DEVICES`` by uuid, ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, ``GPUFLEET_TASK_*``).
Its output (stdout and stderr together) is kept up to the last 64 KiB. Reports (``running``,
then ``succeeded`` or ``failed`` with the exit code and output) queue here and the pusher
sends them with its next round, so a hub outage delays them but does not lose them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

OUTPUT_TAIL_BYTES = 64 * 1024
STOP_GRACE_S = 5.0


def part_name(task_id: str, part: int) -> str:
    return f"{task_id}:{part}"


class _Run:
    def __init__(self, assignment: Mapping[str, Any]) -> None:
        self.task_id = str(assignment["task_id"])
        self.part = int(assignment["part"])
        self.command = [str(a) for a in assignment["command"]]
        self.env = {str(k): str(v) for k, v in dict(assignment.get("env") or {}).items()}
        timeout = assignment.get("timeout_s")
        self.timeout_s = float(timeout) if isinstance(timeout, int | float) else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped_because: str | None = None


class TaskRunner:
    """Starts, watches and stops this node's task parts.

    Args:
        work_dir: where each part gets its folder.
    """

    def __init__(self, work_dir: str | Path) -> None:
        self.work_dir = Path(work_dir)
        self._runs: dict[str, _Run] = {}
        self._reports: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()

    # ---- what the pusher calls ---------------------------------------------------------------

    def running(self) -> list[str]:
        """Parts started here and not finished (``task:part``)."""
        with self._lock:
            return sorted(self._runs)

    def offer(self, assignments: Iterable[Mapping[str, Any]], leased: set[str]) -> None:
        """Start the parts not already running whose lease (``lease_id``) is in ``leased``."""
        for a in assignments:
            try:
                name = part_name(str(a["task_id"]), int(a["part"]))
                lease_id = str(a["lease_id"])
            except (KeyError, TypeError, ValueError):
                logger.warning("the hub sent a task part this agent cannot read: %r", a)
                continue
            with self._lock:
                if name in self._runs:
                    continue
                if lease_id not in leased:
                    logger.warning("not starting %s: its lease %s is not held here", name, lease_id)
                    continue
                run = _Run(a)
                self._runs[name] = run
            threading.Thread(
                target=self._run, args=(name, run), name=f"gpufleet-task-{name}", daemon=True
            ).start()

    def cancel(self, names: Iterable[str]) -> None:
        """Stop parts the hub no longer wants run here (cancelled, or given to another
        node): SIGTERM to the part's process group, SIGKILL after a grace period."""
        for name in names:
            with self._lock:
                run = self._runs.get(name)
            if run is not None:
                self._stop(run, "the hub cancelled it")

    def take_reports(self) -> list[dict[str, Any]]:
        with self._lock:
            out = list(self._reports)
            self._reports.clear()
        return out

    def put_back(self, reports: list[dict[str, Any]]) -> None:
        """Reports that could not be sent, to go first next time."""
        with self._lock:
            self._reports.extendleft(reversed(reports))

    def stop_all(self, why: str = "the agent stopped") -> None:
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._stop(run, why)

    # ---- one part ----------------------------------------------------------------------------

    def _report(self, run: _Run, **fields: Any) -> None:
        with self._lock:
            self._reports.append({"task_id": run.task_id, "part": run.part, **fields})

    def _run(self, name: str, run: _Run) -> None:
        folder = self.work_dir / f"{run.task_id}-{run.part}"
        tail: deque[bytes] = deque()
        size = 0
        try:
            folder.mkdir(parents=True, exist_ok=True)
            run.proc = subprocess.Popen(
                run.command,
                cwd=folder,
                env={**os.environ, **run.env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._report(
                run,
                state="failed",
                exit_code=127,
                output="",
                error=f"cannot start {run.command[0]!r}: {exc.strerror or exc}",
            )
            with self._lock:
                self._runs.pop(name, None)
            return
        self._report(run, state="running")
        logger.info("task part %s started (pid %d) in %s", name, run.proc.pid, folder)
        timer = None
        if run.timeout_s is not None:
            timer = threading.Timer(
                run.timeout_s, self._stop, args=(run, f"timed out after {run.timeout_s:g} s")
            )
            timer.daemon = True
            timer.start()
        out = run.proc.stdout
        assert out is not None
        for chunk in iter(lambda: os.read(out.fileno(), 8192), b""):
            tail.append(chunk)
            size += len(chunk)
            while size - len(tail[0]) >= OUTPUT_TAIL_BYTES:
                size -= len(tail.popleft())
        out.close()
        code = run.proc.wait()
        if timer is not None:
            timer.cancel()
        output = b"".join(tail)[-OUTPUT_TAIL_BYTES:].decode("utf-8", "replace")
        state = "succeeded" if code == 0 and run.stopped_because is None else "failed"
        self._report(run, state=state, exit_code=code, output=output, error=run.stopped_because)
        logger.info("task part %s ended: exit code %d", name, code)
        with self._lock:
            self._runs.pop(name, None)

    def _stop(self, run: _Run, why: str) -> None:
        proc = run.proc
        if proc is None or proc.poll() is not None:
            return
        run.stopped_because = why
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_GRACE_S
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
