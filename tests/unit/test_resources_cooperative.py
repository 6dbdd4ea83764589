"""The cooperative strategy: members of one budget are told their share and held to it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.resources_script import ScriptedReader

from gpufleet.resources import (
    CooperativeStrategy,
    MachineBudget,
    ProcessBudget,
    ResourceLimits,
    ResourceManager,
    fair_shares,
)

LIMITS = ResourceLimits(max_gpu_memory_mb=1000)


def _member(budget, usage, **kw):
    got = []
    strategy = CooperativeStrategy(budget, on_share=got.append, **kw)
    reader = ScriptedReader([{"gpu_memory_mb": u} for u in usage])
    return ResourceManager(limits=LIMITS, strategy=strategy, reader=reader), got


def test_fair_shares_keep_small_users_whole_and_split_the_rest():
    assert fair_shares(1000, {"a": (300, 1), "b": (900, 1)}) == {"a": 300, "b": 700}
    assert fair_shares(900, {"a": (100, 1), "b": (900, 1), "c": (900, 1)}) == {
        "a": 100,
        "b": 400,
        "c": 400,
    }
    # Weights: b counts twice.
    assert fair_shares(900, {"a": (900, 1), "b": (900, 2)}) == {"a": 300, "b": 600}
    # Within budget: the spare is split by weight on top of what each uses.
    assert fair_shares(1000, {"a": (100, 1), "b": (300, 1)}) == {"a": 400, "b": 600}


@given(
    st.floats(1, 1e6),
    st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.tuples(st.floats(0, 1e6), st.floats(0.1, 10)),
        min_size=1,
        max_size=6,
    ),
)
def test_fair_shares_add_up_to_the_budget_and_never_undercut_a_light_user(budget, demands):
    shares = fair_shares(budget, demands)
    assert sum(shares.values()) == pytest.approx(budget, rel=1e-9)
    weight = sum(w for _, w in demands.values())
    for member, (usage, w) in demands.items():
        # A member is always granted at least the smaller of its use and its weighted split.
        assert shares[member] >= min(usage, budget * w / weight) * (1 - 1e-9)


def test_two_managers_in_one_process_share_a_gpu_memory_budget():
    budget = ProcessBudget("models")
    small, small_shares = _member(budget, [300, 300, 300], member="small")
    big, big_shares = _member(budget, [600, 900, 900], member="big")
    small.check_once()
    assert big.check_once() == []  # 300 + 600 fits in 1000
    # The 100 MB spare is split evenly on top of what each uses.
    assert big.shares["max_gpu_memory_mb"].share == pytest.approx(650)
    small.check_once()
    reports = big.check_once()  # 300 + 900 > 1000: big is over its share of 700
    assert [(r.kind, r.share, r.threshold, r.value) for r in reports] == [
        ("exceeded", True, 700.0, 900.0)
    ]
    assert "over its share 700.0 MB by 200.0 MB" in reports[0].message
    assert small.check_once() == []  # small stays within its share
    assert small.shares["max_gpu_memory_mb"].total_usage == pytest.approx(1200)
    assert big_shares[0]["max_gpu_memory_mb"].members == 2
    # When small leaves, big has the whole budget again and its excess is over.
    small.close()
    assert budget.members() == ("big",)
    reports = big.check_once()
    assert [r.kind for r in reports] == ["recovered"]
    assert big.shares["max_gpu_memory_mb"].share == pytest.approx(1000)
    assert small_shares  # small was told its share when it changed


def test_cooperative_options_are_checked():
    with pytest.raises(ValueError, match="cannot budget max_temp_celsius"):
        CooperativeStrategy(limits=["max_temp_celsius"])
    with pytest.raises(ValueError, match="weight"):
        CooperativeStrategy(weight=0)
    with pytest.raises(ValueError, match="budget name"):
        MachineBudget("../etc")


def test_a_machine_budget_is_shared_between_processes(tmp_path):
    helper = textwrap.dedent(
        f"""
        import sys, time
        from gpufleet.resources import MachineBudget
        b = MachineBudget("gpu0", directory={str(tmp_path)!r}, stale_s=30)
        b.report("other", 1.0, {{"max_gpu_memory_mb": 800.0}}, {{"max_gpu_memory_mb": 1000.0}})
        print("joined", flush=True)
        sys.stdin.readline()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", helper],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "joined"
        budget = MachineBudget("gpu0", directory=tmp_path, stale_s=30)
        me, _ = _member(budget, [600], member="me")
        reports = me.check_once()
        share = me.shares["max_gpu_memory_mb"]
        assert (share.members, share.total_usage) == (2, 1400)
        assert share.share == pytest.approx(500)
        assert [r.kind for r in reports] == ["exceeded"]
        on_disk = json.loads((tmp_path / "gpu0.json").read_text())
        assert set(on_disk["members"]) == {"other", "me"}
    finally:
        proc.communicate("\n", timeout=30)
    # The other process has ended: it is dropped and the whole budget is ours.
    me.check_once()
    assert me.shares["max_gpu_memory_mb"].members == 1
    assert me.shares["max_gpu_memory_mb"].share == pytest.approx(1000)
    me.close()
    assert budget.members() == ()


def test_a_stale_member_is_dropped(tmp_path):
    now = [1000.0]
    budget = MachineBudget("b", directory=tmp_path, stale_s=5, clock=lambda: now[0])
    budget.report("quiet", 1.0, {"max_memory_mb": 10.0}, {"max_memory_mb": 100.0})
    now[0] += 6
    shares = budget.report("busy", 1.0, {"max_memory_mb": 10.0}, {"max_memory_mb": 100.0})
    assert shares["max_memory_mb"].members == 1
