"""The demo cluster ``gpu-cluster-01``: its workloads, and the findings planted in them.

Training jobs, production inference, notebooks and batch work of five namespaces. Three
things are put there on purpose and returned as data (``GroundTruth``) so that tests and
demos can check that analysis finds them:

* notebooks that hold a GPU for days while doing nothing (idle allocated GPUs);
* ml-team's usage falling in the last seven days because user_a submits fewer jobs;
* inference load that follows the day (peak at 15:00 UTC, trough at 03:00).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gpufleet.agent.demo_truth import (
    WEEK_S,
    DiurnalLoad,
    GroundTruth,
    IdleHolder,
    team_drop,
)
from gpufleet.collectors.sim_models import DEFAULT_MODEL, get_model
from gpufleet.collectors.sim_scenario import Scenario, ScenarioBuilder
from gpufleet.collectors.sim_workload import (
    DIURNAL_PEAK_HOUR_UTC,
    UtilPattern,
    Workload,
    WorkloadKind,
    stable_seed,
)
from gpufleet.store.base import DAY_S

log = logging.getLogger(__name__)

CLUSTER = "gpu-cluster-01"

DEMO_TEAMS: dict[str, tuple[str, ...]] = {
    "ml-team": ("user_a", "user_b", "user_c"),
    "cv-team": ("user_d", "user_e", "user_f"),
    "nlp-team": ("user_g", "user_h", "user_i"),
    "data-processing": ("user_j", "user_k", "user_l", "svc-etl"),
    "production": ("svc-llm", "svc-search"),
}
"""Namespaces of the demo cluster and the users in each."""

DROP_NAMESPACE = "ml-team"
DROP_USER = "user_a"
DROP_JOBS_BEFORE = 28
DROP_JOBS_AFTER = 12
"""user_a's weekly job count before and during the last seven days, on 4 x 8 GPUs."""


@dataclass(frozen=True, slots=True)
class DemoScenario:
    """The simulated cluster: its nodes, its workload schedule and the planted findings."""

    cluster: str
    nodes: tuple[str, ...]
    gpus_per_node: int
    model: str
    seed: int
    start_s: float
    end_s: float
    scenario: Scenario
    truth: GroundTruth


@dataclass(frozen=True, slots=True)
class _Profile:
    """A stream of similar jobs one user submits every week.

    Rates are for the 21 GPUs that 4 nodes x 8 GPUs leave free of long-running work.
    """

    namespace: str
    user: str
    prefix: str
    kind: WorkloadKind
    pattern: UtilPattern
    gpus: int
    hours: float
    per_week: int
    level: float
    mem: tuple[float, float]


_T, _B = WorkloadKind.TRAINING, WorkloadKind.BATCH
_BUSY, _BATCH = UtilPattern.BUSY, UtilPattern.BATCH
_DP = "data-processing"
_PROFILES = (
    # namespace, user, job name prefix, kind, pattern, GPUs, hours, jobs a week, level %, memory
    _Profile(
        "ml-team", DROP_USER, "llm-finetune", _T, _BUSY, 2, 5, DROP_JOBS_BEFORE, 93, (0.7, 0.9)
    ),
    _Profile("ml-team", "user_b", "rl-policy", _T, _BUSY, 2, 8, 8, 91, (0.5, 0.8)),
    _Profile("ml-team", "user_c", "eval-harness", _B, _BATCH, 1, 3, 42, 72, (0.4, 0.7)),
    _Profile("cv-team", "user_e", "detector-train", _T, _BUSY, 4, 6, 10, 92, (0.6, 0.9)),
    _Profile("cv-team", "user_f", "segment-sweep", _T, _BUSY, 1, 4, 24, 88, (0.3, 0.6)),
    _Profile("cv-team", "user_d", "augment", _B, _BATCH, 1, 2, 14, 65, (0.2, 0.4)),
    _Profile("nlp-team", "user_h", "pretrain-small", _T, _BUSY, 4, 8, 10, 95, (0.8, 0.95)),
    _Profile("nlp-team", "user_i", "sft-run", _T, _BUSY, 2, 6, 12, 92, (0.6, 0.9)),
    _Profile("nlp-team", "user_g", "tokenize", _B, _BATCH, 1, 2, 12, 60, (0.1, 0.3)),
    _Profile(_DP, "user_j", "feature-extract", _B, _BATCH, 1, 1.5, 70, 75, (0.2, 0.5)),
    _Profile(_DP, "user_l", "embed-backfill", _B, _BATCH, 2, 3, 18, 80, (0.3, 0.6)),
    _Profile(_DP, "user_k", "video-decode", _B, _BATCH, 1, 1, 30, 55, (0.1, 0.3)),
)

