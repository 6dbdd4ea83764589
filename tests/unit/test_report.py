"""The FinOps report: headline numbers hand-computed on a small fleet, the planted findings of
the demo history, and the three renderings (JSON, Markdown, self-contained HTML).

The hand fleet is 8 hours of one snapshot every 10 minutes of node ``n1`` with four H100s, from
``T0`` (an hour boundary); the window is those 8 hours, so a month is 720 / 8 = 90 windows.
Prices: H100 at $3.00 per GPU-hour, so one GPU for the whole window costs 8 x 3 x 90 = $2160
a month.

* GPU 0: ml-team/alice/train (training) at 90 %, 60 GiB.
* GPU 1: cv-team/bob/notebook at 0 % holding 20 GiB: 8 idle GPU-hours, ``reclaim_idle``.
* GPU 2: nobody, 0 %: unallocated for the whole window, ``scale_down`` (release it).
* GPU 3: ml-team/alice/train2 (training) at 50 %, 60 GiB.

So: mean utilization (90 + 0 + 0 + 50) / 4 = 35 %; 32 GPU-hours cost $8640 a month; the two
recommendations save $2160 each, $4320 together: a 50 % cost reduction; they release 16 of the
32 GPU-hours, so the work left (35 % x 32 GPU-hours) runs at 35 x 32 / 16 = 70 %.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from gpufleet.agent.demo import DemoSummary, write_demo
from gpufleet.analysis.history import HistoryQueryError, UnknownSubjectError
from gpufleet.analysis.pricing import PriceTable
from gpufleet.analysis.recommend_types import (
    Action,
    Recommendation,
    RecommendationSet,
    Target,
)
from gpufleet.analysis.report import (
    Report,
    _count,
    build_report,
    fmt_usd,
    report_json,
)
from gpufleet.analysis.report_html import render_html
from gpufleet.analysis.report_markdown import md_escape, render_markdown
from gpufleet.analysis.scope import Scope, Window
from gpufleet.analysis.svg_charts import Band, BandSeries, bar_chart, line_chart
from gpufleet.model import Attribution, GpuProcess, GpuSample, Snapshot
from gpufleet.store import Store, open_store
from gpufleet.store.base import GpuInventory

GIB = 1 << 30
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600
H100 = "NVIDIA H100 80GB HBM3"
HOURS = 8
WINDOW = Window(T0, T0 + HOURS * 3600)
PRICES = PriceTable({"H100": 3.0}, fallback_usd_per_gpu_hour=1.5)
GPU_MONTH = HOURS * 3.0 * 90
NOW = T0 + 9 * 3600.0
XSS = "<script>alert(1)</script>"

# index -> (utilization %, used memory, holder as (namespace, user, workload, kind) or None)
Holder = tuple[str, str, str, str | None]
FLEET: dict[int, tuple[float, int, Holder | None]] = {
    0: (90.0, 60 * GIB, ("ml-team", "alice", "train", "training")),
    1: (0.0, 20 * GIB, ("cv-team", "bob", "notebook", "notebook")),
    2: (0.0, 0, None),
    3: (50.0, 60 * GIB, ("ml-team", "alice", "train2", "training")),
}


def _sample(index: int, util: float, mem: int, holder: Holder | None) -> GpuSample:
    procs = ()
    if holder is not None:
        namespace, user, workload, kind = holder
        who = Attribution(namespace=namespace, user=user, workload=workload, workload_kind=kind)
        procs = (GpuProcess(pid=100 + index, used_memory_bytes=mem, attribution=who),)
    return GpuSample(
        uuid=f"GPU-{index}",
        index=index,
        name=H100,
        util_gpu_pct=util,
        mem_total_bytes=80 * GIB,
        mem_used_bytes=mem,
        processes=procs,
    )


def write_fleet(
    store: Store, fleet: dict[int, tuple[float, int, Holder | None]] = FLEET, *, start: float = T0
) -> None:
    store.write_snapshots(
        [
            Snapshot(
                ts_s=start + 600.0 * k,
                cluster="c1",
                node="n1",
                gpus=tuple(_sample(i, *fleet[i]) for i in sorted(fleet)),
                system=None,
                interval_s=600.0,
            )
            for k in range(HOURS * 6)
        ]
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "report.db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def hand(store: Store) -> Report:
    write_fleet(store)
    return build_report(store, WINDOW, prices=PRICES, clock=lambda: NOW)


# -- the headline, by hand ---------------------------------------------------------------------


def test_headline_numbers_are_the_hand_computed_ones(hand: Report) -> None:
    h = hand.headline
    assert h.mean_gpu_util_pct == pytest.approx(35.0)
    assert (h.target_util_pct, h.util_gap_pct_points) == (80.0, pytest.approx(45.0))
    assert h.potential_monthly_saving_usd == pytest.approx(2 * GPU_MONTH)
    assert h.recommendations == 2
    # Context from the waste report: GPU 1 held idle, GPU 2 unallocated, a GPU-month each.
    assert h.idle_allocated_monthly_cost_usd == pytest.approx(GPU_MONTH)
    assert h.unallocated_monthly_cost_usd == pytest.approx(GPU_MONTH)
    assert h.idle_monthly_cost_usd == pytest.approx(2 * GPU_MONTH)
    e = h.expected_improvement
    assert e.current_monthly_cost_usd == pytest.approx(4 * GPU_MONTH)
    assert e.monthly_saving_usd == pytest.approx(2 * GPU_MONTH)
    assert e.cost_reduction_pct == pytest.approx(50.0)
    assert (e.gpu_hours, e.released_gpu_hours) == (pytest.approx(32.0), pytest.approx(16.0))
    assert e.utilization_after_pct == pytest.approx(70.0)
    assert e.overlapping == ()
    assert set(e.counted) == {r.id for r in hand.recommendations.recommendations}
    # The two kinds tie at $2160; the recommendation engine's order breaks the tie.
    top = h.top_recommendation
    assert top is not None
    assert top.kind == hand.recommendations.recommendations[0].kind == "reclaim_idle"
    assert top.expected_monthly_saving_usd == pytest.approx(GPU_MONTH)
    assert (top.kind_count, top.kind_monthly_saving_usd) == (1, pytest.approx(GPU_MONTH))
    assert "cv-team/bob/notebook" in top.title


def test_headline_sentences_say_the_numbers(hand: Report) -> None:
    util, savings, rec, improvement = hand.headline.sentences()
    assert util == "GPU utilization: 35.0 % (target 80 %)"
    assert savings.startswith("Potential savings: $4,320/month from 2 recommendations")
    assert "($2,160 held idle, $2,160 unallocated)" in savings
    assert rec.startswith("Recommendation: reclaim idle GPUs: cv-team/bob/notebook")
    top = hand.headline.top_recommendation
    assert top is not None
    assert rec.endswith(f"($2,160/month, {top.confidence_label} confidence)")
    assert improvement == (
        "Expected improvement: 50.0 % cost reduction ($4,320 of $8,640 a month); "
        "utilization 35.0 % -> 70.0 % with 16 of 32 GPU-hours released"
    )


def test_report_holds_the_analyses_it_was_built_from(hand: Report) -> None:
    assert (hand.window, hand.scope, hand.generated_s) == (WINDOW, Scope(), NOW)
    assert hand.utilization.by == hand.waste.by == "namespace"
    assert next(g.key for g in hand.waste.groups) == "cv-team"  # highest idle cost first
    assert hand.trends.series.granularity == "day"
    assert hand.trends.series.metric == "utilization"
    assert {r.kind for r in hand.recommendations.recommendations} == {
        "reclaim_idle",
        "scale_down",
    }
    # Nothing before T0: no change to explain, and the notes say so.
    assert hand.drilldown is None
    assert any("previous window" in n for n in hand.notes)
    # An 8-hour window extrapolated to a month is a caveat; H100 at $3 is not a list price.
    assert any("8 h long" in n for n in hand.notes)
    assert not any("list prices" in n for n in hand.notes)
    for term in ("gpu_utilization", "idle", "waste", "potential_savings", "expected_improvement"):
        assert hand.definitions[term]
    assert "below 5 %" in hand.definitions["idle"]
    assert "monthly factor 90" in hand.definitions["monthly"]


def test_no_recommendation_means_no_improvement(store: Store) -> None:
    busy = {i: (90.0, 60 * GIB, ("ml-team", "alice", f"train{i}", "training")) for i in range(2)}
    write_fleet(store, busy)
    r = build_report(store, WINDOW, prices=PRICES)
    h = r.headline
    assert h.mean_gpu_util_pct == pytest.approx(90.0)
    assert (h.potential_monthly_saving_usd, h.recommendations, h.top_recommendation) == (
        0.0,
        0,
        None,
    )
    e = h.expected_improvement
    assert (e.cost_reduction_pct, e.released_gpu_hours) == (0.0, 0.0)
    assert e.utilization_after_pct == pytest.approx(90.0)
    lines = h.sentences()
    assert lines[2].startswith("Recommendation: none")
    assert lines[3].startswith("Expected improvement: none")


def test_partial_data_is_noted(store: Store) -> None:
    write_fleet(store)
    # Three days around the 8 hours of data: 2023-11-12 22:00 .. 2023-11-15 22:00.
    r = build_report(store, Window(T0 - 48 * 3600, T0 + 24 * 3600), prices=PRICES)
    (gaps,) = [n for n in r.notes if n.startswith("No GPU data on")]
    assert gaps == "No GPU data on 2 of 4 days: 2023-11-12, 2023-11-13."
    (coverage,) = [n for n in r.notes if n.startswith("Readings cover")]
    assert coverage.startswith("Readings cover 11 % of the window's GPU-time for the 4 GPUs")
    # Monthly figures scale the 8 h that have history (not the 72 h window) to 30 days:
    # 4 GPUs x $3.00 an hour for a month.
    e = r.headline.expected_improvement
    # (first to last sample: a few minutes short of 8 h)
    assert e.current_monthly_cost_usd == pytest.approx(4 * 3.0 * 720, rel=0.03)
    assert e.cost_reduction_pct == pytest.approx(50.0)


def test_drilldown_compares_with_the_previous_window(store: Store) -> None:
    before = dict(FLEET)
    before[2] = (80.0, 40 * GIB, ("nlp-team", "carol", "etl", "batch"))
    write_fleet(store, before, start=T0 - HOURS * 3600)
    write_fleet(store)
    r = build_report(store, WINDOW, prices=PRICES)
    assert r.drilldown is not None
    assert r.drilldown.before == Window(T0 - HOURS * 3600, T0)
    top = r.drilldown.root.children[0]
    assert (top.name, top.gpu_hours_before, top.gpu_hours_after) == (
        "nlp-team",
        pytest.approx(8.0),
        0.0,
    )
    assert not any("previous window" in n for n in r.notes)


def test_a_previous_window_with_little_history_is_not_compared(store: Store) -> None:
    # An hour of history before the window (the agent started at T0 - 1 h): the 8 hours
    # before hold 1 hour of data, so the drill-down and the trend do not compare with them.
    store.write_snapshots(
        [
            Snapshot(
                ts_s=T0 - 3600.0 + 600.0 * k,
                cluster="c1",
                node="n1",
                gpus=tuple(_sample(i, *FLEET[i]) for i in sorted(FLEET)),
                system=None,
                interval_s=600.0,
            )
            for k in range(6)
        ]
    )
    write_fleet(store)
    r = build_report(store, WINDOW, prices=PRICES)
    note = "only 60 minutes of history in the 8 hours before 2023-11-14 22:00; not compared"
    d = r.drilldown
    assert d is not None
    assert d.note == note
    assert d.root.change_pct is None
    assert all(c.change_pct is None for c in d.root.children)
    assert (r.trends.comparison.note, r.trends.comparison.change) == (note, None)
    assert f"Previous window ({d.before.label()}): {note}." in r.notes
    md = render_markdown(r)
    page = render_html(r)
    change_md = md.split("## Change against the previous window", 1)[1].split("##", 1)[0]
    assert md_escape(note) in change_md
    assert " % (" not in change_md
    assert "rose" not in change_md
    assert f"- Against the previous window ({d.before.label()}): {md_escape(note)}" in md
    change_html = page.split('<section id="change">', 1)[1].split("</section>", 1)[0]
    assert note in change_html
    assert "<table>" not in change_html
    assert "rose" not in change_html
    assert f"Previous window ({d.before.label()}): {note}." in page
    data = json.loads(json.dumps(report_json(r), allow_nan=False))
    assert data["drilldown"]["note"] == note
    assert data["trends"]["comparison"]["note"] == note


def test_overlapping_recommendations_count_once() -> None:
    def rec(rid: str, kind: str, saving: float, uuids: tuple[str, ...]) -> Recommendation:
        return Recommendation(
            id=rid,
            kind=kind,
            target=Target("c1", "n1", uuids),
            title=rid,
            evidence=(),
            metrics={},
            action=Action("release_gpus", {"gpu_uuids": list(uuids)}),
            expected_monthly_saving_usd=saving,
            confidence=1.0,
            confidence_label="high",
            confidence_basis="",
        )

    recs = RecommendationSet(
        window=WINDOW,
        scope=Scope(),
        idle_threshold_pct=5.0,
        kinds=("scale_down", "mig_or_share", "scale_up"),
        recommendations=(
            rec("a", "scale_down", 2 * GPU_MONTH, ("GPU-0", "GPU-1")),
            rec("b", "mig_or_share", GPU_MONTH / 2, ("GPU-1",)),
            rec("c", "mig_or_share", GPU_MONTH / 4, ("GPU-2",)),
            rec("d", "scale_up", -GPU_MONTH, ("GPU-3",)),
        ),
        total_monthly_saving_usd=2.75 * GPU_MONTH,
        prices_usd_per_gpu_hour={H100: 3.0},
        fallback_models=(),
        thresholds={},
    )
    inventory = {
        f"GPU-{i}": GpuInventory("c1", "n1", f"GPU-{i}", i, H100, 80 * GIB, 0.0, 1.0)
        for i in range(4)
    }
    chosen = _count(recs, inventory, PRICES, 90.0, 3.0)
    assert [r.id for r in chosen.counted] == ["a", "c"]
    assert [r.id for r in chosen.overlapping] == ["b"]
    # $4320 + $540 a month at $3 per GPU-hour and 90 windows a month: 16 + 2 GPU-hours.
    assert chosen.released_gpu_hours == pytest.approx(18.0)


# -- errors ------------------------------------------------------------------------------------


def test_empty_window_and_unknown_scope_raise_the_analysis_errors(store: Store) -> None:
    write_fleet(store)
    later = Window(T0 + 100 * 3600, T0 + 108 * 3600)
    with pytest.raises(UnknownSubjectError, match="no GPU data in"):
        build_report(store, later)
    with pytest.raises(UnknownSubjectError, match="no namespace 'nope'"):
        build_report(store, WINDOW, scope=Scope(namespace="nope"))
    with pytest.raises(UnknownSubjectError, match="no node 'n9'"):
        build_report(store, WINDOW, scope=Scope(node="n9"))
    with pytest.raises(HistoryQueryError, match="target_util_pct"):
        build_report(store, WINDOW, target_util_pct=0.0)
    with pytest.raises(HistoryQueryError, match="idle_threshold_pct"):
        build_report(store, WINDOW, idle_threshold_pct=120.0)


def test_an_empty_store_says_it_holds_nothing(store: Store) -> None:
    with pytest.raises(UnknownSubjectError, match="holds none yet"):
        build_report(store, WINDOW)


def test_window_rows_are_read_once(store: Store) -> None:
    write_fleet(store)
    calls: list[tuple[str, tuple[Any, ...]]] = []

    class Counting:
        def __init__(self, inner: Store) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            attr = getattr(self.inner, name)
            if name not in ("gpu_usage", "workload_usage", "inventory"):
                return attr

            def call(*args: Any, **kwargs: Any) -> Any:
                calls.append((name, (*args, *sorted(kwargs.items()))))
                return attr(*args, **kwargs)

            return call

    build_report(Counting(store), WINDOW, prices=PRICES)  # type: ignore[arg-type]
    assert calls
    assert len(calls) == len(set(calls)), "a read was repeated"


def test_a_namespace_scope_is_reported_as_held_time(store: Store) -> None:
    write_fleet(store)
    r = build_report(store, WINDOW, scope=Scope(namespace="cv-team"), prices=PRICES)
    assert r.headline.mean_gpu_util_pct == pytest.approx(0.0)
    e = r.headline.expected_improvement
    assert e.current_monthly_cost_usd == pytest.approx(GPU_MONTH)
    assert e.cost_reduction_pct == pytest.approx(100.0)
    assert any("owns no capacity" in n for n in r.notes)
    assert r.scope_label == "cv-team"


# -- renderings --------------------------------------------------------------------------------

VOID = frozenset({"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr"})


class _Balance(HTMLParser):
    """Checks that every opened element is closed, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.seen: dict[str, int] = {}
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen[tag] = self.seen.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Balance:
    parser = _Balance()
    parser.feed(page)
    parser.close()
    return parser


