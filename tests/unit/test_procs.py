"""ProcessAttributor against the checked-in fake /proc tree in tests/fixtures/proc."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest

from gpufleet.collectors.procs import (
    CgroupFacts,
    ProcessAttributor,
    command_workload,
    parse_cgroup,
    parse_environ,
    pod_owner,
)
from gpufleet.model import UNKNOWN, Attribution, GpuProcess

PROC = Path(__file__).resolve().parents[1] / "fixtures" / "proc"
USERS = {0: "root", 1000: "alice", 1001: "bob", 1002: "carol"}
TEAMS = {"alice": "vision", "bob": "physics-team"}

CID_DOCKER = "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970"
CID_K8S_V1 = "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d"
CID_K8S_V2 = "b2a7c1e0d3f4958677a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0"


def attributor(root: Path = PROC) -> ProcessAttributor:
    return ProcessAttributor(root, team_map=TEAMS, user_lookup=USERS.get)


def test_bare_metal_process_of_a_mapped_team_user() -> None:
    a = attributor().attribute(1001)
    assert a == Attribution(
        namespace="vision",
        user="alice",
        workload="python3 train.py",
        unix_user="alice",
    )


def test_docker_container_process_is_bare_metal_with_its_container_id() -> None:
    a = attributor().attribute(2002)
    assert a.container_id == CID_DOCKER
    # Docker sets HOSTNAME to the short container id; that must not be taken for a pod.
    assert a.pod is None
    assert a.k8s_namespace is None
    assert (a.namespace, a.user, a.workload) == (UNKNOWN, "root", "python serve.py")
    assert a.unix_user == "root"


def test_kubernetes_pod_cgroup_v1_with_serviceaccount_namespace() -> None:
    a = attributor().attribute(3003)
    assert a == Attribution(
        namespace="ml-research",
        user="trainer",
        workload="trainer-7d4b9c8f6d-x2k9p",
        unix_user="alice",
        container_id=CID_K8S_V1,
        pod="trainer-7d4b9c8f6d-x2k9p",
        k8s_namespace="ml-research",
    )


def test_kubernetes_pod_cgroup_v2_systemd_without_secret() -> None:
    a = attributor().attribute(4004)
    assert a.container_id == CID_K8S_V2
    assert a.pod == "inference-0"
    assert a.k8s_namespace is None
    # StatefulSet: owner is the pod name without its ordinal.
    assert (a.namespace, a.user, a.workload) == (UNKNOWN, "inference", "inference-0")


def test_slurm_job() -> None:
    a = attributor().attribute(5005)
    assert a == Attribution(
        namespace="physics",
        user="bob",
        workload="slurm-1234:train",
        unix_user="bob",
        slurm_job_id="1234",
        slurm_account="physics",
        slurm_user="bob",
    )


@pytest.fixture
def proc_copy(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    shutil.copytree(PROC, root)
    return root


def make_unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``path`` raise PermissionError as another user's environ does without root."""
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads through mode bits: refuse it in Path instead
        real = Path.read_bytes

        def guarded(self: Path) -> bytes:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", guarded)


