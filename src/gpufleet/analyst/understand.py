"""Offline understanding of a question: its intent and entities, in English or Chinese.

No model and no network: keyword cues decide the intent (:mod:`~gpufleet.analyst.intents`),
:mod:`~gpufleet.analyst.entity_names` finds the names (typos and spaced spellings too),
:mod:`~gpufleet.analyst.timerange` reads the time ranges, and names are matched against the
:class:`~gpufleet.analyst.catalog.Catalog` of what has data, so only real clusters,
namespaces, users, workloads, nodes and GPU models are ever recognized. A follow-up ("and
last month?", "what about cv-team?", "那上个月呢") keeps the previous turn's intent and
entities and replaces what it names.

Intents (seed 001 and issue 4): ``trend``, ``compare``, ``drilldown``, ``realtime``,
``metadata``, ``waste``, ``recommend``, ``alerts``, ``help``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gpufleet.analyst.catalog import Catalog
from gpufleet.analyst.entity_names import (
    find_names,
    gpu_model,
    label_of,
    spelled,
    unknown_names,
)
from gpufleet.analyst.intents import (
    WHY,
    intent_of,
    rank_of,
    scores_of,
)
from gpufleet.analyst.timerange import (
    RangeProblem,
    TimeRange,
    current_period,
    find_time_ranges,
    previous_period,
)

LEVELS: tuple[str, ...] = ("cluster", "node", "gpu_model", "namespace", "user", "workload")

_HELP = re.compile(
    r"^\s*(?:help|\?|examples?|what can you do\??|how do i use (?:this|you)\??|帮助|怎么用)"
    r"\s*[.!?？]*\s*$",
    re.I,
)
_PRONOUN = re.compile(
    r"\b(?:it|that|this one|them|those|these|their|in there|the drop|the spike|instead"
    r"|same period)\b",
    re.I,
)
_FOLLOW_UP_EN = re.compile(
    r"^\s*(?:and|what about|how about|and what about|same for|also|then|ok(?:ay)?,?|just|only)\b"
    r"|^\s*(?:which|who)\s+(?:workloads?|jobs?|users?)\s*\??\s*$",
    re.IGNORECASE,
)
_FOLLOW_UP_ZH = ("呢", "那么", "那", "还有", "再看", "换成", "只看", "只要", "按")
_THAN = re.compile(
    r"\b(?:than|compared? (?:it )?(?:to|with|against)|versus|vs\.?)\s+(?:it was\s+|in\s+)?"
    r"(?:last|yesterday)"
    r"|比(?:上周|上个星期|上个月|上月|昨天)|跟(?:上周|上个月|昨天)比|和(?:上周|上个月|昨天)比",
    re.IGNORECASE,
)
_ALL_WORDS = re.compile(r"^\s*(?:all|every|any|everything|全部|所有|都要|all clusters)\s*$", re.I)
_HOUR_WORDS = re.compile(r"\bhourly\b|\bper hour\b|\bby hour\b|\bhour by hour\b", re.I)
_DAY_WORDS = re.compile(r"\bdaily\b|\bper day\b|\bby day\b|\bday by day\b", re.I)
_ALLOCATION = re.compile(r"\balloc", re.I)
_ZH_ALLOCATION = ("分配率", "分配")
_METADATA_LEVEL = (
    ("cluster", re.compile(r"\bclusters?\b", re.I), ("集群",)),
    ("namespace", re.compile(r"\bnamespaces?\b|(?<![\w-])teams?\b", re.I), ("命名空间", "团队")),
    ("user", re.compile(r"\busers?\b", re.I), ("用户",)),
    ("node", re.compile(r"\bnodes?\b|\bmachines?\b|\bhosts?\b", re.I), ("节点", "机器")),
    ("gpu_model", re.compile(r"\bgpu models?\b|\bmodels?\b", re.I), ("型号",)),
    (
        "workload_kind",
        re.compile(r"\b(?:workload |job )?(?:kinds|types)\b", re.I),
        ("工作负载类型", "任务类型", "类型"),
    ),
    ("workload", re.compile(r"\bworkloads?\b|\bjobs?\b", re.I), ("工作负载", "任务")),
    ("dimension", re.compile(r"\blabels?\b|\bdimensions?\b|\bkeys?\b", re.I), ("标签", "维度")),
)
_NEEDS_NAMESPACE = re.compile(
    r"\b(?:a|one|some|specific|particular|certain|the)\s+(?:of (?:the|our) )?namespaces?\b"
    r"(?!\s+(?:list|names?)\b)",
    re.I,
)
_ZH_NEEDS_NAMESPACE = ("某个命名空间", "某命名空间", "一个命名空间", "指定命名空间")


@dataclass(frozen=True, slots=True)
class Entities:
    """What a question names; None where it names nothing (defaults are applied later)."""

    time_range: TimeRange | None = None
    compare_range: TimeRange | None = None
    """The second window of a comparison (the earlier one, usually)."""
    cluster: str | None = None
    node: str | None = None
    gpu_model: str | None = None
    namespace: str | None = None
    user: str | None = None
    workload: str | None = None
    label: tuple[str, str] | None = None
    """``(key, value)`` of a ``key:value`` / ``key=value`` filter on a dimension key."""
    metric: str | None = None
    """``utilization`` or ``allocation_rate``."""
    granularity: str | None = None
    """``hour`` or ``day``."""
    compare_entities: tuple[str, str, str] | None = None
    """``(level, a, b)`` when two entities of one level are compared."""
    compare_more: tuple[str, ...] = ()
    """Further entities of that level compared with ``a`` ("ml-team, cv-team and nlp-team")."""
    metadata_level: str | None = None
    """What a metadata question lists: a level, or ``dimension`` for the keys."""
    all_clusters: bool = False
    rank: tuple[str, str] | None = None
    """``(level, "high" | "low")`` for "which namespace has the lowest utilization?", "top
    users", "who is using the most GPUs?" (a trend or drill-down answered by a ranking)."""
    drill_to: str | None = None
    """``workload`` when a drill-down should list workloads directly ("which workloads?")."""
    rank_measure: str | None = None
    """``gpu_hours`` when a ranking asks who uses the most GPUs (not who is busiest); the
    metric named, or utilization, otherwise."""