def _assert_self_contained(page: str) -> None:
    low = page.lower()
    for needle in ("http://", "https://", "<script", "<link", "@import", "url(", " src="):
        assert needle not in low, needle


def test_html_is_one_balanced_self_contained_document(hand: Report) -> None:
    page = render_html(hand)
    assert page.startswith("<!DOCTYPE html>")
    parsed = _parse(page)
    assert parsed.errors == []
    assert parsed.stack == []
    for tag in ("html", "head", "body", "main", "style"):
        assert parsed.seen.get(tag) == 1, tag
    assert parsed.seen.get("svg", 0) >= 2  # utilization trend and idle cost bars
    assert parsed.seen.get("polygon", 0) >= 1  # the forecast band
    _assert_self_contained(page)
    text = " ".join(" ".join(parsed.text).split())
    for line in hand.headline.sentences():
        _label, rest = line.split(": ", 1)
        assert rest in text, line
    for r in hand.recommendations.recommendations:
        assert r.title in text


def test_markdown_has_the_four_headline_lines(hand: Report) -> None:
    md = render_markdown(hand)
    lines = md.splitlines()
    assert lines[0].startswith("# GPU fleet report: all, ")
    for line in hand.headline.sentences():
        assert f"- {md_escape(line)}" in lines
        assert f"- {line}" in lines  # nothing in them needs escaping here
    for heading in ("## Summary", "## Recommendations", "## Notes", "## Definitions"):
        assert heading in lines


