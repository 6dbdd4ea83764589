"""The allocation engine: what fits where, each strategy's choice, and the ledger."""

from __future__ import annotations

import pytest

from gpufleet.fleet.placement import GPU_MILLI, ClusterState, NodeSpec, PlacementError, Request
from gpufleet.fleet.strategies import STRATEGIES, make_strategy


def _place(state: ClusterState, request: Request, strategy: str = "best_fit") -> str | None:
    candidates = state.candidates(request)
    if not candidates:
        return None
    i = make_strategy(strategy).choose(request, candidates, state)
    return state.place(i, request).node


def test_best_fit_packs_so_a_whole_node_stays_free_for_a_big_request() -> None:
    state = ClusterState([NodeSpec("a", 8), NodeSpec("b", 8)])
    packer = make_strategy("best_fit")
    for k in range(4):
        r = Request(f"one-{k}", num_gpu=1)
        state.place(packer.choose(r, state.candidates(r), state), r)
    assert {p.node for p in state.placements.values()} == {"a"}
    assert _place(state, Request("eight", num_gpu=8)) == "b"


def test_least_loaded_spreads_and_then_a_big_request_fails() -> None:
    state = ClusterState([NodeSpec("a", 8), NodeSpec("b", 8)])
    spreader = make_strategy("least_loaded")
    for k in range(4):
        r = Request(f"one-{k}", num_gpu=1)
        state.place(spreader.choose(r, state.candidates(r), state), r)
    assert sorted(p.node for p in state.placements.values()) == ["a", "a", "b", "b"]
    assert state.candidates(Request("eight", num_gpu=8)) == []


def test_fractions_share_the_tightest_gpu_and_leave_whole_ones_whole() -> None:
    state = ClusterState([NodeSpec("a", 2)])
    first = state.place(0, Request("half", num_gpu=1, gpu_milli=500))
    second = state.place(0, Request("third", num_gpu=1, gpu_milli=300))
    assert first.gpu_indices == second.gpu_indices == (0,)
    assert state.free[0] == [200, GPU_MILLI]
    assert state.full_free[0] == 1
    assert state.allocated_fraction() == pytest.approx(0.4)
    # Free capacity: 200 stranded on GPU 0 and 1000 whole on GPU 1.
    assert state.fragmentation() == pytest.approx(200 / 1200)


def test_release_gives_everything_back_and_is_idempotent() -> None:
    state = ClusterState([NodeSpec("a", 4, cpu_milli=8000, memory_mib=1024)])
    r = Request("job", num_gpu=2, cpu_milli=4000, memory_mib=512)
    state.place(0, r)
    assert state.free_cpu[0] == 4000
    assert state.release("job") is not None
    assert state.release("job") is None
    assert state.free == [[GPU_MILLI] * 4]
    assert (state.free_cpu[0], state.free_mem[0], state.used_milli) == (8000, 1024, 0)


def test_cpu_memory_model_and_zone_are_respected() -> None:
    nodes = [
        NodeSpec("v100", 4, model="V100", cpu_milli=4000, zone="east"),
        NodeSpec("a100", 4, model="A100", cpu_milli=64000, zone="west"),
    ]
    state = ClusterState(nodes)
    assert state.candidates(Request("big-cpu", cpu_milli=8000)) == [1]
    assert state.candidates(Request("v", gpu_spec=("V100", "T4"))) == [0]
    assert state.candidates(Request("z", zone="east", strict_zone=True)) == [0]
    assert _place(state, Request("near", zone="west"), "geographic") == "a100"
    # A zone preference falls back when the zone has no room.
    assert _place(state, Request("full-east", num_gpu=4, zone="east"), "geographic") == "v100"
    assert _place(state, Request("spill", zone="east"), "geographic") == "a100"


def test_round_robin_and_weighted_follow_their_order() -> None:
    state = ClusterState([NodeSpec("a", 8), NodeSpec("b", 8, weight=2.0), NodeSpec("c", 8)])
    rr = make_strategy("round_robin")
    picks = []
    for k in range(4):
        r = Request(f"r{k}", num_gpu=1, gpu_milli=100)
        picks.append(rr.choose(r, state.candidates(r), state))
    assert picks == [0, 1, 2, 0]
    weighted = make_strategy("weighted")
    chosen = [weighted.choose(Request(f"w{k}"), [0, 1, 2], state) for k in range(8)]
    assert chosen.count(1) == 4  # weight 2 of a total of 4
    assert chosen.count(0) == chosen.count(2) == 2


def test_random_is_repeatable_with_its_seed() -> None:
    state = ClusterState([NodeSpec(f"n{i}", 1) for i in range(10)])
    r = Request("x")
    first = [make_strategy("random", seed=7).choose(r, list(range(10)), state) for _ in range(3)]
    assert len(set(first)) == 1
    a, b = make_strategy("random", seed=1), make_strategy("random", seed=1)
    assert [a.choose(r, list(range(10)), state) for _ in range(20)] == [
        b.choose(r, list(range(10)), state) for _ in range(20)
    ]


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_chooses_among_the_candidates(name: str) -> None:
    state = ClusterState([NodeSpec(f"n{i}", 4, zone="z1" if i % 2 else "z0") for i in range(6)])
    strategy = make_strategy(name)
    for k in range(20):
        r = Request(f"r{k}", num_gpu=1, zone="z1")
        candidates = state.candidates(r)
        if not candidates:
            break
        assert strategy.choose(r, candidates, state) in candidates
        state.place(strategy.choose(r, candidates, state), r)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Request("x", num_gpu=2, gpu_milli=500), "must be whole"),
        (lambda: Request("x", gpu_milli=1500), "gpu_milli must be 0..1000"),
        (lambda: Request("x", num_gpu=-1), "num_gpu must be 0 or more"),
        (lambda: NodeSpec("n", -2), "gpus must be 0 or more"),
        (lambda: ClusterState([NodeSpec("n", 1), NodeSpec("n", 2)]), "repeated: n"),
        (lambda: make_strategy("fastest"), "use one of: best_fit"),
    ],
)
def test_bad_input_says_what_to_fix(make: object, message: str) -> None:
    with pytest.raises(PlacementError, match=message):
        make()  # type: ignore[operator]


def test_placing_twice_or_where_it_does_not_fit_is_refused() -> None:
    state = ClusterState([NodeSpec("a", 1)])
    state.place(0, Request("x"))
    with pytest.raises(PlacementError, match="already placed"):
        state.place(0, Request("x"))
    with pytest.raises(PlacementError, match="does not fit"):
        state.place(0, Request("y"))
