"""Whether a turn answers the pending clarification ("2", "prod", "use the prod cluster",
"第二个") or is a new question that merely names an option."""

from __future__ import annotations

import re
from collections.abc import Sequence

_REPLY_FILLER_EN = frozenset(
    [
        "the",
        "a",
        "cluster",
        "namespace",
        "team",
        "ns",
        "please",
        "use",
        "pick",
        "choose",
        "take",
        "i",
        "want",
        "one",
        "option",
        "let's",
        "lets",
        "go",
        "with",
        "for",
        "that",
        "this",
        "it",
        "is",
        "just",
        "only",
        "ok",
        "okay",
        "yes",
    ]
)
_REPLY_FILLER_ZH: tuple[str, ...] = ("命名空间", "选择", "集群", "团队", "那个", "这个", "用")
_REPLY_FILLER_ZH += ("选", "吧", "请", "就", "要", "看", "是", "的", "好")


def option_reply(choice: str, options: Sequence[str]) -> str | None:
    """The option ``choice`` picks when it is a reply to the clarification ("prod", "use
    prod", "the prod cluster", "选 prod"), else None. A turn that says more than that ("waste
    in prod last month") or names two options is a new question, not a reply, even if it
    names an option."""
    rest = choice.lower()
    hits = []
    for o in sorted(options, key=len, reverse=True):
        pattern = r"(?<![A-Za-z0-9_\-])" + re.escape(o.lower()) + r"(?![A-Za-z0-9_\-])"
        if re.search(pattern, rest):
            hits.append(o)
            rest = re.sub(pattern, " ", rest)
    if len(hits) != 1:
        return None
    for word in _REPLY_FILLER_ZH:
        rest = rest.replace(word, " ")
    words = re.findall(r"[a-z0-9_'\-]+|[\u4e00-\u9fff]+", rest)
    return hits[0] if all(w in _REPLY_FILLER_EN for w in words) else None