def test_json_round_trips(hand: Report) -> None:
    data = report_json(hand)
    again = json.loads(json.dumps(data, allow_nan=False))
    assert again == data
    assert data["headline"]["sentences"] == list(hand.headline.sentences())
    assert data["window"]["start"] == "2023-11-14T22:00:00Z"
    assert data["generated_at"] == "2023-11-15T07:00:00Z"
    assert data["drilldown"] is None
    assert data["headline"]["expected_improvement"]["cost_reduction_pct"] == pytest.approx(50.0)
    assert len(data["recommendations"]["recommendations"]) == 2
    assert "generated_s" not in data


def test_names_are_escaped_everywhere(store: Store) -> None:
    fleet = dict(FLEET)
    fleet[1] = (0.0, 20 * GIB, (XSS, "bob|x", "nb*[1]", "notebook"))
    write_fleet(store, fleet)
    r = build_report(store, WINDOW, prices=PRICES)
    assert XSS in {g.key for g in r.waste.groups}
    page = render_html(r)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert _parse(page).errors == []
    _assert_self_contained(page)
    md = render_markdown(r)
    assert XSS not in md
    assert "\\<script>alert(1)\\</script>" in md
    assert "bob|x" not in md
    assert "bob\\|x" in md
    json.dumps(report_json(r))


