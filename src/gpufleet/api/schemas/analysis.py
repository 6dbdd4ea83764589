"""Request bodies of ``/analysis/*`` and ``/optimize/*`` (answers are ``analysis.wire`` data).

Bodies forbid unknown fields, so a misspelt ``idle_treshold_pct`` is a 422 that names it
instead of a silently ignored setting.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gpufleet.analysis.request import scope_of
from gpufleet.analysis.scope import Scope

_WINDOW_HELP = "ISO 8601, epoch seconds, 'now' or relative (-7d); default: the last 7 days"


class ScopeIn(BaseModel):
    """Which part of the fleet; every level is optional (none: the whole fleet)."""

    model_config = ConfigDict(extra="forbid")

    cluster: str | None = None
    node: str | None = None
    gpu: str | None = Field(None, description="GPU UUID, or index together with node")
    namespace: str | None = None
    user: str | None = None
    workload: str | None = None
    gpu_model: str | None = Field(None, description="substring of the model name, e.g. h100")
    workload_kind: str | None = Field(
        None, description="training, inference, notebook, batch, ... or unknown"
    )
    pool: str | None = Field(None, description="a hub only: the nodes of this pool")
    label: str | None = Field(None, description="a hub only: nodes with this key=value label")

    def levels(self) -> dict[str, str | None]:
        """As ``{level: value}`` for :func:`gpufleet.analysis.request.scope_of` (the node
        filters ``pool`` and ``label`` are not levels: see ``api.routes.analysis.body_scope``)."""
        return self.model_dump(exclude={"pool", "label"})


class WindowIn(BaseModel):
    """A time window and a scope."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: str | None = Field(None, alias="from", description=_WINDOW_HELP)
    end: str | None = Field(None, alias="to", description="default: now")
    scope: ScopeIn = Field(default_factory=ScopeIn)
    idle_threshold_pct: float | None = Field(
        None, ge=0, le=100, description="idle below this utilization (default: the settings')"
    )


class UtilizationIn(WindowIn):
    """``POST /analysis/utilization``."""

    by: str | None = Field(
        None, description="group by: cluster, node, gpu, namespace, user, workload, gpu_model"
    )
    under_pct: float = Field(20.0, ge=0, le=100, description="under-utilized below this mean")
    over_pct: float = Field(90.0, ge=0, le=100, description="over-utilized above this mean")


class RecommendIn(WindowIn):
    """``POST /optimize/scale-up|scale-down|consolidate|recommendations``."""

    kinds: list[str] | None = Field(
        None, description="only these kinds (recommendations endpoint only)"
    )


class ExecuteIn(WindowIn):
    """``POST /optimize/execute``: run (or by default only plan) recommended actions."""

    recommendation_ids: list[str] = Field(
        ..., min_length=1, description="ids from /optimize/recommendations"
    )
    dry_run: bool = Field(True, description="only log what would be done (the default)")
    requested_by: str | None = Field(
        None, max_length=200, description="who asks (logged); default: the client address"
    )


def scope_from(levels: ScopeIn) -> Scope:
    """The analysis scope of a request body."""
    return scope_of(levels.levels())