@dataclass(frozen=True, slots=True)
class Understanding:
    """The intent, entities and language of one question."""

    intent: str
    entities: Entities
    language: Literal["en", "zh"]
    follow_up: bool = False
    cues: tuple[str, ...] = ()
    """Which intent cues matched (for the ``--json`` trace and for tests)."""
    missing: tuple[str, ...] = field(default_factory=tuple)
    """What must be asked before answering (``cluster``, ``namespace``)."""
    unknown: tuple[str, ...] = ()
    corrected: tuple[tuple[str, str], ...] = ()
    """Names read as another (``("ml-tem", "ml-team")``): a typo close to one known name, or
    a name written with spaces (``nlp team``); the answer says so."""
    """Words that look like names (``nobody-team``) but name nothing with data: the answer
    says it is not about them."""
    problems: tuple[str, ...] = ()
    """What in the question could not be used, said in the answer (a range that ends before
    it starts)."""
    asks_idle: bool = False
    """The question asks which GPUs are idle, free or available (a realtime answer lists
    them)."""
    premise: Literal["down", "up"] | None = None
    """The way a why-question says the metric moved ("why did it drop?": ``down``), so an
    answer can say when the data moved the other way."""


def language_of(text: str) -> Literal["en", "zh"]:
    """``zh`` when the question has any CJK character, else ``en``."""
    return "zh" if re.search(r"[\u4e00-\u9fff\u3000-\u303f\uff01-\uff5e]", text) else "en"


