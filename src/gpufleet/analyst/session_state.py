"""What a session keeps between turns: the last understood question, as JSON in the store,
so "and last month?" works across processes and restarts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from gpufleet.analyst.timerange import TimeRange
from gpufleet.analyst.understand import Entities, Understanding


def save_understanding(u: Understanding) -> dict[str, Any]:
    """An understanding as JSON, for the next turn."""

    def tr(r: TimeRange | None) -> dict[str, Any] | None:
        return None if r is None else {"start_s": r.start_s, "end_s": r.end_s, "label": r.label}

    e = u.entities
    return {
        "intent": u.intent,
        "language": u.language,
        "missing": list(u.missing),
        "entities": {
            "time_range": tr(e.time_range),
            "compare_range": tr(e.compare_range),
            "cluster": e.cluster,
            "node": e.node,
            "gpu_model": e.gpu_model,
            "namespace": e.namespace,
            "user": e.user,
            "workload": e.workload,
            "label": list(e.label) if e.label else None,
            "metric": e.metric,
            "granularity": e.granularity,
            "compare_entities": list(e.compare_entities) if e.compare_entities else None,
            "compare_more": list(e.compare_more),
            "metadata_level": e.metadata_level,
            "all_clusters": e.all_clusters,
        },
    }


def restore_understanding(data: object) -> Understanding | None:
    """The understanding :func:`_save` wrote (None for anything else)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("entities"), Mapping):
        return None
    raw = data["entities"]

    def tr(v: object) -> TimeRange | None:
        if not isinstance(v, Mapping):
            return None
        return TimeRange(float(v["start_s"]), float(v["end_s"]), str(v.get("label", "")))

    def opt(key: str) -> str | None:
        v = raw.get(key)
        return None if v is None else str(v)

    label = raw.get("label")
    ce = raw.get("compare_entities")
    e = Entities(
        time_range=tr(raw.get("time_range")),
        compare_range=tr(raw.get("compare_range")),
        cluster=opt("cluster"),
        node=opt("node"),
        gpu_model=opt("gpu_model"),
        namespace=opt("namespace"),
        user=opt("user"),
        workload=opt("workload"),
        label=(str(label[0]), str(label[1]))
        if isinstance(label, list) and len(label) == 2
        else None,
        metric=opt("metric"),
        granularity=opt("granularity"),
        compare_entities=(str(ce[0]), str(ce[1]), str(ce[2]))
        if isinstance(ce, list) and len(ce) == 3
        else None,
        compare_more=tuple(str(x) for x in raw.get("compare_more") or [] if isinstance(x, str))
        if ce
        else (),
        metadata_level=opt("metadata_level"),
        all_clusters=bool(raw.get("all_clusters", False)),
    )
    lang: Literal["en", "zh"] = "zh" if data.get("language") == "zh" else "en"
    missing = tuple(str(m) for m in data.get("missing", []) if isinstance(m, str))
    return Understanding(
        intent=str(data.get("intent", "help")), entities=e, language=lang, missing=missing
    )
