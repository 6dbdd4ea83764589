"""What the analyst's answers say, on the demo cluster: drill-downs that name what they count
and explain each share, partial coverage said, comparisons read in time order, rankings,
scoped listings, idle GPUs now, metrics it does not answer, and Chinese answers in Chinese.

Every number in these answers is also checked against its data by the evaluation tests; here
the wording and the choice of what is answered are checked.
"""

from __future__ import annotations

import re

import pytest
from tests.analyst_eval import EVAL_NOW_S

from gpufleet.analyst import answer_trend
from gpufleet.analyst.engine import Analyst, Reply
from gpufleet.store.base import Store


@pytest.fixture(scope="module")
def analyst(demo_store: Store) -> Analyst:
    return Analyst(demo_store, clock=lambda: EVAL_NOW_S)


def _ask(analyst: Analyst, *questions: str) -> Reply:
    session = None
    reply = None
    for q in questions:
        reply = analyst.ask(q, session_id=session)
        session = reply.session_id
    assert reply is not None
    return reply


def _text(r: Reply) -> str:
    return "\n".join([r.answer, *r.insights])


def test_a_drill_down_says_it_counts_held_gpu_time(analyst: Analyst) -> None:
    r = _ask(analyst, "why did utilization change last week?")
    assert r.intent == "drilldown"
    assert r.answer.startswith("Utilization of the GPU-time workloads held in gpu-cluster-01")
    assert any("unallocated GPUs are left out" in i for i in r.insights)
    # The fleet trend of the same week counts idle unallocated GPUs and reads lower.
    trend = _ask(analyst, "utilization trend last week")
    held = float(re.search(r"was ([\d.]+) %", r.answer).group(1))  # type: ignore[union-attr]
    fleet = float(re.search(r"averaged ([\d.]+) %", trend.answer).group(1))  # type: ignore[union-attr]
    assert held > fleet


def test_a_share_against_the_own_change_is_explained(analyst: Analyst) -> None:
    """user_c's own utilization rose 0.1 points but its weight grew: the line says so, so the
    75 % of a fall it is given does not read as a contradiction."""
    r = _ask(analyst, "why did ml-team's utilization drop this week?")
    line = next(i for i in r.insights if i.startswith("user_c:"))
    assert "(+0.1 points)" in line
    assert "its share of the GPU-time of ml-team went from" in line
    assert "pulled the average down" in line
    assert "Most of it comes from user_c" in r.answer


def test_a_users_drill_down_goes_to_its_workloads(analyst: Analyst) -> None:
    r = _ask(analyst, "why did user_a's utilization change?")
    assert r.intent == "drilldown"
    assert r.answer.startswith("Utilization of the GPU-time held by user_a")
    assert not any("namespace" in i for i in r.insights[:-1])
    assert r.insights[0].startswith("workload ")


def test_a_drill_down_without_history_before_names_no_driver(analyst: Analyst) -> None:
    r = _ask(analyst, "why did utilization change in November vs October?")
    assert "history covers only 17.7 % of October 2026" in r.answer
    assert "Most of it" not in r.answer
    assert all("of the change" not in i for i in r.insights)


def test_gpu_hours_named_are_the_metric(analyst: Analyst) -> None:
    r = _ask(analyst, "why did GPU-hours change in November vs October?")
    assert r.entities["metric"] == "gpu_hours"
    assert "GPU-hours workloads held in gpu-cluster-01" in r.answer


def test_a_chinese_why_is_a_drill_down_in_chinese(analyst: Analyst) -> None:
    r = _ask(analyst, "为什么ml-team本周利用率下降了？")
    assert r.intent == "drilldown"
    text = _text(r)
    # Nothing English but names (with digits, '-' or '_'), units and acronyms.
    words = set(re.findall(r"[A-Za-z]{3,}", re.sub(r"\S*[\d_\-]\S*", " ", text)))
    assert words <= {"GPU"}, words


def test_partial_coverage_of_a_window_is_said(analyst: Analyst) -> None:
    trend = _ask(analyst, "utilization trend last month")
    assert "Only 6 of the window's 31 daily buckets have data, from 2026-10-26." in trend.answer
    waste = _ask(analyst, "how much waste last month?")
    assert "History covers only 132 of the window's 744 hours (17.7 %)" in waste.answer
    zh = _ask(analyst, "上个月浪费了多少？")
    assert "历史数据只覆盖了这个时间范围744小时中的132小时" in zh.answer


