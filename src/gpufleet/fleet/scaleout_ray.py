"""The Ray adapter: a task's parts as Ray jobs, through the Ray Jobs REST API of a Ray
cluster's head (its dashboard, ``http://head:8265``); no Ray library needed on the hub.

Each part is one job: the command as its entrypoint (shell-quoted), ``entrypoint_num_gpus``
and ``entrypoint_num_cpus`` from the task's request (Ray then sets ``CUDA_VISIBLE_DEVICES``
for the entrypoint), the task's environment as ``runtime_env.env_vars``, and the hub's
task id in ``metadata``. The job's ``submission_id`` is ``gpufleet-<task>-<part>-<try>``, so a
resubmission after a lost answer is recognized by Ray and not run twice.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from gpufleet.fleet.scaleout import EngineError, EngineStatus

_STATES = {
    "PENDING": "placed",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "STOPPED": "cancelled",
}


class RayJobs:
    """Ray Jobs over HTTP.

    Args:
        address: the Ray dashboard's URL (``http://head:8265``).
        client: an httpx client (tests may pass one); one is made otherwise.
    """

    name = "ray"

    def __init__(
        self, address: str, *, client: httpx.Client | None = None, timeout_s: float = 10.0
    ) -> None:
        if not address.startswith(("http://", "https://")):
            raise ValueError(
                f"the Ray address must be the dashboard's http:// URL, got {address!r}"
            )
        self.where = address.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout_s)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            r = self._client.request(method, self.where + path, json=body)
        except httpx.HTTPError as exc:
            raise EngineError(f"Ray at {self.where} unreachable: {exc}") from None
        if r.status_code >= 400:
            raise EngineError(
                f"Ray at {self.where} answered {r.status_code} to {path}: {r.text[:300]}"
            )
        try:
            return r.json()
        except ValueError:
            raise EngineError(f"Ray at {self.where} answered {path} with no JSON") from None

    def submit(
        self,
        job_id: str,
        command: Sequence[str],
        *,
        gpus: float,
        cpus: float,
        env: Mapping[str, str],
        metadata: Mapping[str, str],
    ) -> str:
        body: dict[str, Any] = {
            "submission_id": job_id,
            "entrypoint": shlex.join(command),
            "entrypoint_num_gpus": gpus,
            "metadata": dict(metadata),
            "runtime_env": {"env_vars": dict(env)} if env else None,
        }
        if cpus:
            body["entrypoint_num_cpus"] = cpus
        try:
            answer = self._call("POST", "/api/jobs/", body)
        except EngineError as exc:
            # Already submitted (a retry after a lost answer): that job is this part.
            if "already exists" in str(exc):
                return job_id
            raise
        return str(answer.get("submission_id") or job_id)

    def status(self, engine_id: str) -> EngineStatus:
        info = self._call("GET", f"/api/jobs/{engine_id}")
        state = _STATES.get(str(info.get("status")), "placed")
        code = info.get("driver_exit_code")
        return EngineStatus(
            state=state,
            exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            message=info.get("message") if isinstance(info.get("message"), str) else None,
        )

    def logs(self, engine_id: str) -> str:
        answer = self._call("GET", f"/api/jobs/{engine_id}/logs")
        logs = answer.get("logs") if isinstance(answer, dict) else None
        return logs if isinstance(logs, str) else ""

    def stop(self, engine_id: str) -> None:
        self._call("POST", f"/api/jobs/{engine_id}/stop")

    def close(self) -> None:
        self._client.close()