def test_md_escape_keeps_words_and_escapes_markup() -> None:
    assert md_escape("user_a/ml-team") == "user_a/ml-team"
    assert md_escape("_x_ *y* [z](u) a|b <i>") == "\\_x\\_ \\*y\\* \\[z\\](u) a\\|b \\<i>"
    assert md_escape("two\nlines") == "two lines"


def test_svg_charts_escape_text_and_survive_gaps_and_emptiness() -> None:
    line = line_chart(
        [(0.0, 10.0), (86_400.0, None), (172_800.0, 30.0), (259_200.0, 40.0)],
        title="a <b> & c",
        forecast=[(345_600.0, 45.0)],
        bands=[BandSeries("80 %", (Band(345_600.0, 40.0, 50.0),))],
        reference=80.0,
        y_max=100.0,
    )
    assert "a &lt;b&gt; &amp; c" in line
    assert "<b>" not in line
    assert line.count("<polyline") == 2  # one run after the gap, and the forecast
    empty = line_chart([], title="nothing")
    assert "no data" in empty
    bars = bar_chart([("<x>", 10.0), ("y", 0.0), ("z", -1.0)], title="t", value_format=fmt_usd)
    assert "&lt;x&gt;" in bars
    assert "<x>" not in bars
    assert "-$1" in bars
    for svg in (line, empty, bars, bar_chart([], title="none")):
        parsed = _parse(svg)
        assert parsed.errors == []
        assert parsed.stack == []
        assert not re.search(r'[ ,"](-?nan|-?inf)[ ,"]', svg.lower()), svg
        _assert_self_contained(svg)