def test_a_comparison_of_two_months_reads_in_time_order(analyst: Analyst) -> None:
    r = _ask(analyst, "compare October and November")
    assert r.answer.startswith(
        "GPU utilization of the fleet averaged 32.1 % in November 2026 and 39.9 % in "
        "October 2026; history covers only 17.7 % of October 2026"
    )
    zh = _ask(analyst, "比较10月和11月的利用率")
    assert "历史数据只覆盖了2026年10月" in zh.answer
    assert "only" not in zh.answer


def test_a_past_window_gets_no_forecast(analyst: Analyst) -> None:
    past = _ask(analyst, "utilization trend last week")
    assert not any(i.startswith("Forecast") for i in past.insights)
    now = _ask(analyst, "utilization trend over the past 7 days")
    assert any(i.startswith("Forecast for 2026-11-26") for i in now.insights)
    today = _ask(analyst, "utilization today")
    assert any(i.startswith("Forecast for 2026-11-25 12:00") for i in today.insights)


def test_a_trend_against_its_end_points_says_both() -> None:
    """A robust slope that falls while the last bucket is above the first says so."""
    series = {
        "metric": "utilization",
        "granularity": "day",
        "scope": {},
        "points": [
            {"start": f"2026-11-{d:02d}T00:00:00Z", "value": v}
            for d, v in zip(range(1, 6), (39.8, 60.0, 45.0, 30.0, 49.8), strict=True)
        ],
    }
    result = {
        "series": series,
        "comparison": {"value_b": 44.9},
        "slope": {"direction": "falling", "per_day": -2.0},
    }
    answer, _ = answer_trend.trend(result, "the past 5 days", zh=False)
    assert "trending downward across its buckets, though the last (49.8 %)" in answer
    assert "above the first (39.8 %)" in answer
    zh, _ = answer_trend.trend(result, "过去5天", zh=True)
    assert "虽然最后一个时间段（49.8%）高于第一个（39.8%）" in zh


def test_rankings_are_answered_by_ranking(analyst: Analyst) -> None:
    most = _ask(analyst, "who is using the most GPUs?")
    assert most.answer.startswith("Over the past 7 days, the user with the most GPU-hours was")
    assert most.data[0]["tool"] == "rank_entities"
    busiest = _ask(analyst, "which node is the busiest?")
    assert busiest.intent == "trend"
    assert "the node with the highest GPU utilization was gpu-node-" in busiest.answer
    by_hours = _ask(analyst, "rank namespaces by GPU-hours last week")
    assert "the namespace with the most GPU-hours was production" in by_hours.answer
    zh = _ask(analyst, "上周谁用 GPU 最多?")
    assert zh.answer.startswith("上周GPU时数最多的用户是svc-llm")


def test_listings_of_a_namespace_are_of_that_namespace(analyst: Analyst, demo_store: Store) -> None:
    users = _ask(analyst, "which users are in ml-team?")
    assert users.entities["lists"] == "user"
    assert users.answer.startswith("3 users of ml-team with data in the past 7 days:")
    assert sorted(re.findall(r"user_[a-z]", users.answer)) == ["user_a", "user_b", "user_c"]
    zh = _ask(analyst, "ml-team有哪些用户？")
    assert zh.answer.startswith("过去7天ml-team有数据的用户共3个")
    workloads = _ask(analyst, "list workloads of cv-team")
    assert workloads.entities["lists"] == "workload"
    assert "workloads of cv-team" in workloads.answer
    models = _ask(analyst, "有哪些GPU型号？")
    assert models.intent == "metadata"
    assert "NVIDIA H100 80GB HBM3" in models.answer


def test_three_entities_are_all_compared(analyst: Analyst) -> None:
    r = _ask(analyst, "compare ml-team, cv-team and nlp-team")
    assert r.entities["compare"]["more"] == ["nlp-team"]
    assert re.search(r"ml-team [\d.]+ %, cv-team [\d.]+ % and nlp-team [\d.]+ %", r.answer)
    follow = _ask(analyst, "compare ml-team, cv-team and nlp-team", "and last week?")
    assert "nlp-team" in follow.answer