def understand(
    text: str,
    catalog: Catalog,
    now_s: float,
    *,
    previous: Understanding | None = None,
) -> Understanding:
    """Intent and entities of ``text``; ``previous`` is the session's last understood turn."""
    text, corrected = spelled(text, catalog)
    lang = language_of(text)
    low = text.lower()
    scores = scores_of(text)
    range_problems: list[RangeProblem] = []
    ranges = find_time_ranges(text, now_s, range_problems)
    if len(ranges) == 1 and _THAN.search(text):
        # "lower than last week": this week against last week, not last week against its own
        # week before.
        current = current_period(ranges[0], now_s)
        if current is not None:
            ranges = [current, ranges[0]]
    names: dict[str, list[str]] = {}
    for level in ("cluster", "node", "namespace", "user", "workload"):
        hits = find_names(text, catalog.values(level))
        if hits:
            names[level] = [n for _, n in hits]
    model = gpu_model(text, catalog.gpu_models)
    label = label_of(text, catalog)
    if label is not None and label[0] in ("namespace", "user", "workload", "node"):
        names.setdefault(label[0], [label[1]])
        label = None
    kind_hit = find_names(text, catalog.workload_kinds)
    if label is None and kind_hit and re.search(r"\b(?:kind|type|jobs?|workloads?)\b", low):
        label = ("workload_kind", kind_hit[0][1])

    from_realtime = False
    drill_to: str | None = None
    follow_up = (
        previous is not None
        and previous.intent != "help"
        and _is_follow_up(text, lang, scores, ranges, names, model)
    )
    # A name that names nothing with data ("nobody-team") still makes it a question about
    # the fleet: the answer says the name was not found.
    named_unknown = bool(unknown_names(text, catalog, model))
    intent = intent_of(scores, names, ranges, text, model is not None or follow_up or named_unknown)
    if follow_up and previous is not None:
        # "which workloads?" after a trend or comparison asks what caused it.
        asks_who = r"(?:which|what) (?:workloads?|jobs?|users?)|哪些(?:工作负载|任务|用户)"
        if re.search(asks_who, low) and "metadata" not in scores:
            intent = "drilldown"
            if re.search(r"workloads?|jobs?|工作负载|任务", low):
                drill_to = "workload"  # "which workloads?": straight to them
        elif previous.intent == "metadata" and ranges and set(scores) <= {"trend"}:
            # "and last week?" after "list namespaces": the same list over that window.
            intent = "metadata"
        elif previous.intent == "realtime" and ranges and intent in ("realtime", "help", "trend"):
            # "and last week?" after "how many GPUs are in use now?": how many were allocated
            # over that window (the allocation rate), unless a metric is named.
            intent = "trend"
            from_realtime = True
        elif not scores or intent == "help":
            intent = previous.intent
        elif set(scores) <= {"trend"} and not re.search(r"\btrend|趋势", low):
            # "and the allocation rate?" asks the previous question of another metric.
            intent = previous.intent

    # A metric named with a window or a name is a question about it over time: "GPU hours
    # in October", "idle fraction over the past 30 days", "GPU memory used last week" (the
    # last answered as GPU utilization, saying so).
    asks_idle_share = bool(_IDLE_SHARE.search(text)) or any(
        w in text for w in ("空闲占比", "空闲比例")
    )
    asks_gpu_hours = bool(_GPU_HOURS.search(text)) or any(
        w in text.upper() for w in ("GPU小时", "GPU时", "卡时")
    )
    if (
        (ranges or names)
        and intent == "help"
        and (asks_idle_share or asks_gpu_hours or _unsupported_metric(text))
    ):
        intent = "trend"
    if asks_idle_share and intent == "waste" and not _MONEY.search(text):
        intent = "trend"
    if intent == "drilldown" and re.search(
        r"\b(?:which|what) (?:workloads?|jobs?)\b|哪些(?:工作负载|任务)", low
    ):
        drill_to = "workload"  # "which workloads caused it?": straight to them
    rank = rank_of(text) if intent in ("trend", "help", "drilldown", "realtime", "waste") else None
    if rank is not None and "waste" in scores and intent in ("drilldown", "trend", "help"):
        intent = "waste"  # "which user wastes the most?": ranked by idle GPU-hours
    if rank is not None and intent == "help":
        intent = "trend"  # "which node is the busiest?"
    if rank is not None and intent == "drilldown" and WHY.search(text):
        rank = None  # "why is ml-team the busiest?" asks for causes, not a ranking
    # "who is using the most GPUs?": ranked by how much GPU-time, not how busy it was.
    amount = rank is not None and bool(
        re.search(
            r"\bgpus\b|\bcards\b|gpu[- ]?(?:time|hours?)|卡|gpu\s*最多|用[^，,。]*最多", text, re.I
        )
    )
    metric = None
    if asks_idle_share and intent in ("trend", "compare", "drilldown"):
        metric = "idle_fraction"
    elif _ALLOCATION.search(text) or any(w in text for w in _ZH_ALLOCATION):
        metric = "allocation_rate"
    elif re.search(r"\butil", text, re.I) or "利用率" in text or "使用率" in text:
        metric = "utilization"
    elif intent in ("trend", "compare", "drilldown") and asks_gpu_hours:
        metric = "gpu_hours"
    unsupported = _unsupported_metric(text) if metric is None else None
    if from_realtime and metric is None and previous is not None:
        metric = previous.entities.metric or "allocation_rate"
    granularity = None
    if _HOUR_WORDS.search(text) or "按小时" in text or "每小时" in text:
        granularity = "hour"
    elif _DAY_WORDS.search(text) or "按天" in text or "每天" in text or "每日" in text:
        granularity = "day"

    compare_entities = None
    compare_more: tuple[str, ...] = ()
    for level in ("namespace", "user", "workload", "node", "cluster"):
        if len(names.get(level, [])) >= 2:
            a, b = names[level][0], names[level][1]
            compare_entities = (level, a, b)
            compare_more = tuple(dict.fromkeys(n for n in names[level][2:] if n not in (a, b)))
            asks_why = re.search(r"\bwhy\b|为什么|为啥|原因", text, re.IGNORECASE)
            if intent in ("trend", "help", "realtime") or (intent == "drilldown" and not asks_why):
                intent = "compare"
            break
    if compare_entities is None and follow_up and previous is not None and intent == "compare":
        # "compare it with nlp-team" after a turn about ml-team: ml-team against nlp-team.
        for level in ("namespace", "user", "workload", "node"):
            given, before = names.get(level, []), getattr(previous.entities, level)
            if len(given) == 1 and before and before != given[0]:
                compare_entities = (level, before, given[0])
                break
    if compare_entities is None and len(kind_hit) >= 2 and kind_hit[0][1] != kind_hit[1][1]:
        # "inference vs training workloads": two kinds compared.
        compare_entities = ("workload_kind", kind_hit[0][1], kind_hit[1][1])
        label = None
        if intent in ("trend", "help", "realtime"):
            intent = "compare"
    time_range = ranges[0] if ranges else None
    compare_range = ranges[1] if len(ranges) > 1 else None
    if (
        time_range is not None
        and compare_range is not None
        and (
            (compare_range.start_s, compare_range.end_s) == (time_range.start_s, time_range.end_s)
            or compare_range.phrase.startswith(("前", "之前"))
        )
    ):
        # "the past 7 days against the 7 days before": the second names the period before.
        compare_range = previous_period(time_range)

    metadata_level = None
    if intent == "metadata":
        # The level named first ("which users are in namespace ml-team?" lists users).
        at: dict[str, int] = {}
        for level, en, zh in _METADATA_LEVEL:
            m = en.search(text)
            spots = [text.find(w) for w in zh if w in text] + ([m.start()] if m else [])
            if spots:
                at.setdefault(level, min(spots))
        metadata_level = min(at, key=lambda lv: at[lv]) if at else None
        if metadata_level is None and follow_up and previous is not None:
            metadata_level = previous.entities.metadata_level
        metadata_level = metadata_level or "cluster"

    entities = Entities(
        time_range=time_range,
        compare_range=compare_range,
        cluster=None
        if compare_entities and compare_entities[0] == "cluster"
        else _first(names, "cluster"),
        node=_first(names, "node"),
        gpu_model=model,
        namespace=None
        if compare_entities and compare_entities[0] == "namespace"
        else _first(names, "namespace"),
        user=None if compare_entities and compare_entities[0] == "user" else _first(names, "user"),
        workload=None
        if compare_entities and compare_entities[0] == "workload"
        else _first(names, "workload"),
        label=label,
        metric=metric,
        granularity=granularity,
        compare_entities=compare_entities,
        compare_more=compare_more,
        metadata_level=metadata_level,
        all_clusters=bool(_ALL_WORDS.match(text)),
        rank=rank,
        rank_measure="gpu_hours" if amount else None,
        drill_to=drill_to,
    )
    if compare_entities is not None and compare_entities[0] == "node":
        entities = dataclasses.replace(entities, node=None)
    if follow_up and previous is not None:
        entities = _merge(
            previous.entities, entities, names, ranges, intent, says_compare="compare" in scores
        )
    carried: tuple[str, ...] = ()
    before = None if previous is None else previous.entities.compare_entities
    if follow_up and before is not None and not names and intent not in _COMPARING:
        # "how much did it waste?" after "cv-team vs nlp-team": about the first of the two
        # (a waste or a list is of one scope), and the answer says so.
        level, first, other = before[0], before[1], before[2]
        if level in ("cluster", "namespace", "user", "workload", "node"):
            scoped: dict[str, Any] = {level: first}
            entities = dataclasses.replace(
                entities, compare_entities=None, compare_more=(), **scoped
            )
            carried = (
                f"这里按{first}（比较中的第一个）回答；问{other}请直接说出名字。"
                if lang == "zh"
                else f"This is about {first}, the first of the two compared; name {other} to "
                "ask about it.",
            )
    entities = _comparison_windows(intent, entities)
    missing = _missing(text, intent, entities, catalog)
    return Understanding(
        intent=intent,
        entities=entities,
        language=lang,
        follow_up=follow_up,
        cues=tuple(sorted(scores)),
        missing=missing,
        unknown=unknown_names(text, catalog, model),
        corrected=corrected,
        problems=_said_problems(range_problems, entities, lang == "zh")
        + _metric_problem(unsupported, intent, lang == "zh")
        + carried,
        asks_idle=bool(_IDLE_NOW.search(text)) or any(w in text for w in ("空闲", "闲置", "可用")),
        premise=_premise(text) if intent == "drilldown" else None,
    )


