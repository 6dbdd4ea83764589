"""Time-series wire schemas shared by GPU and host history."""

from __future__ import annotations

from pydantic import BaseModel

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