_IDLE_NOTEBOOKS = (
    # (namespace, user, workload, days open before the end of the history)
    ("cv-team", "user_d", "jupyter-user-d", 45.0),
    ("nlp-team", "user_g", "jupyter-nlp-eda", 16.5),
    ("data-processing", "user_k", "notebook-feature-debug", 15.2),
    ("cv-team", "user_f", "vscode-dev-user-f", 21.0),
)
"""Notebooks left open; each spans both of the last two weeks so team trends stay flat."""

_INFERENCE = (
    # (workload, user, memory share, level %, power intensity, process)
    ("llm-chat-api", "svc-llm", 0.9, 78.0, 0.9, "vllm"),
    ("embedding-service", "svc-search", 0.18, 45.0, 0.7, "tritonserver"),
    ("reranker", "svc-search", 0.12, 32.0, 0.65, "tritonserver"),
)
_GPUS_PER_REPLICA = 8
"""GPUs of the cluster per LLM replica."""
_WEEKEND_FACTOR = 0.65
_FREE_GPUS_AT_DEFAULT = 21
_JITTER_S = 3600.0
_WAIT_S = 900.0
_MAX_WAITS = 48
_WARMUP_S = 2 * DAY_S
"""Jobs are also scheduled this long before the history starts, so it opens mid-flight."""


def node_names(nodes: int) -> tuple[str, ...]:
    """``gpu-node-01`` .. for ``nodes`` nodes."""
    return tuple(f"gpu-node-{i + 1:02d}" for i in range(nodes))


def build_demo_scenario(
    *,
    seed: int,
    nodes: int,
    gpus_per_node: int,
    start_s: float,
    end_s: float,
    model: str = DEFAULT_MODEL,
) -> DemoScenario:
    """Lay out the demo cluster's workloads over ``[start_s, end_s)``.

    Job rates scale with the number of GPUs (they are set for 4 nodes x 8 GPUs), and so
    does the number of inference replicas; the GPUs held for weeks are packed so that small
    nodes keep room for jobs. So any size from 8 GPUs and 2 per node up shows the same
    story. On the smallest ones only two GPUs are left for jobs, and the ml-team drop,
    carried by a handful of jobs there, varies more in size from seed to seed.

    Raises:
        ValueError: fewer than 8 GPUs in all or fewer than 2 per node, an empty time
            span, or an unknown model.
    """
    get_model(model)
    total = nodes * gpus_per_node
    if nodes < 1 or gpus_per_node < 2 or total < 8:
        raise ValueError(
            "the demo cluster needs at least 8 GPUs in all and 2 per node, "
            f"got {nodes} node(s) x {gpus_per_node} GPU(s)"
        )
    if end_s <= start_s:
        raise ValueError("end_s must be after start_s")
    names = node_names(nodes)
    rng = random.Random(stable_seed("demo", seed, nodes, gpus_per_node))
    builder = ScenarioBuilder(dict.fromkeys(names, gpus_per_node))
    diurnal = _place_inference(
        builder, rng, names=names, gpus_per_node=gpus_per_node, start_s=start_s, end_s=end_s
    )
    _place_stream(builder, rng, names, start_s, end_s)
    holders = _place_notebooks(
        builder, rng, names=names, total_gpus=total, start_s=start_s, end_s=end_s
    )
    drop_applies = end_s - start_s >= 2 * WEEK_S
    # Job rates are set for the 21 GPUs that 4 x 8 leaves free of long-running work; they
    # scale with what is free here, so a small cluster is not more crowded than the default.
    pinned = {(w.node, i) for w in builder.workloads for i in w.gpu_indices}
    _place_jobs(
        builder,
        rng,
        names=names,
        scale=(total - len(pinned)) / _FREE_GPUS_AT_DEFAULT,
        start_s=start_s,
        end_s=end_s,
        drop=drop_applies,
    )
    scenario = builder.build(start_s=start_s, end_s=end_s)
    truth = GroundTruth(
        idle_holders=holders,
        team_drop=(
            team_drop(scenario, namespace=DROP_NAMESPACE, user=DROP_USER, end_s=end_s)
            if drop_applies
            else None
        ),
        diurnal=diurnal,
    )
    return DemoScenario(
        cluster=CLUSTER,
        nodes=names,
        gpus_per_node=gpus_per_node,
        model=get_model(model).name,
        seed=seed,
        start_s=start_s,
        end_s=end_s,
        scenario=scenario,
        truth=truth,
    )