_SAYS_DOWN = re.compile(
    r"\b(?:drop(?:ped|s)?|f[ae]ll(?:s|en)?|decreas\w*|declin\w*|lower|less|fewer|dip(?:ped)?)\b",
    re.I,
)
_SAYS_UP = re.compile(
    r"\b(?:rise|rose|risen|increas\w*|grew|grow\w*|jump\w*|spik\w*|higher|more)\b", re.I
)


def _premise(text: str) -> Literal["down", "up"] | None:
    """Which way a why-question says the metric moved (None: it does not say, or says both)."""
    down = bool(_SAYS_DOWN.search(text)) or any(w in text for w in ("下降", "降低", "减少", "下跌"))
    up = bool(_SAYS_UP.search(text)) or any(w in text for w in ("上升", "增加", "提高", "上涨"))
    if down == up:
        return None
    return "down" if down else "up"


_COMPARING = ("compare", "drilldown", "trend")
"""Intents a comparison of two entities carries over to ("and last month?")."""
_IDLE_NOW = re.compile(r"\b(?:idle|free|available|unused|unallocated)\b", re.I)
_GPU_HOURS = re.compile(r"\bgpu[- ]?hours?\b|\bgpu-h\b", re.I)
_IDLE_SHARE = re.compile(r"\bidle[- ](?:fraction|share|ratio|percentage)\b", re.I)
_MONEY = re.compile(r"\bwast|\bcosts?\b|\bmoney\b|\bspen[dt]|\$|浪费|成本|花费|费用", re.I)
_UNSUPPORTED = (
    (
        re.compile(r"\b(?:gpu )?memory\b|\bvram\b|\bhbm\b", re.I),
        ("显存", "内存"),
        "memory use",
        "显存使用",
    ),
    (re.compile(r"\btemperatures?\b|\btemps?\b|\bthermal", re.I), ("温度",), "temperature", "温度"),
    (
        re.compile(r"\bpower\b|\bwatts?\b|\benergy\b", re.I),
        ("功耗", "功率", "能耗"),
        "power draw",
        "功耗",
    ),
)


