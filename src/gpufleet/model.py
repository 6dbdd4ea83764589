"""Typed records shared by every layer.

Records are frozen stdlib dataclasses so that ``collectors/`` runs with nothing but
nvidia-ml-py and psutil installed. Units live in field names (``_pct``, ``_bytes``, ``_w``,
``_c``, ``_mhz``, ``_s``). A reading the hardware or driver does not support is ``None``,
never 0 and never a string sentinel. Timestamps are epoch seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

UNKNOWN = "unknown"
"""Value of an attribution level (namespace, user, workload) that could not be determined."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who a GPU process belongs to, at every level of the drill-down hierarchy.

    ``namespace`` / ``user`` / ``workload`` are the drill-down levels of DESIGN.md: from
    Kubernetes (pod namespace / pod owner / pod), Slurm (account / user / job) or bare metal
    (team map / unix user / command). The other fields are the raw facts they came from.
    """

    namespace: str = UNKNOWN
    user: str = UNKNOWN
    workload: str = UNKNOWN
    unix_user: str | None = None
    container_id: str | None = None
    pod: str | None = None
    k8s_namespace: str | None = None
    slurm_job_id: str | None = None
    slurm_account: str | None = None
    slurm_user: str | None = None
    workload_kind: str | None = None
    """training / inference / notebook / ... when known (sim, labels), else None."""


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A process holding a GPU context."""

    pid: int
    name: str | None = None
    used_memory_bytes: int | None = None
    sm_util_pct: float | None = None
    kind: str = "compute"
    """``compute`` or ``graphics``."""
    attribution: Attribution = field(default_factory=Attribution)


