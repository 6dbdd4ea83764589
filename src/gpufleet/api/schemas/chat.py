"""Request body of ``/api/gpu-analysis/chat`` (seed 001's shape)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gpufleet.analyst.engine import MAX_QUERY_CHARS


class ChatIn(BaseModel):
    """A question, optionally in a session and about one cluster."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        ...,
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="the question, English or Chinese",
    )
    cluster_name: str | None = Field(None, description="answer about this cluster only")
    session_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
        description="continue this session (an id from an earlier reply; absent: a new one)",
    )