def test_compare_two_users_asks_which_two(analyst: Analyst) -> None:
    asked = _ask(analyst, "compare two users last week")
    assert asked.clarification is not None
    assert asked.clarification["question"].startswith(
        "Which two users? Users with GPU usage last week"
    )
    options = asked.clarification["options"]
    r = analyst.ask("1 and 3", session_id=asked.session_id)
    assert r.entities["compare"] == {"level": "user", "a": options[0], "b": options[2]}
    assert r.entities["time_range"]["label"] == "last week"
    asked = _ask(analyst, "比较两个团队")
    again = analyst.ask("99和1", session_id=asked.session_id)
    assert again.answer.startswith("99不是5个选项之一")
    assert again.clarification is not None
    zh = analyst.ask("第一个和第三个", session_id=asked.session_id)
    assert zh.entities["compare"]["level"] == "namespace"


def test_which_gpus_are_idle_now_lists_them(analyst: Analyst) -> None:
    r = _ask(analyst, "which GPUs are idle right now?")
    assert r.intent == "realtime"
    assert any(i.startswith("Free (unallocated) GPUs: 2 (gpu-node-04 GPU") for i in r.insights)
    assert any(i.startswith("Allocated but idle GPUs:") for i in r.insights)


def test_a_window_after_a_realtime_question_is_its_history(analyst: Analyst) -> None:
    r = _ask(analyst, "how many GPUs are in use now?", "and last week?")
    assert r.intent == "trend"
    assert r.entities["metric"] == "allocation_rate"
    assert r.entities["time_range"]["label"] == "last week"


def test_one_window_after_a_comparison_is_compared_with_the_one_before(analyst: Analyst) -> None:
    r = _ask(analyst, "compare this week with last week", "and yesterday?")
    assert r.entities["compare"]["windows"] == [
        {"start": "2026-11-24T00:00:00Z", "end": "2026-11-25T00:00:00Z"},
        {"start": "2026-11-23T00:00:00Z", "end": "2026-11-24T00:00:00Z"},
    ]
    assert "from 38.3 % the day before" in r.answer or "the day before." in r.answer


@pytest.mark.parametrize(
    ("question", "what"),
    [
        ("GPU memory trend last week", "memory use"),
        ("temperature of gpu-node-01 yesterday", "temperature"),
        ("power draw trend this week", "power draw"),
    ],
)
def test_metrics_it_does_not_answer_are_said(analyst: Analyst, question: str, what: str) -> None:
    r = _ask(analyst, question)
    assert r.answer.startswith(f"The analyst does not answer {what}")
    zh = _ask(analyst, "上周显存使用趋势")
    assert zh.answer.startswith("分析助手不回答显存使用")


def test_who_wastes_the_most_is_ranked_by_idle_gpu_hours(analyst: Analyst) -> None:
    r = _ask(analyst, "which user wastes the most GPU?")
    assert r.intent == "waste"
    assert r.answer.startswith("Over the past 7 days, the user that wasted the most was user_f")
    assert r.data[0]["args"]["by"] == "user"
    zh = _ask(analyst, "哪个用户浪费最多")
    assert zh.answer.startswith("过去7天浪费最多的用户是user_f")
    idle = _ask(analyst, "top users by idle GPU hours last week")
    assert "the user that wasted the most was user_f" in idle.answer


def test_a_list_is_followed_up_by_number_or_window(analyst: Analyst) -> None:
    listed = _ask(analyst, "list namespaces")
    second = re.findall(r"^2\. (\S+)$", listed.answer, re.M)[0]
    picked = analyst.ask("2", session_id=listed.session_id)
    assert (picked.intent, picked.entities["namespace"]) == ("trend", second)
    again = _ask(analyst, "list namespaces", "and last week?")
    assert (again.intent, again.entities["lists"]) == ("metadata", "namespace")
    assert again.answer.startswith("5 namespaces with data last week:")
    zh = _ask(analyst, "有哪些用户", "那上周呢？")
    assert zh.answer.startswith("上周有数据的用户共")


def test_a_chinese_question_of_gpu_hours_gets_a_total(analyst: Analyst) -> None:
    r = _ask(analyst, "上周cv-team用了多少GPU时")
    assert r.entities["metric"] == "gpu_hours"
    assert r.answer.startswith("上周cv-team的GPU时数合计697.8 GPU时")
    en = _ask(analyst, "how many GPU hours did cv-team use last week")
    assert "GPU-hours of cv-team totalled 697.8 GPU-h" in en.answer
    assert "averaged" not in en.answer


