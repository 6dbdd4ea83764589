"""Scoring of the analyst against the evaluation set (``tests/fixtures/analyst_eval.jsonl``).

Shared by the test that enforces the accuracy bar (``tests/unit/test_analyst_eval.py``) and
by ``bench/analyst_bench.py``. The set's questions are asked of the demo cluster, 30 days
ending at :data:`EVAL_NOW_S` (the set's "now"), one conversation per session.

A turn is correct when its intent is the expected one, the expected clarification (if any)
is asked, and every entity key the set annotates (:data:`SCORED_KEYS`) has the expected
value, with no other scored key present. A drill-down's ``compare`` windows are scored only
where the set gives them (every drill-down compares two windows; the set leaves the default
comparison unstated). ``"#N"`` stands for the N-th option of the clarification just asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpufleet.analyst.engine import Analyst, Reply
from gpufleet.store.base import Store

EVAL_FILE = Path(__file__).resolve().parent / "fixtures" / "analyst_eval.jsonl"
HOLDOUT_FILE = Path(__file__).resolve().parent / "fixtures" / "analyst_holdout.jsonl"
"""70 turns written after the analyst, by someone who had not seen it or the set above."""
EVAL_NOW_S = datetime(2026, 11, 25, 12, tzinfo=UTC).timestamp()
SCORED_KEYS = (
    "time_range",
    "cluster",
    "namespace",
    "user",
    "workload",
    "node",
    "gpu_model",
    "metric",
    "granularity",
    "compare",
)


@dataclass(frozen=True, slots=True)
class Scored:
    """One turn: what was asked, expected, answered, and what differed."""

    conversation: str
    turn: int
    question: str
    expected: dict[str, Any]
    reply: Reply
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def conversations(path: Path = EVAL_FILE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _resolve(value: Any, options: list[str]) -> Any:
    if isinstance(value, str) and value.startswith("#") and value[1:].isdigit():
        i = int(value[1:]) - 1
        return options[i] if 0 <= i < len(options) else value
    return value


def score_turn(expected: dict[str, Any], reply: Reply, options: list[str]) -> list[str]:
    problems = []
    if reply.intent != expected["intent"]:
        problems.append(f"intent {reply.intent!r}, expected {expected['intent']!r}")
    want_clar = expected.get("clarification")
    got_clar = None if reply.clarification is None else reply.clarification.get("missing")
    if want_clar != got_clar:
        problems.append(f"clarification {got_clar!r}, expected {want_clar!r}")
    want = {k: _resolve(v, options) for k, v in expected.get("entities", {}).items()}
    got = reply.entities
    for key in SCORED_KEYS:
        if key == "compare" and reply.intent == "drilldown" and key not in want:
            continue
        w, g = want.get(key), got.get(key)
        if key == "time_range" and isinstance(g, dict):
            g = {k: g[k] for k in ("start", "end") if k in g}  # the label is for reading
        if w != g:
            problems.append(f"{key} {g!r}, expected {w!r}")
    return problems


def run(store: Store, *, limit: int | None = None, path: Path = EVAL_FILE) -> Iterator[Scored]:
    """Ask every conversation of the set, in its own session; yield each scored turn."""
    analyst = Analyst(store, clock=lambda: EVAL_NOW_S)
    for conv in conversations(path)[:limit]:
        session: str | None = None
        options: list[str] = []
        for i, turn in enumerate(conv["turns"]):
            reply = analyst.ask(turn["q"], session_id=session)
            session = reply.session_id
            problems = score_turn(turn, reply, options)
            options = list(reply.clarification["options"]) if reply.clarification else options
            yield Scored(conv["id"], i, turn["q"], turn, reply, tuple(problems))
