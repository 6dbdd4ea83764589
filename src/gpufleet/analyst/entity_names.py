"""Names in a question: which known clusters, nodes, namespaces, users, workloads and GPU
models it names (only what the :class:`~gpufleet.analyst.catalog.Catalog` holds data for),
its ``key:value`` labels, typos and spaced spellings of known names read as those names, and
the name-like words that name nothing (the answer says it is not about them).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Sequence

from gpufleet.analyst.catalog import Catalog

_NAME_EDGE = r"(?<![A-Za-z0-9_\-.])"
_NAME_END = r"(?![A-Za-z0-9_\-])"


@functools.lru_cache(maxsize=64)
def _names_pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation of ``values``, longest first (so ``pretrain-small-0037`` wins over a
    name it starts with), each only as a whole name."""
    names = sorted((v for v in values if v and v != "unknown"), key=len, reverse=True)
    if not names:
        return None
    alternation = "|".join(re.escape(n) for n in names)
    return re.compile(f"{_NAME_EDGE}(?:{alternation}){_NAME_END}", re.IGNORECASE)


_NAME_LEVELS = ("cluster", "node", "namespace", "user", "workload")
TYPO_CUTOFF = 0.8
"""How alike (difflib's ratio) a word and a known name must be for the word to be read as
the name; two names that close to the word make it ambiguous, and it is left unknown."""


@functools.lru_cache(maxsize=64)
def _spaced_pattern(values: tuple[str, ...]) -> re.Pattern[str] | None:
    """Known names with ``-`` or ``_`` written with spaces instead (``nlp team``)."""
    parts = sorted(
        (v for v in values if re.search(r"[-_]", v) and v != "unknown"), key=len, reverse=True
    )
    if not parts:
        return None
    spaced = "|".join(r"\s+".join(re.escape(p) for p in re.split(r"[-_]+", v) if p) for v in parts)
    return re.compile(f"{_NAME_EDGE}(?:{spaced}){_NAME_END}", re.IGNORECASE)