def _unsupported_metric(text: str) -> tuple[str, str] | None:
    """(English, Chinese) name of a metric the question asks about that the analyst does not
    answer over time (memory, temperature, power), or None."""
    for en, zh, name_en, name_zh in _UNSUPPORTED:
        if en.search(text) or any(w in text for w in zh):
            return name_en, name_zh
    return None


def _metric_problem(unsupported: tuple[str, str] | None, intent: str, zh: bool) -> tuple[str, ...]:
    """Say that the answer is of GPU utilization, not the metric asked about."""
    if unsupported is None or intent not in ("trend", "compare", "drilldown", "realtime"):
        return ()
    if zh:
        return (
            f"分析助手不回答{unsupported[1]}（可回答GPU利用率、分配率、空闲占比和GPU时数）；"
            + ("以下是当前的GPU占用情况。" if intent == "realtime" else "以下是GPU利用率。"),
        )
    instead = "GPUs held now" if intent == "realtime" else "GPU utilization"
    return (
        f"The analyst does not answer {unsupported[0]} (it answers GPU utilization, allocation "
        f"rate, idle share and GPU-hours); this answer is about {instead}.",
    )


def _said_problems(
    problems: Sequence[RangeProblem], entities: Entities, zh: bool
) -> tuple[str, ...]:
    """Each time phrase that could not be used as said, with what the answer does instead."""
    out = []
    for p in problems:
        used = (entities.time_range, entities.compare_range)
        if any(r is not None and p.phrase.lower() in r.phrase.lower() for r in used):
            out.append(p.text(zh) + ("。" if zh else "."))  # read as a shorter window
        elif entities.time_range is None:
            out.append(
                f"{p.text(zh)}；已改用默认时间范围（过去 7 天）。"
                if zh
                else f"{p.text(zh)}; the default window (the past 7 days) is used instead."
            )
        else:
            out.append(f"{p.text(zh)}，因此未使用。" if zh else f"{p.text(zh)}, so it is not used.")
    return tuple(out)


