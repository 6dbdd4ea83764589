"""Typed results of ``/analysis/*``, ``/optimize/*`` and the analyst (``/api/gpu-analysis``).

The definitions behind every number (utilization time-weighted over the window, idle below
the idle threshold, allocation rate, waste) are the server's: see the README's Definitions. The
results lift the headline numbers into fields and keep the full answer in ``.raw`` (the
trend's forecast, the report's sections, the chat reply's data...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpufleet.client._wire import (
    Json,
    integer,
    many,
    num,
    obj,
    opt_float,
    opt_int,
    opt_str,
    opt_ts,
    strs,
    ts,
)


@dataclass(frozen=True, slots=True)
class Window:
    """The time window an analysis covered."""

    start_s: float
    end_s: float
    hours: float
    label: str

    @classmethod
    def from_wire(cls, d: Json) -> Window:
        return cls(
            start_s=ts(d["start"]),
            end_s=ts(d["end"]),
            hours=num(d["hours"]),
            label=str(d.get("label", "")),
        )


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """One group of a utilization breakdown (``by``) or an under-utilized workload."""

    key: str
    gpus: int
    gpu_hours: float
    allocated_gpu_hours: float
    idle_gpu_hours: float
    idle_allocated_gpu_hours: float
    allocation_rate: float | None
    idle_fraction: float | None
    mean_gpu_util_pct: float | None
    p95_gpu_util_pct: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> UsageGroup:
        return cls(
            key=str(d["key"]),
            gpus=integer(d.get("gpus", 0)),
            gpu_hours=num(d["gpu_hours"]),
            allocated_gpu_hours=num(d.get("allocated_gpu_hours", 0.0)),
            idle_gpu_hours=num(d.get("idle_gpu_hours", 0.0)),
            idle_allocated_gpu_hours=num(d.get("idle_allocated_gpu_hours", 0.0)),
            allocation_rate=opt_float(d.get("allocation_rate")),
            idle_fraction=opt_float(d.get("idle_fraction")),
            mean_gpu_util_pct=opt_float(d.get("mean_gpu_util_pct")),
            p95_gpu_util_pct=opt_float(d.get("p95_gpu_util_pct")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Utilization:
    """``POST /analysis/utilization``: time-weighted utilization, allocation and idle
    GPU-hours of a scope, optionally broken down (``group_key``, ``groups``)."""

    window: Window
    gpus: int
    gpu_hours: float
    allocated_gpu_hours: float
    unallocated_gpu_hours: float
    idle_gpu_hours: float
    idle_allocated_gpu_hours: float
    allocation_rate: float | None
    idle_fraction: float | None
    mean_gpu_util_pct: float | None
    p50_gpu_util_pct: float | None
    p95_gpu_util_pct: float | None
    idle_threshold_pct: float
    group_key: str | None
    groups: tuple[UsageGroup, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Utilization:
        return cls(
            window=Window.from_wire(obj(d["window"])),
            gpus=integer(d.get("gpus", 0)),
            gpu_hours=num(d["gpu_hours"]),
            allocated_gpu_hours=num(d["allocated_gpu_hours"]),
            unallocated_gpu_hours=num(d["unallocated_gpu_hours"]),
            idle_gpu_hours=num(d["idle_gpu_hours"]),
            idle_allocated_gpu_hours=num(d["idle_allocated_gpu_hours"]),
            allocation_rate=opt_float(d.get("allocation_rate")),
            idle_fraction=opt_float(d.get("idle_fraction")),
            mean_gpu_util_pct=opt_float(d.get("mean_gpu_util_pct")),
            p50_gpu_util_pct=opt_float(d.get("p50_gpu_util_pct")),
            p95_gpu_util_pct=opt_float(d.get("p95_gpu_util_pct")),
            idle_threshold_pct=num(d["idle_threshold_pct"]),
            group_key=opt_str(d.get("group_key")),
            groups=many(d.get("by"), UsageGroup.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class TrendPoint:
    start_s: float
    end_s: float
    value: float | None
    gpu_hours: float
    partial: bool

    @classmethod
    def from_wire(cls, d: Json) -> TrendPoint:
        return cls(
            start_s=ts(d["start"]),
            end_s=ts(d["end"]),
            value=opt_float(d.get("value")),
            gpu_hours=num(d.get("gpu_hours", 0.0)),
            partial=bool(d.get("partial")),
        )


@dataclass(frozen=True, slots=True)
class Trends:
    """``GET /analysis/trends``: the series, its robust slope, and (in ``raw``) the
    comparison, change points, forecast and optional window/entity comparisons."""

    window: Window
    granularity: str
    metric: str
    unit: str
    points: tuple[TrendPoint, ...]
    slope_per_day: float | None
    direction: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Trends:
        series, slope = obj(d["series"]), obj(d.get("slope"))
        return cls(
            window=Window.from_wire(obj(series["window"])),
            granularity=str(series["granularity"]),
            metric=str(series["metric"]),
            unit=str(series.get("unit", "")),
            points=many(series.get("points"), TrendPoint.from_wire),
            slope_per_day=opt_float(slope.get("per_day")),
            direction=opt_str(slope.get("direction")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class DrillNode:
    """One entity of a drill-down (cluster, namespace, user or workload) and its change."""

    level: str
    name: str
    path: str
    before: float | None
    after: float | None
    change: float | None
    change_pct: float | None
    contribution: float | None
    children: tuple[DrillNode, ...]
    summary: str | None

    @classmethod
    def from_wire(cls, d: Json) -> DrillNode:
        return cls(
            level=str(d["level"]),
            name=str(d["name"]),
            path=str(d.get("path", "")),
            before=opt_float(d.get("before")),
            after=opt_float(d.get("after")),
            change=opt_float(d.get("change")),
            change_pct=opt_float(d.get("change_pct")),
            contribution=opt_float(d.get("contribution")),
            children=many(d.get("children"), DrillNode.from_wire),
            summary=opt_str(d.get("summary")),
        )


@dataclass(frozen=True, slots=True)
class Drilldown:
    """``GET /analysis/drilldown``: a change between two windows attributed down
    namespace -> user -> workload; ``path`` follows the largest contributor."""

    before: Window
    after: Window
    metric: str
    unit: str
    root: DrillNode
    path: tuple[DrillNode, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Drilldown:
        return cls(
            before=Window.from_wire(obj(d["before"])),
            after=Window.from_wire(obj(d["after"])),
            metric=str(d["metric"]),
            unit=str(d.get("unit", "")),
            root=DrillNode.from_wire(obj(d["root"])),
            path=many(d.get("path"), DrillNode.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class WasteGroup:
    key: str
    gpus: int
    allocated_gpu_hours: float
    used_gpu_hours: float
    idle_allocated_gpu_hours: float
    idle_allocated_cost_usd: float | None
    efficiency: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> WasteGroup:
        return cls(
            key=str(d["key"]),
            gpus=integer(d.get("gpus", 0)),
            allocated_gpu_hours=num(d["allocated_gpu_hours"]),
            used_gpu_hours=num(d.get("used_gpu_hours", 0.0)),
            idle_allocated_gpu_hours=num(d["idle_allocated_gpu_hours"]),
            idle_allocated_cost_usd=opt_float(d.get("idle_allocated_cost_usd")),
            efficiency=opt_float(d.get("efficiency")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Waste:
    """``GET /analysis/waste``: idle-allocated and unallocated GPU-hours and their cost."""

    window: Window
    by: str | None
    gpu_hours: float
    allocated_gpu_hours: float
    used_gpu_hours: float
    efficiency: float | None
    idle_allocated_gpu_hours: float
    idle_allocated_cost_usd: float | None
    unallocated_gpu_hours: float
    unallocated_cost_usd: float | None
    monthly_idle_allocated_cost_usd: float | None
    monthly_unallocated_cost_usd: float | None
    groups: tuple[WasteGroup, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Waste:
        return cls(
            window=Window.from_wire(obj(d["window"])),
            by=opt_str(d.get("by")),
            gpu_hours=num(d["gpu_hours"]),
            allocated_gpu_hours=num(d["allocated_gpu_hours"]),
            used_gpu_hours=num(d.get("used_gpu_hours", 0.0)),
            efficiency=opt_float(d.get("efficiency")),
            idle_allocated_gpu_hours=num(d["idle_allocated_gpu_hours"]),
            idle_allocated_cost_usd=opt_float(d.get("idle_allocated_cost_usd")),
            unallocated_gpu_hours=num(d["unallocated_gpu_hours"]),
            unallocated_cost_usd=opt_float(d.get("unallocated_cost_usd")),
            monthly_idle_allocated_cost_usd=opt_float(d.get("monthly_idle_allocated_cost_usd")),
            monthly_unallocated_cost_usd=opt_float(d.get("monthly_unallocated_cost_usd")),
            groups=many(d.get("groups"), WasteGroup.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended change with its evidence, expected saving and action. Its ``id``
    depends on kind and target only, so it can be executed later."""

    id: str
    kind: str
    title: str
    evidence: tuple[str, ...]
    target: Mapping[str, Any]
    action_type: str | None
    action_params: Mapping[str, Any]
    expected_monthly_saving_usd: float | None
    confidence: float | None
    confidence_label: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Recommendation:
        action = obj(d.get("action"))
        return cls(
            id=str(d["id"]),
            kind=str(d["kind"]),
            title=str(d.get("title", "")),
            evidence=strs(d.get("evidence")),
            target=obj(d.get("target")),
            action_type=opt_str(action.get("type")),
            action_params=obj(action.get("params")),
            expected_monthly_saving_usd=opt_float(d.get("expected_monthly_saving_usd")),
            confidence=opt_float(d.get("confidence")),
            confidence_label=opt_str(d.get("confidence_label")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Recommendations:
    """``/optimize/recommendations|scale-up|scale-down|consolidate``: highest saving first."""

    window: Window
    kinds: tuple[str, ...]
    recommendations: tuple[Recommendation, ...]
    total_monthly_saving_usd: float | None
    idle_threshold_pct: float | None
    raw: Json = field(repr=False, compare=False)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.recommendations)

    @classmethod
    def from_wire(cls, d: Json) -> Recommendations:
        return cls(
            window=Window.from_wire(obj(d["window"])),
            kinds=strs(d.get("kinds")),
            recommendations=many(d.get("recommendations"), Recommendation.from_wire),
            total_monthly_saving_usd=opt_float(d.get("total_monthly_saving_usd")),
            idle_threshold_pct=opt_float(d.get("idle_threshold_pct")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Opportunities:
    """``GET /analysis/opportunities``: GPUs held but not used, and what to do about it."""

    window: Window
    idle_allocated_gpu_hours: float
    idle_allocated_cost_usd: float | None
    monthly_idle_allocated_cost_usd: float | None
    potential_monthly_saving_usd: float | None
    under_utilized_workloads: tuple[UsageGroup, ...]
    recommendations: tuple[Recommendation, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Opportunities:
        return cls(
            window=Window.from_wire(obj(d["window"])),
            idle_allocated_gpu_hours=num(d.get("idle_allocated_gpu_hours", 0.0)),
            idle_allocated_cost_usd=opt_float(d.get("idle_allocated_cost_usd")),
            monthly_idle_allocated_cost_usd=opt_float(d.get("monthly_idle_allocated_cost_usd")),
            potential_monthly_saving_usd=opt_float(d.get("potential_monthly_saving_usd")),
            under_utilized_workloads=many(d.get("under_utilized_workloads"), UsageGroup.from_wire),
            recommendations=many(d.get("recommendations"), Recommendation.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Report:
    """``GET /analysis/report`` (JSON): the FinOps report's headline; every section
    (utilization, waste, trends, drilldown, recommendations, definitions) is in ``raw``."""

    window: Window
    generated_at_s: float
    target_util_pct: float
    mean_gpu_util_pct: float | None
    potential_monthly_saving_usd: float | None
    sentences: tuple[str, ...]
    recommendations: tuple[Recommendation, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Report:
        head = obj(d.get("headline"))
        recs = obj(d.get("recommendations"))
        return cls(
            window=Window.from_wire(obj(d["window"])),
            generated_at_s=ts(d["generated_at"]),
            target_util_pct=num(d["target_util_pct"]),
            mean_gpu_util_pct=opt_float(head.get("mean_gpu_util_pct")),
            potential_monthly_saving_usd=opt_float(head.get("potential_monthly_saving_usd")),
            sentences=strs(head.get("sentences")),
            recommendations=many(recs.get("recommendations"), Recommendation.from_wire),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class Execution:
    """One logged execution of a recommendation's action (``status`` planned when dry)."""

    id: int | None
    recommendation_id: str
    kind: str
    action_type: str
    status: str
    detail: str
    dry_run: bool
    executor: str
    requested_by: str | None
    requested_at_s: float | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> Execution:
        return cls(
            id=opt_int(d.get("id")),
            recommendation_id=str(d["recommendation_id"]),
            kind=str(d.get("kind", "")),
            action_type=str(d.get("action_type", "")),
            status=str(d["status"]),
            detail=str(d.get("detail", "")),
            dry_run=bool(d.get("dry_run")),
            executor=str(d.get("executor", "")),
            requested_by=opt_str(d.get("requested_by")),
            requested_at_s=opt_ts(d.get("requested_at")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """``POST /optimize/execute``: what was run (or, dry, planned) for each id."""

    dry_run: bool
    executor: str
    window: Window
    executions: tuple[Execution, ...]
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> ExecutionResult:
        return cls(
            dry_run=bool(d["dry_run"]),
            executor=str(d.get("executor", "")),
            window=Window.from_wire(obj(d["window"])),
            executions=many(d.get("executions"), Execution.from_wire),
            raw=d,
        )


def executions_of(d: Json) -> tuple[Execution, ...]:
    """``GET /optimize/executions``: the log, newest first."""
    return many(d.get("executions"), Execution.from_wire)


@dataclass(frozen=True, slots=True)
class ChatReply:
    """``POST /api/gpu-analysis/chat``: the answer, how the question was read (``intent``,
    ``entities``, whether it was a ``follow_up`` of the session), a ``clarification`` to
    answer when the question was ambiguous, and the analysis results behind every number
    (``data``). ``source`` is ``offline`` (rules) or ``llm``."""

    answer: str
    intent: str
    session_id: str
    language: str
    clarification: Mapping[str, Any] | None
    insights: tuple[str, ...]
    entities: Mapping[str, Any]
    follow_up: bool
    data: tuple[Mapping[str, Any], ...]
    elapsed_ms: float | None
    source: str | None
    raw: Json = field(repr=False, compare=False)

    @classmethod
    def from_wire(cls, d: Json) -> ChatReply:
        clarification = d.get("clarification")
        return cls(
            answer=str(d["answer"]),
            intent=str(d["intent"]),
            session_id=str(d["session_id"]),
            language=str(d.get("language", "")),
            clarification=None if clarification is None else obj(clarification),
            insights=strs(d.get("insights")),
            entities=obj(d.get("entities")),
            follow_up=bool(d.get("follow_up")),
            data=many(d.get("data"), lambda x: x),
            elapsed_ms=opt_float(d.get("elapsed_ms")),
            source=opt_str(d.get("source")),
            raw=d,
        )


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One server-sent event of ``POST /api/gpu-analysis/chat/stream``: ``meta``, then
    ``answer`` pieces, one ``insight`` each, ``data``, ``done``."""

    event: str
    data: Any

    @property
    def text(self) -> str | None:
        """The text of an ``answer`` piece or an ``insight`` (None for other events)."""
        if isinstance(self.data, Mapping) and isinstance(self.data.get("text"), str):
            return str(self.data["text"])
        return None


@dataclass(frozen=True, slots=True)
class ChatSession:
    session_id: str
    created_at_s: float
    updated_at_s: float
    turns: int
    title: str | None
    cluster: str | None

    @classmethod
    def from_wire(cls, d: Json) -> ChatSession:
        return cls(
            session_id=str(d["session_id"]),
            created_at_s=ts(d["created_at"]),
            updated_at_s=ts(d["updated_at"]),
            turns=integer(d["turns"]),
            title=opt_str(d.get("title")),
            cluster=opt_str(d.get("cluster")),
        )


@dataclass(frozen=True, slots=True)
class ChatSessions:
    """``GET /api/gpu-analysis/sessions``: most recent first; ``total`` None when the
    store cannot count beyond the page."""

    sessions: tuple[ChatSession, ...]
    total: int | None

    @classmethod
    def from_wire(cls, d: Json) -> ChatSessions:
        return cls(many(d.get("sessions"), ChatSession.from_wire), opt_int(d.get("total")))


@dataclass(frozen=True, slots=True)
class ChatTurn:
    seq: int
    at_s: float
    query: str
    cluster: str | None
    reply: Mapping[str, Any]

    @classmethod
    def from_wire(cls, d: Json) -> ChatTurn:
        return cls(
            seq=integer(d["seq"]),
            at_s=ts(d["at"]),
            query=str(d["query"]),
            cluster=opt_str(d.get("cluster")),
            reply=obj(d.get("reply")),
        )


@dataclass(frozen=True, slots=True)
class ChatTranscript:
    """``GET /api/gpu-analysis/sessions/{id}``: a session's turns in order."""

    session_id: str
    turns: tuple[ChatTurn, ...]

    @classmethod
    def from_wire(cls, d: Json) -> ChatTranscript:
        return cls(str(d["session_id"]), many(d.get("turns"), ChatTurn.from_wire))
