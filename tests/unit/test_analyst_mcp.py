"""``gpufleet mcp``: the analyst's tools to MCP clients, in-process, over stdio and over
streamable HTTP (real subprocesses of the CLI)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from gpufleet.agent.demo import write_demo
from gpufleet.analyst.mcp_server import build_mcp_server
from gpufleet.analyst.tools import TOOL_NAMES
from gpufleet.store import open_store

END = 1_764_072_000.0  # 2025-11-25T12:00:00Z
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mcp") / "demo.db"
    store = open_store(path, clock=lambda: END)
    try:
        write_demo(store, days=8, nodes=1, gpus=8, seed=0, end_s=END, interval_s=900.0)
    finally:
        store.close()
    return path


def _payload(result: Any) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


async def _exercise(client: Client) -> dict[str, Any]:
    tools = await client.list_tools()
    names = [t.name for t in tools.tools]
    namespaces = _payload(
        await client.call_tool("get_available_namespaces", {"time_range_days": 7})
    )
    trend = _payload(
        await client.call_tool(
            "query_gpu_usage_trend",
            {"dimension": "namespace", "dimension_value": "ml-team", "time_range_days": 3},
        )
    )
    bad = await client.call_tool("query_gpu_usage_trend", {"dimension": "galaxy"})
    unknown = await client.call_tool(
        "query_gpu_usage_trend", {"dimension": "namespace", "dimension_value": "no-such-team"}
    )
    answer = _payload(await client.call_tool("ask", {"query": "which namespaces exist?"}))
    stray = await client.call_tool("query_gpu_usage_trend", {"namespace": "ml-team"})
    bogus = await client.call_tool("get_available_clusters", {"bogus": 1})
    return {
        "names": names,
        "schemas": {t.name: t.input_schema for t in tools.tools},
        "stray": stray,
        "bogus": bogus,
        "namespaces": namespaces,
        "trend": trend,
        "bad": bad,
        "unknown": unknown,
        "answer": answer,
    }


def _check(out: dict[str, Any]) -> None:
    assert set(TOOL_NAMES) | {"ask"} == set(out["names"])
    assert "ml-team" in out["namespaces"]["result"]["namespaces"]
    trend = out["trend"]
    assert trend["api"]["path"] == "/analysis/trends"
    assert trend["api"]["params"]["namespace"] == "ml-team"
    assert trend["result"]["series"]["scope"] == {"namespace": "ml-team"}
    assert out["bad"].is_error
    assert "dimension must be" in out["bad"].content[0].text
    assert out["unknown"].is_error
    assert "ml-team" in out["unknown"].content[0].text  # the error lists what exists
    assert out["answer"]["intent"] == "metadata"
    assert "ml-team" in out["answer"]["answer"]
    # An argument a tool does not take is an error naming it, not the whole fleet's answer.
    assert all(s["additionalProperties"] is False for s in out["schemas"].values())
    assert out["stray"].is_error
    stray = out["stray"].content[0].text
    assert "no argument 'namespace'" in stray
    assert "dimension='namespace' and dimension_value='ml-team'" in stray
    assert "its parameters: dimension, granularity, time_range_days" in stray
    assert out["bogus"].is_error
    assert out["bogus"].content[0].text == (
        "get_available_clusters has no argument 'bogus'; its parameters: none"
    )


def test_tools_in_process(db: Path) -> None:
    store = open_store(db, clock=lambda: END)
    try:
        server = build_mcp_server(store, clock=lambda: END + 60)

        async def main() -> dict[str, Any]:
            async with Client(server) as client:
                return await _exercise(client)

        _check(anyio.run(main))
    finally:
        store.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


CLI = [sys.executable, "-c", "from gpufleet.cli.main import main; main()"]


@pytest.mark.slow
def test_tools_over_stdio(db: Path) -> None:
    params = StdioServerParameters(
        command=CLI[0], args=[*CLI[1:], "mcp", "--db", str(db)], env=_env()
    )

    async def main() -> dict[str, Any]:
        async with Client(params) as client:
            return await _exercise(client)

    _check(anyio.run(main))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(db: Path, tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    log = tmp_path / "mcp.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [*CLI, "mcp", "--db", str(db), "--transport", "http", "--port", str(port)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(log.read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
def test_tools_over_streamable_http(http_server: str) -> None:
    async def main() -> dict[str, Any]:
        async with Client(http_server) as client:
            return await _exercise(client)

    _check(anyio.run(main))


def test_a_remote_bind_needs_confirmation(db: Path) -> None:
    done = subprocess.run(
        [*CLI, "mcp", "--db", str(db), "--transport", "http", "--host", "0.0.0.0"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--allow-remote" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