def spelled(text: str, catalog: Catalog) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``text`` with names written with spaces, or misspelled close to exactly one known
    name, replaced by that name; and what was replaced."""
    values = tuple(v for level in _NAME_LEVELS for v in catalog.values(level))
    known = {v.lower(): v for v in values if v and v != "unknown"}
    if not known:
        return text, ()
    fixes: list[tuple[str, str]] = []
    spaced = _spaced_pattern(values)
    if spaced is not None:
        squash = {re.sub(r"[-_]+", " ", k): v for k, v in known.items()}

        def respace(m: re.Match[str]) -> str:
            canon = squash.get(re.sub(r"\s+", " ", m.group(0).lower()))
            if canon is None:
                return m.group(0)
            fixes.append((m.group(0), canon))
            return canon

        text = spaced.sub(respace, text)
    model = gpu_model(text, catalog.gpu_models)
    for word in unknown_names(text, catalog, model):
        close = difflib.get_close_matches(word.lower(), list(known), n=2, cutoff=TYPO_CUTOFF)
        if len(close) != 1 or _other_id(word.lower(), close[0]):
            continue
        canon = known[close[0]]
        text = re.sub(f"{_NAME_EDGE}{re.escape(word)}{_NAME_END}", canon, text)
        fixes.append((word, canon))
    return text, tuple(fixes)


def _other_id(word: str, name: str) -> bool:
    """Whether ``word`` differs from ``name`` only in short parts (``team-z`` / ``team-a``,
    ``node-3`` / ``node-2``, ``user_b`` / ``user_a``): such parts are ids, and a different id
    is another thing, not a typo."""
    a, b = re.split(r"[-_]+", word), re.split(r"[-_]+", name)
    if len(a) != len(b):
        return False
    differing = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return bool(differing) and all(
        max(len(x), len(y)) <= 2 or (x.isdigit() and y.isdigit()) for x, y in differing
    )


def find_names(text: str, values: Sequence[str]) -> list[tuple[int, str]]:
    """``(position, name)`` of each known name in ``text`` (case-insensitive, whole names)."""
    pattern = _names_pattern(tuple(values))
    if pattern is None:
        return []
    canonical = {v.lower(): v for v in values}
    return [(m.start(), canonical[m.group(0).lower()]) for m in pattern.finditer(text)]


def gpu_model(text: str, models: Sequence[str]) -> str | None:
    low = text.lower()
    for model in models:
        short = re.findall(r"\b([A-Z]\d{2,4}[A-Za-z]*)\b", model)
        if model.lower() in low or any(
            re.search(_NAME_EDGE + re.escape(s.lower()) + r"s?" + _NAME_END, low) for s in short
        ):
            return model
    return None


def label_of(text: str, catalog: Catalog) -> tuple[str, str] | None:
    m = re.search(
        r"\b(namespace|user|workload|workload_kind|kind|node)\s*[:=]\s*([A-Za-z0-9_.\-]+)",
        text,
        re.IGNORECASE,
    )
    if m is None:
        return None
    key = m.group(1).lower()
    key = "workload_kind" if key == "kind" else key
    return key, m.group(2)


_NAME_LIKE = re.compile(
    r"(?<![A-Za-z0-9_.\-])([A-Za-z][A-Za-z0-9]*(?:[-_][A-Za-z0-9]+)+)(?![A-Za-z0-9_\-])"
)
_AFTER_LEVEL = re.compile(
    r"\b(?:namespace|team|user|workload|job|node|cluster)\s+([A-Za-z0-9][A-Za-z0-9_.\-]*)", re.I
)
_NOT_NAMES = {
    "gpu-hours",
    "gpu-hour",
    "right-size",
    "right-sizing",
    "scale-up",
    "scale-down",
    "time-slicing",
    "follow-up",
    "per-gpu",
    "so-called",
    "non-idle",
    "week-over-week",
    "day-over-day",
    "month-over-month",
    "real-time",
    "up-to-date",
    "e-mail",
    "dcgm-exporter",
}
_PLAIN_WORDS = {
    "utilization",
    "usage",
    "trend",
    "for",
    "the",
    "a",
    "an",
    "in",
    "of",
    "is",
    "was",
    "and",
    "with",
    "by",
    "over",
    "last",
    "this",
    "past",
    "name",
    "names",
    "level",
    "levels",
    "that",
    "which",
    "what",
    "has",
    "have",
    "use",
    "uses",
    "used",
    "gpu",
    "gpus",
    "util",
}


_OF_LEVEL = re.compile(
    r"\b(?:of|in|for|about|on|from)\s+(?:the\s+)?(?:namespace|team|user|workload|job|node|cluster)"
    r"\s+([A-Za-z0-9][A-Za-z0-9_.\-]*)",
    re.IGNORECASE,
)
_LEVEL_FOLLOWERS = frozenset(
    (
        *("level", "levels", "breakdown", "names", "name", "list", "usage", "utilization"),
        *("data", "and", "or", "with", "has", "had", "is", "are", "was", "were", "that"),
        *("which", "who", "the", "a", "an", "by", "over", "in", "on", "for"),
    )
)
_MODEL_WORD = re.compile(
    r"(?<![A-Za-z0-9_\-])([ABHLTV]\d{1,3}S?|MI\d{3}X?)(?![A-Za-z0-9_\-])", re.IGNORECASE
)


def unknown_names(text: str, catalog: Catalog, model: str | None) -> tuple[str, ...]:
    """Name-like words of ``text`` that name nothing with data (see Understanding.unknown)."""
    known = {
        v.lower()
        for level in ("cluster", "node", "namespace", "user", "workload", "workload_kind")
        for v in catalog.values(level)
    }
    found: list[str] = []
    candidates = [m.group(1) for m in _NAME_LIKE.finditer(text)]
    # After a level word, only name-like words (with a digit, "-" or "_"): "node had ..."
    # names nothing.
    candidates += [
        word
        for m in _AFTER_LEVEL.finditer(text)
        if re.search(r"[\d_\-]", word := m.group(1).rstrip(".,;:?!"))
    ]
    # "of user alice", "in cluster foo": a level word then any word is meant as a name.
    candidates += [
        word
        for m in _OF_LEVEL.finditer(text)
        if (word := m.group(1).rstrip(".,;:?!")).lower() not in _LEVEL_FOLLOWERS
    ]
    models = " ".join(catalog.gpu_models).lower()
    found += [
        m.group(1)
        for m in _MODEL_WORD.finditer(text)
        if m.group(1).lower().rstrip("s") not in models
    ]
    for word in candidates:
        low = word.lower()
        if (
            low in known
            or low in _NOT_NAMES
            or low in _PLAIN_WORDS
            or (model is not None and low in model.lower())
            or re.fullmatch(r"\d+|[a-z]\d{2,4}s?", low)
            or low.endswith(("-based", "-wide", "-level", "-like"))
            or word in found
        ):
            continue
        found.append(word)
    return tuple(found)
