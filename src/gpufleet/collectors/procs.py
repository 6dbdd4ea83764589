"""Attribute a GPU process (a pid) to namespace / user / workload from /proc.

The drill-down levels of DESIGN.md come from one of three worlds:

* **Kubernetes** (cgroup path under ``kubepods``): namespace = pod namespace (from the
  service-account secret inside the container's root), user = owning controller derived from
  the pod name, workload = pod name (``HOSTNAME`` inside the container).
* **Slurm** (``SLURM_JOB_ID`` in the environment, or a ``job_<id>`` cgroup): namespace =
  account, user = Slurm user, workload = ``slurm-<jobid>[:<job name>]``.
* **bare metal** (anything else, plain docker containers included): namespace = the team of
  the unix user from a configured map, user = unix user, workload = the command.

Every file is read through one helper that turns an unreadable file (another user's
``environ`` without root) or a vanished pid into ``None``, so a missing fact leaves its level
``unknown`` instead of failing the sample. Results are cached per (pid, start time) because a
training process lives for days while the agent samples every few seconds.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gpufleet.model import UNKNOWN, Attribution, GpuProcess

__all__ = [
    "CgroupFacts",
    "ProcessAttributor",
    "command_workload",
    "parse_cgroup",
    "parse_environ",
    "pod_owner",
]

# Kubernetes draws generated name parts (pod suffixes, ReplicaSet hashes) from this alphabet
# (apimachinery util/rand): no vowels, so a real word in a name ("-plane") is never stripped.
_K8S_RAND = "[bcdfghjklmnpqrstvwxz2456789]"
_DEPLOYMENT_POD = re.compile(rf"^(.+)-{_K8S_RAND}{{6,10}}-{_K8S_RAND}{{5}}$")
_STATEFULSET_POD = re.compile(r"^(.+)-\d+$")
_GENERATED_POD = re.compile(rf"^(.+)-{_K8S_RAND}{{5}}$")
# A CronJob names its Jobs <cronjob>-<scheduled time in minutes since the epoch>.
_CRONJOB_JOB = re.compile(r"^(.+)-\d{8,}$")

_HEX64 = "[0-9a-f]{64}"
# systemd-driver scopes: docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, and
# podman's libpod-<id>.scope. crio-conmon-<id>.scope is CRI-O's monitor, not the container.
_SCOPE_ID = re.compile(rf"^(docker|cri-containerd|crio|libpod)-({_HEX64})\.scope$")
_BARE_ID = re.compile(rf"^{_HEX64}$")
_RUNTIME_BY_SCOPE = {
    "docker": "docker",
    "cri-containerd": "containerd",
    "crio": "cri-o",
    "libpod": "podman",
}
# cgroupfs driver: pod<uid>; systemd driver: kubepods[-<qos>]-pod<uid with _ for ->.slice.
_POD_UID = re.compile(r"^(?:kubepods(?:-[a-z]+)?-)?pod([0-9a-f_-]{36})(?:\.slice)?$")
_SLURM_JOB = re.compile(r"^job_(\d+)$")

_SERVICEACCOUNT_NAMESPACE = "secrets/kubernetes.io/serviceaccount/namespace"
_DEFAULT_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class CgroupFacts:
    """What a process's ``/proc/<pid>/cgroup`` says about where it runs."""

    container_id: str | None = None
    runtime: str | None = None
    """``docker``, ``containerd``, ``cri-o`` or ``podman`` when the path names it."""
    kubernetes: bool = False
    pod_uid: str | None = None
    slurm_job_id: str | None = None


def parse_cgroup(text: str) -> CgroupFacts:
    """Read container, pod and Slurm job facts from the text of ``/proc/<pid>/cgroup``.

    Handles cgroup v1 (one ``id:controllers:path`` line per hierarchy) and v2 (a single
    ``0::path`` line), with both the cgroupfs and the systemd cgroup drivers.

    Args:
        text: The file's content.

    Returns:
        The facts found; fields stay None (``kubernetes`` False) when the path does not show
        them, as inside a private cgroup namespace where the path is just ``/``.
    """
    container_id: str | None = None
    runtime: str | None = None
    kubernetes = False
    pod_uid: str | None = None
    slurm_job_id: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        segments = [s for s in parts[2].split("/") if s]
        in_slurm = any("slurm" in s for s in segments)
        parent = ""
        for seg in segments:
            if seg.startswith("kubepods"):
                kubernetes = True
            if pod_uid is None and (m := _POD_UID.match(seg)):
                pod_uid = m.group(1).replace("_", "-")
            if container_id is None:
                if m := _SCOPE_ID.match(seg):
                    runtime = _RUNTIME_BY_SCOPE[m.group(1)]
                    container_id = m.group(2)
                elif _BARE_ID.match(seg):
                    container_id = seg
                    runtime = "docker" if parent == "docker" else None
            if in_slurm and slurm_job_id is None and (m := _SLURM_JOB.match(seg)):
                slurm_job_id = m.group(1)
            parent = seg
    return CgroupFacts(
        container_id=container_id,
        runtime=runtime,
        kubernetes=kubernetes,
        pod_uid=pod_uid,
        slurm_job_id=slurm_job_id,
    )