def test_half_buckets_at_the_edges_are_not_picked_as_days(analyst: Analyst) -> None:
    r = _ask(analyst, "GPU utilization trend over the last 30 days")
    # The window starts 2026-10-26 12:00: that afternoon is no day's figure.
    assert "(2026-10-26)" not in _text(r)
    assert "first bucket 42.7 %" in r.answer


def test_a_namespace_now_lists_every_gpu_it_holds(analyst: Analyst) -> None:
    r = _ask(analyst, "nlp-team right now")
    assert r.answer.startswith("nlp-team holds 6 GPUs now")
    assert r.insights[0].count(" GPU ") == 6
    assert "Held but idle: gpu-node-03 GPU 0." in r.insights


def test_a_namespaces_waste_has_no_unallocated_time_and_no_repeats(analyst: Analyst) -> None:
    r = _ask(analyst, "idle cost for cv-team last 30 days")
    assert "unallocated" not in r.answer
    heads = [i.split(":")[0].split(" held")[0] for i in r.insights]
    assert len(heads) == len(set(heads))


def test_windows_of_different_lengths_are_said(analyst: Analyst) -> None:
    r = _ask(analyst, "compare cv-team this week with last week")
    assert (
        "The windows differ in length (60 h this week, 168 h last week): compare the rates, "
        "not the GPU-hour totals." in r.insights
    )


def test_compare_it_with_another_compares_the_two(analyst: Analyst) -> None:
    r = _ask(analyst, "ml-team utilization last week", "compare it with nlp-team")
    assert r.entities["compare"] == {"level": "namespace", "a": "ml-team", "b": "nlp-team"}
    assert r.answer.startswith("Last week, GPU utilization of ml-team was 79.4 % and of nlp-team")


def test_full_width_punctuation_is_chinese(analyst: Analyst) -> None:
    assert _ask(analyst, "？").answer.startswith("我可以根据历史数据回答")


def test_a_why_answer_says_how_allocation_moved(analyst: Analyst) -> None:
    r = _ask(analyst, "why did usage drop on Nov 20")
    assert r.insights[0] == (
        "Allocation rate (share of GPU-time held): 71.9 % the day before -> 62.2 % on "
        "2026-11-20 (-9.7 points)."
    )
    # A namespace's drill-down holds all its GPU-time: no allocation line.
    ns = _ask(analyst, "why did ml-team's utilization drop this week?")
    assert not ns.insights[0].startswith("Allocation rate")


def test_which_workloads_lists_workloads(analyst: Analyst) -> None:
    r = _ask(analyst, "utilization of cv-team last week", "which workloads?")
    assert r.data[0]["args"]["levels"] == ["workload"]
    assert all(i.startswith(("workload ", "Only GPU-time")) for i in r.insights[1:])


def test_a_day_is_no_trend(analyst: Analyst) -> None:
    r = _ask(analyst, "utilisation yesterday")
    assert "within a day it follows the daily cycle, so no trend is read" in r.answer
    assert not any(i.startswith("Slope") for i in r.insights)
    week = _ask(analyst, "utilization trend last week")
    assert any(i.startswith("Slope") for i in week.insights)


def test_shifts_net_of_the_weekly_pattern_say_so(analyst: Analyst) -> None:
    r = _ask(analyst, "how's usage been this month")
    shifts = [i for i in r.insights if i.startswith("Shift at")]
    assert shifts
    assert all(i.endswith("(weekly pattern removed).") for i in shifts)


def test_half_buckets_at_the_edges_are_left_out_of_the_fit(demo_store: Store) -> None:
    from gpufleet.analysis.scope import Window
    from gpufleet.analysis.trends import analyze_trends

    # The past 7 days from 12:00: the first and last days are halves.
    result = analyze_trends(demo_store, Window(EVAL_NOW_S - 7 * 86_400.0, EVAL_NOW_S))
    whole = [p for p in result.series.points if not p.partial and p.value is not None]
    assert result.slope is not None
    assert result.slope.n == len(whole) == 6
    assert len(result.series.points) == 8


def test_the_namespace_is_asked_for_and_a_bare_name_keeps_the_window(analyst: Analyst) -> None:
    asked = _ask(analyst, "how busy was the namespace last week")
    assert asked.clarification is not None
    assert (
        asked.clarification["question"] == "Which namespace? Namespaces with GPU usage last week:"
    )
    r = analyst.ask("nlp-team", session_id=asked.session_id)
    assert (r.entities["namespace"], r.entities["time_range"]["label"]) == ("nlp-team", "last week")
    bare = _ask(analyst, "utilization last week", "cv-team")
    assert (bare.entities["namespace"], bare.entities["time_range"]["label"]) == (
        "cv-team",
        "last week",
    )


