"""First-fit decreasing on two dimensions: hand cases and hypothesis properties."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpufleet.analysis.history import HistoryQueryError
from gpufleet.analysis.packing import UTIL_TOLERANCE_PCT, Item, Packing, pack

GIB = 1 << 30


def _names(p: Packing) -> list[list[str]]:
    return [[i.name for i in b.items] for b in p.bins]


def test_packs_by_both_dimensions_with_headroom() -> None:
    # 80 GiB bins with 10 % headroom hold 72 GiB and 90 % utilization.
    items = [
        Item("a", 40 * GIB, 10.0),
        Item("b", 30 * GIB, 10.0),
        Item("c", 10 * GIB, 50.0),
        Item("d", 10 * GIB, 50.0),
    ]
    p = pack(items, 80 * GIB)
    assert p.capacity_mem_bytes == 72 * GIB
    assert p.capacity_util_pct == pytest.approx(90.0)
    # c and d together need 100 %: the utilization cap keeps them apart though memory fits.
    assert _names(p) == [["a", "c"], ["d", "b"]]  # a and c tie at 5/9; more memory first
    assert p.lower_bound == 2
    assert p.unplaced == ()


def test_item_bigger_than_a_bin_is_left_unplaced() -> None:
    p = pack(
        [Item("big", 75 * GIB, 5.0), Item("hot", 1 * GIB, 95.0), Item("ok", GIB, 1.0)], 80 * GIB
    )
    assert [i.name for i in p.unplaced] == ["big", "hot"]
    assert _names(p) == [["ok"]]
    assert p.lower_bound == 1


def test_empty_input_needs_no_bins() -> None:
    p = pack([], 80 * GIB)
    assert (p.bins, p.unplaced, p.lower_bound) == ((), (), 0)


def test_rejects_bad_parameters() -> None:
    one = [Item("a", 1, 1.0)]
    with pytest.raises(HistoryQueryError, match="bin memory must be positive"):
        pack(one, 0)
    with pytest.raises(HistoryQueryError, match="headroom must be in"):
        pack(one, GIB, headroom=1.0)
    with pytest.raises(HistoryQueryError, match="util_cap_pct must be positive"):
        pack(one, GIB, util_cap_pct=0.0)
    with pytest.raises(HistoryQueryError, match="negative or non-finite"):
        pack([Item("neg", -1, 1.0)], GIB)


_items = st.lists(
    st.tuples(st.integers(0, 100 * GIB), st.floats(0.0, 120.0, allow_nan=False)),
    max_size=40,
).map(lambda xs: [Item(f"w{k}", m, u) for k, (m, u) in enumerate(xs)])


def _check_valid(items: list[Item], p: Packing) -> None:
    placed = [i.name for b in p.bins for i in b.items] + [i.name for i in p.unplaced]
    assert Counter(placed) == Counter(i.name for i in items)  # every item exactly once
    for b in p.bins:
        assert b.items
        assert b.mem_bytes <= p.capacity_mem_bytes
        assert b.util_pct <= p.capacity_util_pct + UTIL_TOLERANCE_PCT * len(b.items)
    for it in p.unplaced:
        assert it.mem_bytes > p.capacity_mem_bytes or it.util_pct > p.capacity_util_pct
    assert len(p.bins) >= p.lower_bound


@settings(max_examples=300, deadline=None)
@given(_items, st.integers(1, 100 * GIB), st.floats(0.0, 0.5))
def test_packing_is_always_valid(items: list[Item], bin_mem: int, headroom: float) -> None:
    p = pack(items, bin_mem, headroom=headroom)
    _check_valid(items, p)
    # First fit: the first item of each bin fitted in no earlier bin as that bin ended up.
    for j, later in enumerate(p.bins):
        for earlier in p.bins[:j]:
            assert not p.fits(earlier, later.items[0])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 80 * GIB), max_size=40), st.integers(GIB, 80 * GIB))
def test_one_dimensional_first_fit_bound(mems: list[int], bin_mem: int) -> None:
    items = [Item(f"w{k}", m, 0.0) for k, m in enumerate(mems)]
    p = pack(items, bin_mem, headroom=0.0)
    _check_valid(items, p)
    cap = p.capacity_mem_bytes
    # Any two bins together exceed one bin (else the later one's items would fit earlier),
    # so at most one bin is half full or less: bins < 2 x sum / capacity + 1.
    for j, b in enumerate(p.bins):
        for a in p.bins[:j]:
            assert a.mem_bytes + b.mem_bytes > cap
    placed = sum(b.mem_bytes for b in p.bins)
    assert len(p.bins) <= 2 * placed / cap + 1