def parse_environ(data: bytes) -> dict[str, str]:
    """Split the NUL-separated ``/proc/<pid>/environ`` into a mapping.

    Args:
        data: The raw file content.

    Returns:
        Variable name to value; entries without ``=`` are ignored, values may contain ``=``.
    """
    env: dict[str, str] = {}
    for entry in data.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and name:
            env[name.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env


def pod_owner(pod: str) -> str:
    """Name of the controller that owns a pod, derived from the pod's name.

    ``web-7d4b9c8f6d-x2k9p`` (Deployment) -> ``web``; ``db-0`` (StatefulSet) -> ``db``;
    ``train-x2k9p`` (Job or DaemonSet) -> ``train``; ``nightly-28930140-x2k9p`` (Job of a
    CronJob) -> ``nightly``. A name that fits none of these is its own owner.

    Args:
        pod: The pod name.

    Returns:
        The owner's name.
    """
    for pattern in (_DEPLOYMENT_POD, _STATEFULSET_POD, _GENERATED_POD):
        if m := pattern.match(pod):
            owner = m.group(1)
            if pattern is _GENERATED_POD and (cron := _CRONJOB_JOB.match(owner)):
                return cron.group(1)
            return owner
    return pod


def _looks_like_option_value(arg: str) -> bool:
    # "torchrun --nproc_per_node 8 train.py": a bare number is an option's value, not the
    # script, so skipping it finds "train.py".
    return arg.replace(".", "", 1).isdigit()


def command_workload(argv: Sequence[str], comm: str | None = None) -> str | None:
    """Short command of a process: program basename plus its first operand's basename.

    ``/usr/bin/python3 -u /home/a/train.py --lr 1`` -> ``python3 train.py``;
    ``python -c "..."`` -> ``python -c``.

    Args:
        argv: The command line, as split from ``/proc/<pid>/cmdline``.
        comm: ``/proc/<pid>/comm``, used when the command line is empty (kernel threads,
            zombies).

    Returns:
        The short command, or None when neither argv nor comm is known.
    """
    if not argv or not argv[0]:
        return comm or None
    program = os.path.basename(argv[0].rstrip("/")) or argv[0]
    for arg in argv[1:]:
        if arg == "-c":
            # "python -c CODE", "bash -c CMD": the operand is inline code, not a name.
            return f"{program} -c"
        if arg and not arg.startswith("-") and not _looks_like_option_value(arg):
            operand = os.path.basename(arg.rstrip("/")) or arg
            return f"{program} {operand}"
    return program


def _split_cmdline(data: bytes) -> list[str]:
    parts = [p.decode("utf-8", "replace") for p in data.split(b"\0")]
    while parts and not parts[-1]:
        parts.pop()
    # A process that rewrote its title (setproctitle) leaves one space-separated string.
    if len(parts) == 1 and " " in parts[0]:
        return parts[0].split()
    return parts


def _default_user_lookup(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@dataclass(frozen=True, slots=True)
class _Entry:
    start_ticks: int
    attribution: Attribution
    name: str | None


class ProcessAttributor:
    """Maps a pid to its :class:`~gpufleet.model.Attribution` by reading a /proc tree.

    Args:
        proc_root: The /proc to read; a host's /proc mounted elsewhere (``/host/proc``) when
            the agent runs in a container, or a fake tree in tests.
        team_map: Unix user -> team, the bare-metal namespace level.
        user_lookup: Uid -> user name, None when unknown. Defaults to the password database.
        cache_size: Most pids kept in the cache; the least recently attributed go first.
    """

    def __init__(
        self,
        proc_root: str | Path = "/proc",
        *,
        team_map: Mapping[str, str] | None = None,
        user_lookup: Callable[[int], str | None] | None = None,
        cache_size: int = _DEFAULT_CACHE_SIZE,
    ) -> None:
        self._root = Path(proc_root)
        self._team_map: Mapping[str, str] = dict(team_map or {})
        self._user_lookup = user_lookup or _default_user_lookup
        self._cache_size = max(1, cache_size)
        self._cache: dict[int, _Entry] = {}

    def attribute(self, pid: int) -> Attribution:
        """Who the process belongs to.

        Args:
            pid: Process id as seen in ``proc_root``.

        Returns:
            The attribution; every level ``unknown`` when the pid no longer exists.
        """
        entry = self._lookup(pid)
        return Attribution() if entry is None else entry.attribution

    def enrich(self, process: GpuProcess) -> GpuProcess:
        """Fill a GPU process's attribution, and its name when the driver gave none.

        Args:
            process: The process as the GPU source reported it.

        Returns:
            A copy with ``attribution`` set and ``name`` filled from the command line or comm.
        """
        entry = self._lookup(process.pid)
        if entry is None:
            return replace(process, attribution=Attribution())
        name = process.name if process.name is not None else entry.name
        return replace(process, name=name, attribution=entry.attribution)

    def forget_except(self, pids: Iterable[int]) -> None:
        """Drop cached results for every pid not in ``pids`` (those no longer on a GPU).

        Args:
            pids: The pids to keep.
        """
        keep = set(pids)
        for pid in [p for p in self._cache if p not in keep]:
            del self._cache[pid]

    # --- internals ---------------------------------------------------------------------

    def _lookup(self, pid: int) -> _Entry | None:
        start = self._start_ticks(pid)
        if start is None:
            # Gone (or its stat unreadable): a new process may reuse the pid, so drop it.
            self._cache.pop(pid, None)
            return None
        cached = self._cache.pop(pid, None)
        if cached is None or cached.start_ticks != start:
            cached = self._read(pid, start)
        # Re-inserting keeps the dict in least-recently-used order for eviction.
        self._cache[pid] = cached
        while len(self._cache) > self._cache_size:
            del self._cache[next(iter(self._cache))]
        return cached

    def _bytes(self, pid: int, *parts: str) -> bytes | None:
        try:
            return self._root.joinpath(str(pid), *parts).read_bytes()
        except OSError:
            # PermissionError (no ptrace right), FileNotFoundError / ProcessLookupError (the
            # process exited between reads) and the like all mean: this fact is unknown.
            return None

    def _text(self, pid: int, *parts: str) -> str | None:
        data = self._bytes(pid, *parts)
        return None if data is None else data.decode("utf-8", "replace")

    def _start_ticks(self, pid: int) -> int | None:
        stat = self._text(pid, "stat")
        if stat is None:
            return None
        # comm (field 2) may hold spaces and parentheses; fields after the last ")" start at
        # field 3 (state), so field 22 (starttime) is index 19 there.
        fields = stat[stat.rfind(")") + 1 :].split()
        try:
            return int(fields[19])
        except (IndexError, ValueError):
            return None

    def _uid(self, pid: int) -> int | None:
        status = self._text(pid, "status")
        if status is None:
            return None
        for line in status.splitlines():
            if line.startswith("Uid:"):
                values = line.split()
                return int(values[1]) if len(values) > 1 and values[1].isdigit() else None
        return None

    def _pod_namespace(self, pid: int, env: Mapping[str, str]) -> str | None:
        # Kubelet mounts the secret at /var/run/secrets/...; in most images /var/run is a
        # symlink to /run, and an absolute symlink under /proc/<pid>/root would resolve on
        # *our* root, so try the symlink-free /run path first.
        for base in ("run", "var/run"):
            text = self._text(pid, "root", *base.split("/"), *_SERVICEACCOUNT_NAMESPACE.split("/"))
            if text and text.strip():
                return text.strip()
        # Downward-API convention, used when the secret is not mounted or not readable.
        return env.get("POD_NAMESPACE") or None

    def _read(self, pid: int, start_ticks: int) -> _Entry:
        comm_text = self._text(pid, "comm")
        comm = comm_text.strip() if comm_text else None
        cmdline = self._bytes(pid, "cmdline")
        argv = _split_cmdline(cmdline) if cmdline else []
        name = (os.path.basename(argv[0]) if argv and argv[0] else None) or comm

        uid = self._uid(pid)
        unix_user = None if uid is None else (self._user_lookup(uid) or str(uid))
        cgroup_text = self._text(pid, "cgroup")
        cgroup = parse_cgroup(cgroup_text) if cgroup_text else CgroupFacts()
        environ = self._bytes(pid, "environ")
        env = parse_environ(environ) if environ else {}

        slurm_job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID") or cgroup.slurm_job_id
        kubernetes = cgroup.kubernetes or "KUBERNETES_SERVICE_HOST" in env
        facts = Attribution(unix_user=unix_user, container_id=cgroup.container_id)

        # A Slurm job wins over Kubernetes: with slurmd itself in a pod, the job inside it
        # belongs to the Slurm user, not to whoever owns the slurmd pod.
        if slurm_job_id is not None:
            account = env.get("SLURM_JOB_ACCOUNT") or None
            slurm_user = env.get("SLURM_JOB_USER") or unix_user
            job_name = env.get("SLURM_JOB_NAME") or None
            workload = f"slurm-{slurm_job_id}" + (f":{job_name}" if job_name else "")
            attribution = replace(
                facts,
                namespace=account or UNKNOWN,
                user=slurm_user or UNKNOWN,
                workload=workload,
                slurm_job_id=slurm_job_id,
                slurm_account=account,
                slurm_user=slurm_user,
            )
        elif kubernetes:
            pod = env.get("HOSTNAME") or None
            k8s_namespace = self._pod_namespace(pid, env)
            attribution = replace(
                facts,
                namespace=k8s_namespace or UNKNOWN,
                user=pod_owner(pod) if pod else UNKNOWN,
                workload=pod or UNKNOWN,
                pod=pod,
                k8s_namespace=k8s_namespace,
            )
        else:
            command = command_workload(argv, comm)
            team = self._team_map.get(unix_user) if unix_user else None
            attribution = replace(
                facts,
                namespace=team or UNKNOWN,
                user=unix_user or UNKNOWN,
                workload=command or UNKNOWN,
            )
        return _Entry(start_ticks=start_ticks, attribution=attribution, name=name)
