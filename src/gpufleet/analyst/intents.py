"""Which intent a question has, from keyword cues in English and Chinese (seed 001 and
issue 4): ``trend``, ``compare``, ``drilldown``, ``realtime``, ``metadata``, ``waste``,
``recommend``, ``alerts``, ``help``; and whether it asks for a ranking ("which namespace has
the lowest utilization", "top users", "谁用GPU最多").

Each intent has cues (an English regex, Chinese substrings); a question's scores count the
cues it has, the highest score wins and ties go to the earlier intent in :data:`PRIORITY`.
:func:`gpufleet.analyst.understand.understand` adjusts the result with what else the question
says (names, windows, follow-ups).
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from gpufleet.analyst.timerange import TimeRange

Intent = Literal[
    "trend", "compare", "drilldown", "realtime", "metadata", "waste", "recommend", "alerts", "help"
]
INTENTS: tuple[str, ...] = get_args(Intent)


# Cues per intent: (English regex, Chinese substrings), scored; the highest score wins and
# ties go to the earlier intent in PRIORITY.
CUES: dict[str, tuple[str, tuple[str, ...]]] = {
    "drilldown": (
        r"\bwhy\b|\bcaus(?:e|ed|ing)\b|\breasons?\b|\b(?:which|what) (?:workloads?|jobs?|users?)\b"
        r"|\bwho(?:'s| is| are)?\s+(?:caus|responsible|eating|using|hogging|behind|driving)"
        r"|\bexplain\b|\bdrill|\bbreak(?:\s|-)?(?:it\s|that\s)?down\b(?!\s+by\s+(?:hour|day))"
        r"|\bcontribut|\bdriving\b|\bdrivers? (?:of|behind)\b|\bbehind (?:that|this|it)\b"
        r"|\bresponsible\b|\btop (?:users|workloads|consumers)\b|\bwho (?:uses|used) the most\b",
        (
            "为什么",
            "原因",
            "导致",
            "造成",
            "哪些工作负载",
            "哪个工作负载",
            "哪些任务",
            "是哪些用户",
            "哪个用户",
            "谁导致",
            "谁在用",
            "下钻",
            "归因",
            "拆分",
            "为啥",
            "搞的",
            "谁用",
            "用得最多",
            "用的最多",
        ),
    ),
    "compare": (
        r"\bcompar|\bvs\.?\b|\bversus\b|\bagainst\b|\bdifference\b|\bthan\b"
        r"|\b(?:gone|went|go) (?:up|down)\b|\bincreas|\bdecreas|\bchanged\b",
        ("对比", "比较", "相比", "和上周", "与上周", "差异", "区别", "比上"),
    ),
    "waste": (
        r"\bwast|\bidle\b|\bcost|\bmoney|\bspend|\bspent|\bdollar|\$|\bexpens|\bunused\b"
        r"|\bburn",
        ("浪费", "闲置", "空闲", "成本", "花费", "费用", "花了多少钱", "没用"),
    ),
    "recommend": (
        r"\brecommend|\bsuggest|\badvi[cs]e|\bshould\s+(?:we|i|\S+)\s+(?:do|change|shut|move|"
        r"stop|kill|scale|switch|release)|\bwhat should\b|\boptimi[sz]|\bsav(?:e|ing)"
        r"|\bconsolidat|\bright-?siz|\bscale (?:up|down)|\bwhat can\s+(?!you\b)\S+\s+do"
        r"|\bhow can\s+\S+\s+(?:cut|save|reduce|lower|improve|use)|\bcut (?:our|the|my)\b"
        r"|\bimprove\b|\bbetter\b|\bdifferently\b|\bwhat would you (?:change|do)\b"
        r"|\breduce (?:our|the|my)?\s*(?:gpu )?(?:bill|cost)",
        (
            "建议",
            "推荐",
            "优化",
            "节省",
            "节约",
            "省钱",
            "降低",
            "怎么才能",
            "怎么改进",
            "应该怎么",
            "扩容",
            "缩容",
            "整合",
            "提高",
            "调整",
            "怎么调",
        ),
    ),
    "alerts": (
        r"\balert|\balarm|\bwarning|\bincident|\bfiring\b|\bproblems?\b|\boverheat",
        ("告警", "报警", "警报", "报了哪些警", "异常", "故障"),
    ),
    "realtime": (
        r"\bcurrently\b|\bright now\b|\bat the moment\b|\bnow\b|\bin use\b|\bat present"
        r"|\blatest\b|\bcurrent\b|\bhow many (?:gpus|h100s?|cards)\b|\bfree gpus?\b"
        r"|\bavailable gpus?\b|\b(?:at )?this (?:very )?moment\b|\bas we speak\b"
        r"|\breal[- ]?time\b|\blive\b",
        (
            "当前",
            "现在",
            "目前",
            "正在",
            "实时",
            "此刻",
            "多少卡",
            "多少个gpu",
            "多少块",
            "几张卡",
            "空闲卡",
        ),
    ),
    "metadata": (
        r"\bwhich (?:clusters|namespaces|teams|nodes|label|dimension|keys|gpu models)"
        r"|\bwhat (?:clusters|namespaces|teams|users|nodes|labels?|dimensions?|keys|gpu models)"
        r"|\blist (?:the |all )?(?:clusters|namespaces|teams|users|nodes|labels?|workloads)"
        r"|\bshow (?:me )?(?:the |all )?(?:clusters|namespaces|teams|users|nodes|labels?)\b"
        r"|\bavailable (?:clusters|namespaces|labels?|dimensions?|keys)|\blabel keys?\b"
        r"|\bdimension keys?\b|\bexist\b|\bare there\b|\bwho are the users\b"
        r"|\bwhich users (?:are|belong|work)\b|\busers (?:in|of|belong)\b"
        r"|\bhow many (?:clusters|namespaces|nodes|users)\b"
        r"|\b(?:which|what) (?:workload |job )?(?:kinds|types)\b",
        (
            "有哪些集群",
            "哪些集群",
            "哪些命名空间",
            "下面有哪些",
            "有哪些用户",
            "有哪些命名空间",
            "有哪些节点",
            "列出",
            "都有什么",
            "有什么集群",
            "几个集群",
            "哪几个",
            "有哪几",
            "哪些 label",
            "哪些label",
            "标签键",
            "维度",
            "哪些gpu型号",
            "哪些型号",
            "什么型号",
            "有哪些工作负载",
            "有哪些任务",
            "哪些工作负载类型",
        ),
    ),
    "trend": (
        r"\btrend|\bover (?:the )?(?:past|last)|\bhow (?:has|have|did|is|are|was|were)\b"
        r"|\butil(?:i[sz]ation)?\b|\busage\b|\ballocation rate\b|\bbusy\b|\bhistory\b"
        r"|\bover time\b|\bgoing up|\bgoing down|\brising|\bfalling|\bforecast|\bpredict"
        r"|\bnext week\b|\bplot\b|\bchart\b|\bdoing\b|\bhourly\b|\bdaily\b|\bby (?:hour|day)\b"
        r"|\bsummar(?:y|ise|ize)\b|\boverview\b",
        (
            *("趋势", "利用率", "使用率", "使用情况", "分配率", "走势", "变化", "预测", "忙"),
            *("怎么样", "汇总", "总结", "概况", "概览"),
        ),
    ),
}
PRIORITY = (
    "alerts",
    "metadata",
    "drilldown",
    "compare",
    "recommend",
    "waste",
    "realtime",
    "trend",
)
DOMAIN = re.compile(
    r"\bgpus?\b|\butil|\busage\b|\ballocat|\bh100|\bcards?\b|\bcluster|\bnamespace|\bnode"
    r"|\bpower draw\b|\bvram\b|\bhbm\b|\bfleet\b|\bteams?\b|\bworkloads?\b|\bjobs?\b",
    re.IGNORECASE,
)
ZH_DOMAIN = ("gpu", "卡", "利用率", "使用", "分配", "集群", "节点", "命名空间", "显存", "功耗")
NOW = re.compile(
    r"\bright now\b|\bcurrently\b|\bat the moment\b|\bthis (?:very )?moment\b|\bnow\b", re.I
)


_COMPILED = {k: re.compile(en, re.IGNORECASE) for k, (en, _) in CUES.items()}


def scores_of(text: str) -> dict[str, int]:
    low = text.lower()
    out: dict[str, int] = {}
    for intent, (_, zh) in CUES.items():
        n = len(_COMPILED[intent].findall(text)) + sum(1 for w in zh if w in low)
        if n:
            out[intent] = n
    return out


WHY = re.compile(r"\bwhy\b|为什么|为啥", re.I)


_RANK_LEVEL = (
    ("namespace", r"namespaces?|teams?", ("命名空间", "团队")),
    ("user", r"users?", ("用户",)),
    ("workload", r"workloads?|jobs?", ("工作负载", "任务")),
    ("node", r"nodes?|machines?", ("节点", "机器")),
)
_RANK_HIGH = re.compile(r"\b(?:most|highest|busiest|top|best|max(?:imum)?)\b", re.I)
_RANK_LOW = re.compile(r"\b(?:least|lowest|worst|idlest|min(?:imum)?|bottom)\b", re.I)


def rank_of(text: str) -> tuple[str, str] | None:
    """``(level, order)`` when ``text`` asks which entity ranks first ("which namespace has
    the lowest utilization", "利用率最低的命名空间是哪个")."""
    high = bool(_RANK_HIGH.search(text)) or "最高" in text or "最多" in text or "最忙" in text
    low = bool(_RANK_LOW.search(text)) or "最低" in text or "最少" in text
    ranks = re.search(
        r"\brank(?:ing|ed)?\s+(?:the\s+|all\s+)?(\w+?)s?\s+by\b|\btop\s+(?:\d+\s+)?(\w+?)s?\b",
        text,
        re.I,
    )
    if ranks:
        said = (ranks.group(1) or ranks.group(2) or "").lower()
        for level, en, _ in _RANK_LEVEL:
            if re.fullmatch(en, said) or re.fullmatch(en, said + "s"):
                return level, "low" if low and not high else "high"
    if (re.search(r"\bwho\b", text, re.I) or "谁" in text) and high != low:
        return "user", "high" if high else "low"  # "who is using the most GPUs?"
    if high == low:
        return None
    asks = re.search(r"\b(?:which|what)\b", text, re.I) or "哪" in text
    if not asks:
        return None
    for level, en, zh in _RANK_LEVEL:
        if re.search(rf"\b(?:which|what)\s+(?:{en})\b", text, re.I) or any(
            f"{w}是哪" in text or f"哪个{w}" in text or f"的{w}" in text for w in zh
        ):
            return level, "high" if high else "low"
    return None


def intent_of(
    scores: dict[str, int],
    names: dict[str, list[str]],
    ranges: list[TimeRange],
    text: str,
    in_context: bool,
) -> str:
    domain = bool(names) or in_context or bool(DOMAIN.search(text))
    domain = domain or any(w in text.lower() for w in ZH_DOMAIN)
    if not scores:
        # A bare name ("ml-team", "user_a in October") asks for its trend.
        return "trend" if names or in_context else "help"
    if len(ranges) >= 2 and not {"drilldown", "recommend", "waste"} & set(scores):
        return "compare"
    # "why did utilization change?" asks for causes however many trend words come with it.
    if WHY.search(text) and not {"alerts", "recommend", "waste"} & set(scores):
        return "drilldown"
    # "which GPUs are idle right now?": the state now, not idle GPU-hours over a week.
    now_words = NOW.search(text) or any(w in text for w in ("现在", "当前", "目前", "此刻"))
    if now_words and not ranges and {"realtime"} <= set(scores) <= {"realtime", "waste", "trend"}:
        return "realtime"
    best = max(scores.values())
    for intent in PRIORITY:
        if scores.get(intent) == best:
            if intent == "realtime" and "trend" in scores and ranges:
                return "trend"
            if intent in ("trend", "realtime") and not domain:
                return "help"  # "how is the weather today?"
            return intent
    return "help"
