"""Time-series wire schemas shared by GPU and host history."""

from __future__ import annotations

from pydantic import BaseModel

from gpufleet.analysis.history import HistoryResult
from gpufleet.store.base import Series
from gpufleet.timeparse import iso


class PointOut(BaseModel):
    timestamp: str
    mean: float | None
    min: float | None
    max: float | None
    count: int


class SeriesOut(BaseModel):
    cluster: str
    node: str
    subject: str
    gpu_index: int | None = None
    points: list[PointOut]

    @classmethod
    def from_series(cls, s: Series, gpu_index: int | None = None) -> SeriesOut:
        return cls(
            cluster=s.cluster,
            node=s.node,
            subject=s.subject,
            gpu_index=gpu_index,
            points=[
                PointOut(timestamp=iso(p.ts_s), mean=p.mean, min=p.min, max=p.max, count=p.count)
                for p in s.points
            ],
        )


class HistoryOut(BaseModel):
    metric: str
    resolution: str
    start: str
    end: str
    series: list[SeriesOut]


def history_out(result: HistoryResult) -> HistoryOut:
    """The wire form of a history query's result."""
    return HistoryOut(
        metric=result.metric,
        resolution=result.resolution.value,
        start=iso(result.start_s),
        end=iso(result.end_s),
        series=[SeriesOut.from_series(s, result.gpu_index.get(s.subject)) for s in result.series],
    )