# -- the demo history ----------------------------------------------------------------------------

# 2 nodes x 8 GPUs is the smallest demo in which user_a's jobs fit, so the planted drop exists
# (see test_analysis_drilldown); the weeks start on hour boundaries.
DEMO_END = 1_767_225_600.0  # 2026-01-01 00:00 UTC


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, DemoSummary]]:
    store = open_store(tmp_path_factory.mktemp("demo") / "demo.db")
    try:
        yield store, write_demo(store, days=15, nodes=2, gpus=8, interval_s=600, end_s=DEMO_END)
    finally:
        store.close()


@pytest.fixture(scope="module")
def demo_report(demo: tuple[Store, DemoSummary]) -> Report:
    store, summary = demo
    drop = summary.truth.team_drop
    assert drop is not None
    return build_report(store, Window(drop.last_start_s, drop.last_end_s))


@pytest.mark.slow
def test_demo_report_names_the_idle_holders(
    demo: tuple[Store, DemoSummary], demo_report: Report
) -> None:
    store, summary = demo
    index = {g.uuid: (g.node, g.index) for g in store.inventory()}
    reclaim = {r.target.workload: r for r in demo_report.recommendations.of_kind("reclaim_idle")}
    counted = set(demo_report.headline.expected_improvement.counted)
    md = render_markdown(demo_report)
    page = render_html(demo_report)
    assert summary.truth.idle_holders
    for h in summary.truth.idle_holders:
        rec = reclaim[h.workload]
        assert (rec.target.namespace, rec.target.user) == (h.namespace, h.user)
        assert sorted(index[u] for u in rec.target.gpu_uuids) == [
            (h.node, i) for i in h.gpu_indices
        ]
        assert rec.id in counted
        name = f"{h.namespace}/{h.user}/{h.workload}"
        assert name in md
        assert name in page
    top = demo_report.headline.top_recommendation
    assert top is not None
    assert top.kind == "reclaim_idle"
    assert top.kind_count >= len(summary.truth.idle_holders)
    h = demo_report.headline
    assert h.potential_monthly_saving_usd >= sum(
        reclaim[i.workload].expected_monthly_saving_usd for i in summary.truth.idle_holders
    )
    assert h.potential_monthly_saving_usd <= h.expected_improvement.current_monthly_cost_usd
    e = h.expected_improvement
    assert e.cost_reduction_pct is not None
    assert 0 < e.cost_reduction_pct < 100
    assert e.utilization_after_pct is not None
    assert h.mean_gpu_util_pct is not None
    assert e.utilization_after_pct > h.mean_gpu_util_pct