def _comparison_windows(intent: str, e: Entities) -> Entities:
    """A comparison of windows needs two: "this week" alone compares with last week. A
    comparison of two entities is over one window."""
    if intent not in ("compare", "drilldown"):
        return e
    if e.compare_entities is not None:
        return dataclasses.replace(e, compare_range=None)
    if e.time_range is not None and e.compare_range is None:
        return dataclasses.replace(e, compare_range=previous_period(e.time_range))
    return e


def _first(names: dict[str, list[str]], level: str) -> str | None:
    values = names.get(level)
    return values[0] if values else None


def _is_follow_up(
    text: str,
    lang: str,
    scores: dict[str, int],
    ranges: list[TimeRange],
    names: dict[str, list[str]],
    model: str | None,
) -> bool:
    """Whether ``text`` continues the previous turn rather than asking afresh."""
    stripped = text.strip()
    if _HELP.match(stripped):
        return False
    if _FOLLOW_UP_EN.search(stripped) or _PRONOUN.search(stripped):
        return True
    if lang == "zh" and (
        stripped.rstrip("?？。!！").endswith("呢") or stripped.startswith(_FOLLOW_UP_ZH)
    ):
        return True
    if lang == "zh" and any(w in stripped for w in ("具体", "这个", "那个", "它")):
        return True
    # A short turn that names no scope of its own but says something the analyst knows (a
    # time, a cue, a metric: "compare with last week", "why?", "by hour") continues the
    # conversation; a short turn it knows nothing of ("banana pancakes") does not.
    words = (
        len(re.findall(r"[A-Za-z0-9_\-]+", stripped))
        + len(re.findall(r"[\u4e00-\u9fff]", stripped)) // 2
    )
    known = bool(ranges or scores or _HOUR_WORDS.search(stripped) or _DAY_WORDS.search(stripped))
    if ranges and set(scores) - {"compare", "drilldown"}:
        # Its own question and its own window ("waste over the past 30 days"): a new
        # question about the whole fleet, unless it says it follows on ("and ...", "it").
        # "compare with last week" and "why?" only make sense against the previous turn.
        return False
    # A bare name ("nlp-team") after a turn asks the same of it ("what about nlp-team?").
    bare = bool(names) and not scores and not ranges and words <= 2
    return bare or (words <= 6 and not names and model is None and known)