@dataclass(frozen=True, slots=True)
class MigInstance:
    """One MIG GPU instance of a physical GPU."""

    uuid: str
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None
    profile: str | None = None
    mem_total_bytes: int | None = None
    mem_used_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One reading of one GPU at one time.

    ``lost`` is True when the GPU fell off the bus or stopped answering; then only the
    identity fields are filled and ``error`` says why.
    """

    uuid: str
    index: int
    name: str | None = None
    driver_version: str | None = None
    pci_bus_id: str | None = None
    cuda_capability: str | None = None
    lost: bool = False
    error: str | None = None
    util_gpu_pct: float | None = None
    util_mem_pct: float | None = None
    util_encoder_pct: float | None = None
    util_decoder_pct: float | None = None
    mem_total_bytes: int | None = None
    mem_used_bytes: int | None = None
    mem_free_bytes: int | None = None
    temp_c: float | None = None
    temp_slowdown_c: float | None = None
    temp_shutdown_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    clock_graphics_mhz: float | None = None
    clock_sm_mhz: float | None = None
    clock_mem_mhz: float | None = None
    pstate: str | None = None
    """Performance state as ``"P0"`` .. ``"P15"``."""
    fan_pct: float | None = None
    pcie_tx_bytes_per_s: float | None = None
    pcie_rx_bytes_per_s: float | None = None
    ecc_corrected_total: int | None = None
    ecc_uncorrected_total: int | None = None
    xid_errors: tuple[int, ...] = ()
    """XID error codes seen since the previous sample."""
    throttle_reasons: tuple[str, ...] | None = None
    """Active clock-throttle reasons by name (``sw_power_cap``, ``hw_thermal_slowdown``, ...)."""
    mig_mode: bool | None = None
    mig_instances: tuple[MigInstance, ...] = ()
    processes: tuple[GpuProcess, ...] = ()

    @property
    def power_pct(self) -> float | None:
        """Power draw as a percentage of the enforced limit."""
        if self.power_w is None or not self.power_limit_w:
            return None
        return 100.0 * self.power_w / self.power_limit_w

    @property
    def mem_used_pct(self) -> float | None:
        """Memory used as a percentage of total."""
        if self.mem_used_bytes is None or not self.mem_total_bytes:
            return None
        return 100.0 * self.mem_used_bytes / self.mem_total_bytes

    @property
    def allocated(self) -> bool:
        """DESIGN.md: a GPU is allocated when it holds at least one compute process."""
        return any(p.kind == "compute" for p in self.processes)


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """Space on one mounted filesystem."""

    mount: str
    device: str | None
    fstype: str | None
    total_bytes: int
    used_bytes: int
    free_bytes: int
    used_pct: float


@dataclass(frozen=True, slots=True)
class NetRate:
    """Traffic on one network interface; rates are None on the first sample."""

    iface: str
    rx_bytes_per_s: float | None
    tx_bytes_per_s: float | None
    rx_packets_per_s: float | None
    tx_packets_per_s: float | None
    rx_bytes_total: int
    tx_bytes_total: int
    rx_errors_total: int = 0
    tx_errors_total: int = 0


@dataclass(frozen=True, slots=True)
class SystemSample:
    """One reading of the host: CPU, memory, disks and network."""

    cpu_pct: float | None
    cpu_per_core_pct: tuple[float, ...]
    cpu_count: int | None
    load_1: float | None
    load_5: float | None
    load_15: float | None
    mem_total_bytes: int
    mem_used_bytes: int
    mem_available_bytes: int
    mem_pct: float
    swap_total_bytes: int
    swap_used_bytes: int
    swap_pct: float
    disks: tuple[DiskUsage, ...] = ()
    disk_read_bytes_per_s: float | None = None
    disk_write_bytes_per_s: float | None = None
    disk_read_ops_per_s: float | None = None
    disk_write_ops_per_s: float | None = None
    net: tuple[NetRate, ...] = ()
    boot_time_s: float | None = None


@dataclass(frozen=True, slots=True)
class GpuSourceStatus:
    """What the GPU source could do at start-up (seed 002's ``/gpu/info``)."""

    source: str
    """``nvml``, ``sim`` or ``none``."""
    available: bool
    gpu_count: int
    library_installed: bool
    driver_version: str | None = None
    nvml_version: str | None = None
    reason: str | None = None
    """Why GPUs are unavailable, in words a user can act on."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one sampling pass of one node saw."""

    ts_s: float
    cluster: str
    node: str
    gpus: tuple[GpuSample, ...]
    system: SystemSample | None
    interval_s: float
    """Seconds this snapshot stands for (time-weighting of means and GPU-hours)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: a rule that fired for a subject (a GPU or the host)."""

    rule: str
    severity: str
    """``info``, ``warning`` or ``critical``."""
    node: str
    subject: str
    """GPU UUID, or ``host``."""
    message: str
    value: float | None
    threshold: float | None
    started_s: float
    """When the condition began (before its hold time ran out)."""
    fired_s: float
    resolved_s: float | None = None
    id: int | None = None
    cluster: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One run (or dry run) of a recommendation's action: who asked, what ran, what happened.

    Written to the store before the action runs (``status`` ``running``) and again when it
    ends, so an interrupted run still leaves a trace. ``action_params`` and ``target`` are
    copied from the recommendation (the target's set levels only): the log stays readable
    after the recommendation itself is gone.
    """

    id: int | None = None
    recommendation_id: str
    kind: str
    action_type: str
    action_params: Mapping[str, object] = field(default_factory=dict)
    target: Mapping[str, object] = field(default_factory=dict)
    title: str
    requested_by: str
    requested_s: float
    dry_run: bool
    executor: str
    """``dry-run``, ``webhook``, ``command``, or the name of a registered handler."""
    status: str
    """``planned`` (dry run), ``running``, ``succeeded`` or ``failed``."""
    detail: str = ""
    """What happened: HTTP status and body excerpt, exit code and output tail, or why not."""
    finished_s: float | None = None
    expected_monthly_saving_usd: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatTurn:
    """One question to the analyst and its reply, in a session."""

    session_id: str
    seq: int
    """1 for a session's first turn, then 2, 3, ..."""
    ts_s: float
    query: str
    reply: Mapping[str, object] = field(default_factory=dict)
    """The reply as served (answer, intent, entities, clarification, insights, data)."""
    state: Mapping[str, object] = field(default_factory=dict)
    """What a follow-up needs: the understood intent and entities, a pending clarification."""
    cluster: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSession:
    """A conversation with the analyst: its turns' span, count and first question."""

    id: str
    created_s: float
    updated_s: float
    turns: int
    title: str
    """The first question (cut to 120 characters)."""
    cluster: str | None = None