def test_an_unknown_name_among_compared_ones_is_said_of_the_known(analyst: Analyst) -> None:
    r = _ask(analyst, "cv-team vs nlp-team vs ml-platform utilization this month")
    assert "this answer is about cv-team and nlp-team." in r.answer


def test_which_workloads_without_an_earlier_window_lists_the_biggest(analyst: Analyst) -> None:
    r = _ask(analyst, "utilization of cv-team in October", "which workloads?")
    assert "biggest parts" in r.answer
    listed = [i for i in r.insights if i.startswith("workload ")]
    hours = [float(i.split(" over ")[1].split(" GPU-h")[0].replace(",", "")) for i in listed]
    assert hours == sorted(hours, reverse=True)  # by GPU-time, not by name
    assert "n/a" not in " ".join(r.insights)


def test_a_why_question_whose_premise_is_wrong_is_corrected(analyst: Analyst) -> None:
    down = _ask(analyst, "why did utilization drop yesterday?")
    up = _ask(analyst, "why did utilization rise yesterday?")
    change = next(d for d in down.data if d["tool"] == "drill_down")["result"]["root"]["change"]
    assert change  # the demo's day moved one way
    wrong, right = (down, up) if change > 0 else (up, down)
    assert wrong.answer.startswith(("It did not drop: it rose.", "It did not rise: it fell."))
    assert not right.answer.startswith("It did not")


@pytest.mark.parametrize(
    ("question", "metric", "note"),
    [
        ("How much GPU memory was used last week?", None, "does not answer memory use"),
        ("GPU temperature last week", None, "does not answer temperature"),
        ("GPU hours in November", "gpu_hours", None),
        ("idle fraction over the past 14 days", "idle_fraction", None),
    ],
)
def test_a_metric_with_a_window_is_a_trend(
    analyst: Analyst, question: str, metric: str | None, note: str | None
) -> None:
    r = _ask(analyst, question)
    assert r.intent == "trend"
    assert r.entities.get("metric") == metric
    if note is not None:
        assert note in r.answer


def test_one_number_where_two_are_needed_asks_again(analyst: Analyst) -> None:
    r = _ask(analyst, "compare two users", "3")
    assert r.clarification is not None
    assert r.answer.startswith("Two are needed: e.g. '3 and 1'.")


def test_gpu_hour_totals_of_windows_of_different_lengths_are_not_compared(
    analyst: Analyst,
) -> None:
    r = _ask(analyst, "GPU-hours of ml-team this week vs last week")
    assert "the windows differ in length, so the totals are not compared" in r.answer
    assert not any(i.startswith("Relative change") for i in r.insights)
    assert "averaged" not in r.answer


def test_a_trend_reads_its_slope_and_extremes_from_whole_buckets(analyst: Analyst) -> None:
    r = _ask(analyst, "how busy were gpus in the last 3 days")
    (trend,) = [d["result"] for d in r.data if d["tool"] == "query_gpu_usage_trend"]
    points = trend["series"]["points"]
    whole = [p for p in points if not p["partial"]]
    assert len(points) == 4
    assert len(whole) == 2
    assert trend["slope"]["n"] == 2  # the partial days at the edges are left out
    # Where the scope's history starts inside a day, that day is partial too.
    month = _ask(analyst, "What was the allocation rate last month?")
    (series,) = [d["result"]["series"] for d in month.data if d["tool"] == "query_gpu_usage_trend"]
    first = next(p for p in series["points"] if p["value"] is not None)
    assert first["partial"]
    assert first["start"] > first["start"][:10] + "T00:00:00Z"


def test_a_follow_up_of_one_scope_after_comparing_two_says_which(analyst: Analyst) -> None:
    r = _ask(analyst, "cv-team utilization yesterday", "compare it with nlp-team", "idle cost?")
    assert r.intent == "waste"
    assert r.entities["namespace"] == "cv-team"
    assert "This is about cv-team, the first of the two compared" in r.answer


def test_which_workloads_caused_it_goes_straight_to_workloads(analyst: Analyst) -> None:
    r = _ask(analyst, "Which workloads caused it?")
    assert r.intent == "drilldown"
    (drill,) = [d for d in r.data if d["tool"] == "drill_down"]
    assert drill["args"]["levels"] == ["workload"]