def test_unreadable_environ_degrades_to_cgroup_and_uid(
    proc_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_unreadable(proc_copy / "6006" / "environ", monkeypatch)
    a = attributor(proc_copy).attribute(6006)
    # The job id still comes from the cgroup path, the user from the process's uid; the
    # account was only in the environment, so the namespace level is unknown.
    assert a == Attribution(
        namespace=UNKNOWN,
        user="carol",
        workload="slurm-777",
        unix_user="carol",
        slurm_job_id="777",
        slurm_user="carol",
    )


def test_unreadable_environ_of_a_pod_leaves_pod_levels_unknown(
    proc_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_unreadable(proc_copy / "3003" / "environ", monkeypatch)
    a = attributor(proc_copy).attribute(3003)
    assert a.container_id == CID_K8S_V1
    assert a.k8s_namespace == "ml-research"
    assert a.pod is None
    assert (a.namespace, a.user, a.workload) == ("ml-research", UNKNOWN, UNKNOWN)


def test_vanished_pid_gives_unknown_everywhere() -> None:
    attr = attributor()
    assert attr.attribute(9999) == Attribution()
    process = GpuProcess(pid=9999, used_memory_bytes=1024)
    assert attr.enrich(process) == process


def test_pid_that_exited_between_reads_degrades() -> None:
    # Only /proc/7007/stat is left: every other read fails with FileNotFoundError.
    a = attributor().attribute(7007)
    assert a == Attribution()


def test_enrich_fills_name_and_attribution_but_keeps_a_driver_name() -> None:
    attr = attributor()
    unnamed = attr.enrich(GpuProcess(pid=1001, used_memory_bytes=2**30))
    assert unnamed.name == "python3"
    assert unnamed.used_memory_bytes == 2**30
    assert unnamed.attribution.user == "alice"
    # comm says pt_main_thread (PyTorch renames it); the command line's program is clearer.
    assert attr.enrich(GpuProcess(pid=3003)).name == "python"
    named = attr.enrich(GpuProcess(pid=5005, name="/usr/bin/python"))
    assert named.name == "/usr/bin/python"
    assert named.attribution.workload == "slurm-1234:train"


def test_unknown_uid_is_reported_by_number() -> None:
    attr = ProcessAttributor(PROC, user_lookup=lambda uid: None)
    a = attr.attribute(1001)
    assert (a.unix_user, a.user, a.namespace) == ("1000", "1000", UNKNOWN)


def test_default_user_lookup_uses_the_password_database() -> None:
    # uid 0 is root on any Linux machine; 1001's fixture says uid 1000, maybe unknown here.
    assert ProcessAttributor(PROC).attribute(2002).unix_user == "root"


def set_start_time(root: Path, pid: int, start: int) -> None:
    stat = root / str(pid) / "stat"
    head, _, rest = stat.read_text().rpartition(")")
    fields = rest.split()
    fields[19] = str(start)
    stat.write_text(f"{head}) {' '.join(fields)}\n")


def test_cache_reads_once_per_process_start_time(proc_copy: Path) -> None:
    attr = attributor(proc_copy)
    assert attr.attribute(1001).workload == "python3 train.py"

    # Same pid, same start time: the cached answer stands even though the files changed.
    (proc_copy / "1001" / "cmdline").write_bytes(b"python3\0eval.py\0")
    assert attr.attribute(1001).workload == "python3 train.py"

    # The pid was reused by a new process (new start time): read again.
    set_start_time(proc_copy, 1001, 999_999)
    assert attr.attribute(1001).workload == "python3 eval.py"


def test_stat_with_parentheses_in_comm(proc_copy: Path) -> None:
    stat = proc_copy / "1001" / "stat"
    rest = stat.read_text().split(")", 1)[1]
    stat.write_text(f"1001 (my (odd) job){rest}")
    attr = attributor(proc_copy)
    assert attr.attribute(1001).user == "alice"
    (proc_copy / "1001" / "cmdline").write_bytes(b"python3\0eval.py\0")
    # The start time parsed the same despite the parentheses, so the cache holds.
    assert attr.attribute(1001).workload == "python3 train.py"


def test_forget_except_and_vanished_pids_leave_the_cache(proc_copy: Path) -> None:
    attr = attributor(proc_copy)
    for pid in (1001, 2002, 5005):
        attr.attribute(pid)
    attr.forget_except([2002])
    for pid in (1001, 5005):
        (proc_copy / str(pid) / "cmdline").write_bytes(b"bash\0")
    # Forgotten: read afresh.
    assert attr.attribute(1001).workload == "bash"

    (proc_copy / "2002" / "cmdline").write_bytes(b"bash\0")
    assert attr.attribute(2002).workload == "python serve.py"  # kept
    shutil.rmtree(proc_copy / "2002")
    assert attr.attribute(2002) == Attribution()


def test_cache_is_bounded_least_recently_used_first(proc_copy: Path) -> None:
    attr = ProcessAttributor(proc_copy, team_map=TEAMS, user_lookup=USERS.get, cache_size=2)
    attr.attribute(1001)
    attr.attribute(2002)
    attr.attribute(1001)  # 1001 is now the most recently used
    attr.attribute(5005)  # evicts 2002
    for pid in (1001, 2002):
        (proc_copy / str(pid) / "cmdline").write_bytes(b"bash\0")
    assert attr.attribute(1001).workload == "python3 train.py"
    assert attr.attribute(2002).workload == "bash"


# --- pure parsers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f"0::/system.slice/docker-{CID_DOCKER}.scope\n",
            CgroupFacts(container_id=CID_DOCKER, runtime="docker"),
            id="docker-systemd-v2",
        ),
        pytest.param(
            f"12:memory:/docker/{CID_DOCKER}\n1:name=systemd:/docker/{CID_DOCKER}\n",
            CgroupFacts(container_id=CID_DOCKER, runtime="docker"),
            id="docker-cgroupfs-v1",
        ),
        pytest.param(
            "0::/kubepods.slice/kubepods-besteffort.slice/"
            "kubepods-besteffort-pod0f5c3e2a_6b1d_4c8e_9a7f_2d4b6e8a0c1f.slice/"
            f"crio-{CID_K8S_V1}.scope\n",
            CgroupFacts(
                container_id=CID_K8S_V1,
                runtime="cri-o",
                kubernetes=True,
                pod_uid="0f5c3e2a-6b1d-4c8e-9a7f-2d4b6e8a0c1f",
            ),
            id="crio-besteffort-systemd",
        ),
        pytest.param(
            "0::/kubepods.slice/kubepods-pod0f5c3e2a_6b1d_4c8e_9a7f_2d4b6e8a0c1f.slice/"
            f"cri-containerd-{CID_K8S_V2}.scope\n",
            CgroupFacts(
                container_id=CID_K8S_V2,
                runtime="containerd",
                kubernetes=True,
                pod_uid="0f5c3e2a-6b1d-4c8e-9a7f-2d4b6e8a0c1f",
            ),
            id="containerd-guaranteed-systemd",
        ),
        pytest.param(
            f"4:memory:/kubepods/pod0f5c3e2a-6b1d-4c8e-9a7f-2d4b6e8a0c1f/{CID_K8S_V1}\n",
            CgroupFacts(
                container_id=CID_K8S_V1,
                kubernetes=True,
                pod_uid="0f5c3e2a-6b1d-4c8e-9a7f-2d4b6e8a0c1f",
            ),
            id="guaranteed-cgroupfs-v1",
        ),
        pytest.param(
            "0::/system.slice/node7_slurmstepd.scope/job_42/step_extern/user\n",
            CgroupFacts(slurm_job_id="42"),
            id="slurm-multiple-slurmd-v2",
        ),
        pytest.param(
            "0::/user.slice/job_42/app.scope\n",
            CgroupFacts(),
            id="job-segment-outside-slurm",
        ),
        pytest.param("0::/\n", CgroupFacts(), id="private-cgroup-namespace"),
        pytest.param("", CgroupFacts(), id="empty"),
    ],
)
def test_parse_cgroup(text: str, expected: CgroupFacts) -> None:
    assert parse_cgroup(text) == expected


