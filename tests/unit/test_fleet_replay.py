"""``gpufleet allocate replay``: a request stream in the shape of the openb trace, placed onto
a node inventory, with the figures the issue names and clear errors for bad CSVs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpufleet.cli.main import app
from gpufleet.fleet.placement import NodeSpec, Request
from gpufleet.fleet.replay import ReplayInputError, read_nodes, read_requests, replay
from gpufleet.fleet.strategies import make_strategy

runner = CliRunner()
KEYS = {
    "placed",
    "failed",
    "allocated_gpu_fraction_at_first_failure",
    "allocated_gpu_fraction_final",
    "fragmentation",
    "decisions_per_s",
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


@pytest.fixture
def trace(tmp_path: Path) -> tuple[Path, Path]:
    # openb's columns: nodes sn,cpu_milli,memory_mib,gpu,model; pods with creation times
    nodes = _write(
        tmp_path / "nodes.csv",
        """
sn,cpu_milli,memory_mib,gpu,model
node-0,64000,262144,2,V100M16
node-1,64000,262144,2,V100M16
node-2,96000,786432,8,A100
""",
    )
    pods = _write(
        tmp_path / "pods.csv",
        """
name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time
pod-3,4000,8192,1,500,,LS,Running,30,40
pod-0,4000,8192,1,1000,,LS,Running,0,
pod-1,4000,8192,1,1000,,LS,Running,10,
pod-2,4000,8192,2,1000,V100M16,LS,Running,20,
pod-4,4000,8192,8,1000,A100,LS,Running,50,
pod-5,4000,8192,0,0,,BE,Running,60,
""",
    )
    return nodes, pods


def test_the_stream_is_placed_in_creation_order_and_measured(trace: tuple[Path, Path]) -> None:
    nodes, pods = trace
    requests = read_requests(pods)
    assert [r.name for r in requests] == ["pod-0", "pod-1", "pod-2", "pod-3", "pod-4", "pod-5"]
    result = replay(read_nodes(nodes), requests, make_strategy("best_fit"))
    # best_fit packs pod-0 and pod-1 on one V100 node, pod-2 takes the other, pod-3 shares
    # an A100, so pod-4 (8 x A100) no longer fits: the first failure.
    assert (result.placed, result.failed) == (5, 1)
    assert result.first_failure == "pod-4"
    assert result.allocated_gpu_fraction_at_first_failure == pytest.approx(4.5 / 12)
    assert result.allocated_gpu_fraction_final == pytest.approx(4.5 / 12)
    assert result.fragmentation == pytest.approx(500 / 7500)
    assert result.failed_by_reason == {"not enough free GPUs": 1}
    assert result.decisions_per_s > 0


def test_departures_give_capacity_back(trace: tuple[Path, Path]) -> None:
    nodes, pods = trace
    result = replay(
        read_nodes(nodes), read_requests(pods), make_strategy("best_fit"), departures=True
    )
    # pod-3 leaves at 40, before pod-4 arrives at 50: everything fits.
    assert (result.placed, result.failed) == (6, 0)
    assert result.allocated_gpu_fraction_at_first_failure is None
    assert result.allocated_gpu_fraction_final == pytest.approx(12 / 12)


def test_the_cli_prints_the_figures_as_json(trace: tuple[Path, Path]) -> None:
    nodes, pods = trace
    out = runner.invoke(
        app, ["allocate", "replay", "--nodes", str(nodes), "--requests", str(pods), "--json"]
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) >= KEYS
    assert data["placed"] == 5
    text = runner.invoke(
        app,
        [
            "allocate",
            "replay",
            "--nodes",
            str(nodes),
            "--requests",
            str(pods),
            "--strategy",
            "least_loaded",
        ],
    )
    assert text.exit_code == 0, text.output
    assert "least_loaded" in text.stdout
    assert "decisions/s" in text.stdout


@pytest.mark.parametrize(
    ("nodes_text", "pods_text", "message"),
    [
        ("name,model\nn,V100", "name,num_gpu,gpu_milli\np,1,1000", "no gpu column"),
        ("name,gpu,model\nn,two,V100", "name,num_gpu,gpu_milli\np,1,1000", "nodes.csv:2: gpu must"),
        ("name,gpu,model\nn,1,V\nn,2,V", "name,num_gpu,gpu_milli\np,1,1000", "listed twice"),
        ("name,gpu,model\nn,1,V", "name,gpus\np,1", "no num_gpu column"),
        ("name,gpu,model\nn,1,V", "name,num_gpu,gpu_milli\np,2,500", "pods.csv:2: request p"),
        ("name,gpu,model\nn,1,V", "name,num_gpu,gpu_milli\np,1,2000", "gpu_milli must be"),
        ("", "name,num_gpu,gpu_milli\np,1,1000", "empty file"),
    ],
)
def test_bad_csvs_are_one_line_errors(
    tmp_path: Path, nodes_text: str, pods_text: str, message: str
) -> None:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text(nodes_text + "\n" if nodes_text else "", encoding="utf-8")
    pods = _write(tmp_path / "pods.csv", pods_text)
    out = runner.invoke(app, ["allocate", "replay", "--nodes", str(nodes), "--requests", str(pods)])
    assert out.exit_code == 2
    assert message in out.output
    assert "Traceback" not in out.output


def test_a_missing_file_and_an_unknown_strategy_are_refused(trace: tuple[Path, Path]) -> None:
    nodes, pods = trace
    missing = runner.invoke(
        app, ["allocate", "replay", "--nodes", "nope.csv", "--requests", str(pods)]
    )
    assert missing.exit_code == 2
    assert "cannot read nope.csv" in missing.output
    bad = runner.invoke(
        app,
        ["allocate", "replay", "--nodes", str(nodes), "--requests", str(pods), "--strategy", "x"],
    )
    assert bad.exit_code == 2
    assert "unknown strategy 'x'" in bad.output


def test_a_request_named_twice_is_refused() -> None:
    with pytest.raises(ReplayInputError, match="appears twice"):
        replay([NodeSpec("n", 4)], [Request("a"), Request("a")], make_strategy("best_fit"))


def test_capacity_split_over_partly_used_gpus_is_named_as_the_reason() -> None:
    stream = [Request(f"f{k}", gpu_milli=600) for k in range(3)] + [Request("whole")]
    result = replay([NodeSpec("n", 3)], stream, make_strategy("best_fit"))
    assert result.first_failure == "whole"
    assert result.failed_by_reason == {"enough capacity free, but split over partly used GPUs": 1}
    assert result.fragmentation == pytest.approx(1.0)