@pytest.mark.slow
def test_demo_report_names_the_team_whose_usage_dropped(
    demo: tuple[Store, DemoSummary], demo_report: Report
) -> None:
    _, summary = demo
    drop = summary.truth.team_drop
    assert drop is not None
    d = demo_report.drilldown
    assert d is not None
    assert d.before == Window(drop.previous_start_s, drop.last_start_s)
    team, user = d.path[1], d.path[2]
    assert (team.level, team.name) == ("namespace", drop.namespace)
    assert team.change_pct == pytest.approx(-drop.drop_pct, abs=3.0)
    assert (user.level, user.name) == ("user", drop.user)
    md = render_markdown(demo_report)
    assert f"{drop.user}: {drop.previous_jobs} -> {drop.last_jobs} jobs" in md
    assert md_escape(team.summary) in md


@pytest.mark.slow
def test_demo_report_renders(demo_report: Report) -> None:
    page = render_html(demo_report)
    parsed = _parse(page)
    assert parsed.errors == []
    assert parsed.stack == []
    _assert_self_contained(page)
    md = render_markdown(demo_report)
    for line in demo_report.headline.sentences():
        assert f"- {md_escape(line)}" in md.splitlines()
    data = json.loads(json.dumps(report_json(demo_report), allow_nan=False))
    assert data["drilldown"]["root"]["children"][0]["name"] == "ml-team"
    assert any("list prices" in n for n in demo_report.notes)
