"""Analyst benchmark: offline answer latency on the demo cluster (issue 4: p50 under 50 ms).

Asks every turn of the evaluation set (``tests/fixtures/analyst_eval.jsonl``: English and
Chinese, all intents, follow-ups and clarifications, each conversation in its own session)
of the demo store that ``bench/analysis_bench.py`` builds and caches (30 days, 4 nodes x 8
GPUs, a sample a minute), twice: the first pass warms the store's pages and the analyst's
name catalog, the second is timed. Each figure is the wall time of ``Analyst.ask`` (reading
the session, understanding, the analysis calls, the wording and storing the turn), from one
long-lived analyst as the API server keeps. Reports p50/p90/p99 overall and p50 per intent,
and, as a peer measured in the same run, the analysis call alone for the two most common
intents (the language layer's own cost is the difference). Run::

    .venv/bin/python bench/analyst_bench.py [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _report import median, write_section
from analysis_bench import END_S, demo_store

from gpufleet.analysis.scope import Scope, Window
from gpufleet.analysis.trends import analyze_trends
from gpufleet.analyst.engine import Analyst

EVAL = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "analyst_eval.jsonl"
TARGET_P50_MS = 50.0


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write docs/BENCHMARKS.md")
    args = parser.parse_args()
    conversations = [json.loads(line) for line in EVAL.read_text().splitlines() if line]
    store = demo_store(days=30, nodes=4, gpus=8, seed=0)
    try:
        analyst = Analyst(store, clock=lambda: END_S)
        timings: list[float] = []
        per_intent: dict[str, list[float]] = defaultdict(list)
        for timed in (False, True):
            for conv in conversations:
                session = None
                for turn in conv["turns"]:
                    began = time.perf_counter()
                    reply = analyst.ask(turn["q"], session_id=session)
                    ms = (time.perf_counter() - began) * 1000.0
                    session = reply.session_id
                    if timed:
                        timings.append(ms)
                        per_intent[reply.intent].append(ms)
        # The peer: the analysis behind a default trend question, alone.
        window = Window(END_S - 7 * 86_400.0, END_S)
        peer = []
        for _ in range(15):
            began = time.perf_counter()
            analyze_trends(store, window, scope=Scope(namespace="ml-team"), granularity="day")
            peer.append((time.perf_counter() - began) * 1000.0)
        trend_turn = []
        for _ in range(15):
            began = time.perf_counter()
            analyst.ask("ml-team utilization over the past 7 days")
            trend_turn.append((time.perf_counter() - began) * 1000.0)
    finally:
        store.close()
    p50, p90, p99 = (_quantile(timings, q) for q in (0.5, 0.9, 0.99))
    verdict = "under" if p50 < TARGET_P50_MS else "**over**"
    print(
        f"{len(timings)} answers: p50 {p50:.1f} ms ({verdict} {TARGET_P50_MS:.0f}), "
        f"p90 {p90:.1f}, p99 {p99:.1f}"
    )
    rows = "\n".join(
        f"| {intent} | {len(v)} | {median(v):.1f} |"
        for intent, v in sorted(per_intent.items(), key=lambda kv: -len(kv[1]))
    )
    print(rows)
    body = f"""
| answers | p50 (ms) | p90 (ms) | p99 (ms) | target p50 (ms) |
|---:|---:|---:|---:|---:|
| {len(timings)} | {p50:.1f} | {p90:.1f} | {p99:.1f} | {TARGET_P50_MS:.0f} |

| intent | answers | p50 (ms) |
|---|---:|---:|
{rows}

Peer in the same run: "ml-team utilization over the past 7 days" took {median(trend_turn):.1f} ms
as a whole answer (median of 15, new session each), of which the daily trend analysis alone
(`analyze_trends`, same window and scope) is {median(peer):.1f} ms.

Store: the cached `write_demo(days=30, nodes=4, gpus=8, seed=0)` of `bench/analysis_bench.py`
(SQLite, a sample a minute). Questions: every turn of `tests/fixtures/analyst_eval.jsonl`, each
conversation in its own session, asked twice (the second pass is timed); wall time of
`Analyst.ask` including storing the turn. Offline: no LLM configured. Machine: 2 cores shared
with other jobs.
"""
    if args.write:
        write_section(
            "analyst",
            "Analyst answer latency (demo cluster, offline)",
            "python bench/analyst_bench.py --write",
            body,
        )


if __name__ == "__main__":
    main()