def _pod(rng: random.Random, name: str) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return f"{name}-{''.join(rng.choice(alphabet) for _ in range(5))}"


def _place_inference(
    builder: ScenarioBuilder,
    rng: random.Random,
    *,
    names: Sequence[str],
    gpus_per_node: int,
    start_s: float,
    end_s: float,
) -> DiurnalLoad:
    """One LLM replica per 8 GPUs (at most one per node, at least one) on the last GPU of
    nodes spread over the cluster; embedding and reranker share a GPU next to every other
    replica. Each replica is rolled out again every few days (a new process).

    On 8 or more GPUs per node that is every node. Smaller nodes get fewer replicas than
    nodes, so inference holds about the same share of the cluster at any size and leaves
    room for the notebooks, the featurizer and the jobs.
    """
    replicas = min(len(names), max(1, len(names) * gpus_per_node // _GPUS_PER_REPLICA))
    for replica in range(replicas):
        node = names[replica * len(names) // replicas]
        wanted = [(0, gpus_per_node - 1)]
        if replica % 2 == 0:
            wanted += [(1, gpus_per_node - 2), (2, gpus_per_node - 2)]
        for spec, index in wanted:
            name, user, mem, level, intensity, process = _INFERENCE[spec]
            t = start_s - rng.uniform(1.0, 6.0) * DAY_S
            while t < end_s:
                release_end = t + rng.uniform(3.0, 6.0) * DAY_S
                builder.add(
                    Workload(
                        name=name,
                        namespace="production",
                        user=user,
                        kind=WorkloadKind.INFERENCE,
                        node=node,
                        gpu_indices=(index,),
                        start_s=t,
                        end_s=release_end,
                        pattern=UtilPattern.BURSTY,
                        mem_frac=mem,
                        level_pct=level,
                        power_intensity=intensity,
                        seed=rng.getrandbits(62),
                        process_name=process,
                        unix_user="root",
                        pod=_pod(rng, f"{name}-{rng.getrandbits(32):08x}"[:-1]),
                    )
                )
                t = release_end + rng.uniform(60.0, 240.0)  # rollout: old pod gone, new starting
    return DiurnalLoad(
        namespace="production",
        workloads=tuple(spec[0] for spec in _INFERENCE),
        peak_hour_utc=DIURNAL_PEAK_HOUR_UTC,
        trough_hour_utc=(DIURNAL_PEAK_HOUR_UTC + 12.0) % 24.0,
        weekend_factor=_WEEKEND_FACTOR,
    )


def _place_held(
    builder: ScenarioBuilder, template: Workload, order: Sequence[str]
) -> Workload | None:
    """Put a workload that holds one GPU for weeks on a node, keeping room for jobs.

    It goes to the first node in ``order`` that it leaves either full or with at least
    half its GPUs free, the widest a job gets (see ``_place_jobs``). Failing that, it goes
    to the fullest node that has a free GPU, so the others keep their room. On small nodes
    taking the first free GPU in order can leave a GPU here and a GPU there, too few on
    any one node for the two-GPU jobs the team-drop finding is made of.
    """
    free = {
        node: len(builder.free_gpus(node, template.start_s, template.end_s, template))
        for node in order
    }
    open_nodes = [node for node in order if free[node] > 0]
    if not open_nodes:
        return None
    keeps_room = [
        node
        for node in open_nodes
        if free[node] == 1 or free[node] - 1 >= builder.gpus_per_node[node] // 2
    ]
    node = keeps_room[0] if keeps_room else min(open_nodes, key=lambda n: free[n])
    return builder.place(template, [node], 1)


def _place_stream(
    builder: ScenarioBuilder, rng: random.Random, names: Sequence[str], start_s: float, end_s: float
) -> None:
    """A streaming featurizer whose load swings with the working day."""
    template = Workload(
        name="stream-featurizer",
        namespace="data-processing",
        user="svc-etl",
        kind=WorkloadKind.BATCH,
        node=names[0],
        gpu_indices=(0,),
        start_s=start_s - 9.0 * DAY_S,
        end_s=end_s + 30.0 * DAY_S,
        pattern=UtilPattern.DIURNAL,
        mem_frac=0.35,
        level_pct=80.0,
        power_intensity=0.85,
        seed=rng.getrandbits(62),
        unix_user="svc-etl",
        pod=_pod(rng, "stream-featurizer-6c8d5f7b9"),
    )
    order = [*names[1:], names[0]]
    if _place_held(builder, template, order) is None:
        raise ValueError("no GPU is free for the streaming featurizer")


def _place_notebooks(
    builder: ScenarioBuilder,
    rng: random.Random,
    *,
    names: Sequence[str],
    total_gpus: int,
    start_s: float,
    end_s: float,
) -> tuple[IdleHolder, ...]:
    count = 4 if total_gpus >= 24 else 3
    holders = []
    for pos, (namespace, user, name, open_days) in enumerate(_IDLE_NOTEBOOKS[:count]):
        template = Workload(
            name=name,
            namespace=namespace,
            user=user,
            kind=WorkloadKind.NOTEBOOK,
            node=names[0],
            gpu_indices=(0,),
            start_s=end_s - open_days * DAY_S - rng.uniform(0.0, 3600.0),
            # Still open when the history ends: that is the finding.
            end_s=end_s + 3.0 * DAY_S,
            pattern=UtilPattern.IDLE,
            mem_frac=rng.uniform(0.2, 0.5),
            level_pct=0.0,
            seed=rng.getrandbits(62),
            process_name="ipykernel_launcher",
            unix_user=user,
            pod=_pod(rng, name),
        )
        order = [names[(len(names) - 1 - pos + k) % len(names)] for k in range(len(names))]
        placed = _place_held(builder, template, order)
        if placed is None:
            raise ValueError(f"no GPU is free for notebook {name}")
        holders.append(
            IdleHolder(
                namespace=namespace,
                user=user,
                workload=name,
                node=placed.node,
                gpu_indices=placed.gpu_indices,
                start_s=placed.start_s,
                end_s=placed.end_s,
                mem_frac=placed.mem_frac,
            )
        )
    return tuple(holders)


def _week_weights(start_s: float, end_s: float) -> list[tuple[float, float, float]]:
    """(hour start, hour end, weight) over the window: people submit in working hours."""
    out = []
    t = start_s
    while t < end_s:
        nxt = min(end_s, (math.floor(t / 3600.0) + 1) * 3600.0)
        hour = int(t % DAY_S // 3600)
        weekend = (int(t // DAY_S) + 3) % 7 >= 5
        weight = 0.5 if weekend else (3.0 if 8 <= hour < 19 else 1.0)
        out.append((t, nxt, weight * (nxt - t) / 3600.0))
        t = nxt
    return out


def _stratified_starts(
    rng: random.Random, offsets: Sequence[float], start_s: float, end_s: float
) -> list[float]:
    """One start time per offset, spread over the window by the working-hours weights.

    Start k falls at ``(k + offsets[k]) / n`` of the window's weight. A profile keeps its
    offsets from week to week (people keep their routines), so every week carries the same
    load and spills the same amount over its edges: team trends stay flat unless a profile
    changes its rate on purpose. Up to an hour of jitter keeps weeks from being copies.
    """
    n = len(offsets)
    bins = _week_weights(start_s, end_s)
    total = sum(w for _, _, w in bins)
    starts = []
    acc = 0.0
    j = 0
    for k, offset in enumerate(offsets):
        target = (k + offset) / n * total
        while j < len(bins) - 1 and acc + bins[j][2] < target:
            acc += bins[j][2]
            j += 1
        a, b, w = bins[j]
        t = a + (b - a) * min(1.0, (target - acc) / w if w else 0.0)
        t += rng.uniform(-_JITTER_S, _JITTER_S)
        starts.append(min(end_s - 1.0, max(start_s, t)))
    return starts


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _place_jobs(
    builder: ScenarioBuilder,
    rng: random.Random,
    *,
    names: Sequence[str],
    scale: float,
    start_s: float,
    end_s: float,
    drop: bool,
) -> None:
    # Weeks are counted back from the end, so "the last seven days" is exactly one week.
    jobs: list[tuple[float, int, _Profile]] = []
    routines: dict[tuple[int, int], list[float]] = {}
    week_end = end_s
    week = 0
    while week_end > start_s - _WARMUP_S:
        week_start = max(week_end - WEEK_S, start_s - _WARMUP_S)
        share = (week_end - week_start) / WEEK_S
        for pi, p in enumerate(_PROFILES):
            rate = p.per_week
            if drop and week == 0 and p.user == DROP_USER:
                rate = DROP_JOBS_AFTER
            n = _round_half_up(max(1.0, rate * scale) * share)
            full = _round_half_up(max(1.0, rate * scale))
            offsets = routines.setdefault((pi, full), [rng.random() for _ in range(full)])
            starts = _stratified_starts(rng, offsets[:n], week_start, week_end)
            jobs += [(t, pi, p) for t in starts]
        week_end = week_start
        week += 1
    # Wide jobs are placed first, as a gang scheduler reserves for them; single-GPU jobs
    # then fill around them. Otherwise a wide job waits hours for enough free GPUs and its
    # GPU-hours slide into the next week.
    jobs.sort(key=lambda job: (-job[2].gpus, job[0], job[1]))
    counters: dict[str, int] = {}
    gpus_per_node = max(builder.gpus_per_node.values())
    for t, _, p in jobs:
        number = counters.get(p.prefix, 0) + 1
        counters[p.prefix] = number
        name = f"{p.prefix}-{number:04d}"
        duration = p.hours * 3600.0 * rng.uniform(0.9, 1.1)
        template = Workload(
            name=name,
            namespace=p.namespace,
            user=p.user,
            kind=p.kind,
            node=names[0],
            gpu_indices=(0,),
            start_s=t,
            end_s=t + duration,
            pattern=p.pattern,
            mem_frac=rng.uniform(*p.mem),
            level_pct=p.level + rng.uniform(-3.0, 3.0),
            power_intensity=rng.uniform(0.85, 1.0),
            seed=rng.getrandbits(62),
            unix_user=p.user,
            pod=_pod(rng, name),
        )
        order = list(names)
        rng.shuffle(order)
        count = min(p.gpus, gpus_per_node // 2)
        # A job that finds no free GPUs waits in the queue, up to half a day.
        for wait in range(_MAX_WAITS + 1):
            if wait:
                template = replace(
                    template, start_s=template.start_s + _WAIT_S, end_s=template.end_s + _WAIT_S
                )
            if builder.place(template, order, count) is not None:
                if wait:
                    log.debug("demo: job %s waited %d min for GPUs", name, wait * _WAIT_S / 60)
                break
        else:
            log.debug("demo: job %s found no free GPUs and was dropped", name)