def test_parse_environ() -> None:
    env = parse_environ(b"A=1\0OPTS=--x=y\0broken\0=nameless\0EMPTY=\0")
    assert env == {"A": "1", "OPTS": "--x=y", "EMPTY": ""}


@pytest.mark.parametrize(
    ("pod", "owner"),
    [
        ("trainer-7d4b9c8f6d-x2k9p", "trainer"),
        ("llm-serving-api-5b7c9d8f4-qwx2z", "llm-serving-api"),
        ("inference-0", "inference"),
        ("kafka-broker-12", "kafka-broker"),
        ("train-x2k9p", "train"),
        ("nightly-eval-28930140-x2k9p", "nightly-eval"),
        ("notebook", "notebook"),
        # "plane" holds vowels, so it is not a generated suffix and stays.
        ("control-plane", "control-plane"),
    ],
)
def test_pod_owner(pod: str, owner: str) -> None:
    assert pod_owner(pod) == owner


@pytest.mark.parametrize(
    ("argv", "comm", "expected"),
    [
        (["/usr/bin/python3", "-u", "/home/a/train.py", "--lr", "1"], None, "python3 train.py"),
        (["torchrun", "--nproc_per_node", "8", "finetune.py"], None, "torchrun finetune.py"),
        (
            ["python", "-m", "vllm.entrypoints.api_server"],
            None,
            "python vllm.entrypoints.api_server",
        ),
        (["/opt/bin/tritonserver", "--model-repository=/m"], None, "tritonserver"),
        (["python3", "-c", "import torch; torch.zeros(1).cuda()"], None, "python3 -c"),
        (["bash", "/dev/fd/3"], None, "bash 3"),
        ([], "kworker/0:1", "kworker/0:1"),
        ([], None, None),
    ],
)
def test_command_workload(argv: list[str], comm: str | None, expected: str | None) -> None:
    assert command_workload(argv, comm) == expected


def test_retitled_process_cmdline_is_split_on_spaces(proc_copy: Path) -> None:
    # setproctitle leaves one NUL-free string behind.
    (proc_copy / "1001" / "cmdline").write_bytes(b"python3 /srv/app.py --workers 4\0")
    assert attributor(proc_copy).attribute(1001).workload == "python3 app.py"


def test_real_proc_smoke() -> None:
    attr = ProcessAttributor()
    process = attr.enrich(GpuProcess(pid=os.getpid()))
    me = pwd.getpwuid(os.getuid()).pw_name
    assert process.attribution.unix_user == me
    assert process.name is not None
    assert "python" in process.name
    assert process.attribution.workload != UNKNOWN
