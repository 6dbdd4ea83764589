"""Shared fixtures. Store fixtures: an SQLite path, a throw-away PostgreSQL schema, and a
``store`` parametrized over both backends.

PostgreSQL comes from ``$GPUFLEET_TEST_PG_URL`` (default: the local server, database
``test``). When it cannot be reached the ``postgres`` parameters are skipped, except under
``CI=true``, where a missing database is a failure rather than a silent gap in coverage.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.analyst_eval import EVAL_NOW_S

from gpufleet.agent.demo import write_demo
from gpufleet.store import Store, open_store

PG_URL = os.environ.get("GPUFLEET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections create and find tables in ``schema``."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """Where a test's SQLite database goes (not created)."""
    return tmp_path / "gpufleet.db"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, uniquely named, empty schema in the test database; dropped afterwards."""
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        message = f"PostgreSQL at {PG_URL} is unreachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    schema = f"gpufleet_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield with_search_path(PG_URL, schema)
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An SQLite path or a PostgreSQL URL (fresh schema), one per backend."""
    if request.param == "sqlite":
        return str(tmp_path / "gpufleet.db")
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    """An empty store with default settings, on each backend."""
    s = open_store(store_target)
    try:
        yield s
    finally:
        s.close()


_REPORT = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def report_lines(request: pytest.FixtureRequest) -> list[str]:
    """Lines a test wants shown in the run's summary (the analyst's accuracy): ``make test``
    prints them even when every test passes and pytest hides their output."""
    return request.config.stash.setdefault(_REPORT, [])


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Print the lines tests put in :func:`report_lines` at the end of the run."""
    lines = config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The demo of step 1 (30 days, 4 nodes x 8 GPUs) ending at the evaluation set's "now",
    shared by the analyst's tests; a sample every 10 minutes keeps the suite fast (the names,
    teams and planted findings do not depend on the interval). Tests add chat sessions to
    it and change nothing else."""
    path = tmp_path_factory.mktemp("eval") / "demo.db"
    store = open_store(path, clock=lambda: EVAL_NOW_S)
    write_demo(store, days=30, nodes=4, gpus=8, seed=0, end_s=EVAL_NOW_S, interval_s=600.0)
    try:
        yield store
    finally:
        store.close()