def _merge(
    prev: Entities,
    new: Entities,
    names: dict[str, list[str]],
    ranges: list[TimeRange],
    intent: str,
    says_compare: bool = False,
) -> Entities:
    """The previous entities with what the follow-up names put in their place.

    One window named after a comparison of two ("and yesterday?" after "this week vs last
    week") asks the same comparison of that window, against the period before it; it is
    the other side of the comparison only when the follow-up says so ("compare with last
    week") or the previous turn compared nothing."""
    out = prev
    comparing = intent in ("compare", "drilldown")
    if (
        len(ranges) == 1
        and comparing
        and (prev.compare_range is None or says_compare)
        and prev.compare_entities is None
        and prev.time_range is not None
        and new.compare_range is None
    ):
        # "compare with last week" after "this week": the new window is the other side.
        if (new.time_range is not None) and (
            (new.time_range.start_s, new.time_range.end_s)
            != (prev.time_range.start_s, prev.time_range.end_s)
        ):
            out = dataclasses.replace(out, compare_range=new.time_range)
    elif ranges:
        out = dataclasses.replace(out, time_range=new.time_range, compare_range=new.compare_range)
        if prev.compare_range is not None and new.compare_range is None and new.time_range:
            out = dataclasses.replace(out, compare_range=previous_period(new.time_range))
    # Naming a level replaces it and clears the levels under it.
    order = ("cluster", "namespace", "user", "workload")
    for i, level in enumerate(order):
        value = getattr(new, level)
        if value is not None and level in names:
            changes: dict[str, str | None] = {lv: None for lv in order[i + 1 :] if lv not in names}
            changes[level] = value
            out = dataclasses.replace(out, **changes)  # type: ignore[arg-type]
    for attr in ("node", "gpu_model", "label", "metric", "granularity", "compare_entities"):
        value = getattr(new, attr)
        if value is not None:
            out = dataclasses.replace(out, **{attr: value})
    if new.metadata_level is not None:
        out = dataclasses.replace(out, metadata_level=new.metadata_level)
    out = dataclasses.replace(out, drill_to=new.drill_to)  # said of this turn only
    if new.metric is None and intent not in ("trend", "compare", "drilldown", "realtime"):
        # A metric is a property of a series: idle GPU-hours or advice have none to carry.
        out = dataclasses.replace(out, metric=None)
    if new.compare_entities is not None:
        # Two entities of a level compared: the scope no longer narrows to one of them.
        level = new.compare_entities[0]
        cleared: dict[str, Any] = (
            {level: None} if level in ("namespace", "user", "workload", "node") else {}
        )
        out = dataclasses.replace(out, compare_more=new.compare_more, **cleared)
    if new.compare_entities is None and prev.compare_entities is not None and names:
        # Naming one entity after a comparison of two looks at that one.
        out = dataclasses.replace(out, compare_entities=None, compare_more=())
    return out


_PAIR_LEVEL = {
    "user": "user",
    "namespace": "namespace",
    "team": "namespace",
    "workload": "workload",
    "job": "workload",
    "node": "node",
    "用户": "user",
    "命名空间": "namespace",
    "团队": "namespace",
    "工作负载": "workload",
    "任务": "workload",
    "节点": "node",
}
_PAIR = re.compile(
    r"\b(?:two|2|both|a couple of)\s+(users|namespaces|teams|workloads|jobs|nodes)\b"
    r"|(?:两个|2个|两位)(用户|命名空间|团队|工作负载|任务|节点)",
    re.I,
)


def _missing(text: str, intent: str, e: Entities, catalog: Catalog) -> tuple[str, ...]:
    pair = _PAIR.search(text) if intent == "compare" and e.compare_entities is None else None
    if pair is not None:
        # "compare two users": which two (``pair:user``), offered from the ones with data.
        said = (pair.group(1) or pair.group(2)).lower().removesuffix("s")
        return (f"pair:{_PAIR_LEVEL[said]}",)
    if (
        e.namespace is None
        and e.label is None
        and (_NEEDS_NAMESPACE.search(text) or any(w in text for w in _ZH_NEEDS_NAMESPACE))
    ):
        return ("namespace",)
    # Several clusters and none named (seed 001 scenario 5): ask, unless "all" was said.
    per_cluster = intent in ("trend", "realtime", "waste", "compare", "drilldown")
    if per_cluster and e.cluster is None and not e.all_clusters and len(catalog.clusters) > 1:
        return ("cluster",)
    return ()
