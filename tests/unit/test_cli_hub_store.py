"""``gpufleet hub`` subcommands that read the hub's store directly (``--db``): they judge
health with the timeout the serving hub runs with, and never create a store for a mistyped
path."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.unit.store_samples import gpu, snap
from typer.testing import CliRunner

from gpufleet.cli.main import app
from gpufleet.fleet.hub import Hub
from gpufleet.store import open_store

runner = CliRunner()


def _status(db: Path) -> str:
    r = runner.invoke(app, ["hub", "nodes", "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    (node,) = json.loads(r.output)["nodes"]
    return str(node["status"])


def test_hub_nodes_judges_health_as_the_serving_hub_does(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = open_store(db)
    try:
        heard = time.time() - 60
        store.join_node(cluster="c1", node="n1", now_s=heard)  # type: ignore[attr-defined]
        sample = snap(heard, gpu("GPU-a", 10.0), node="n1")
        store.ingest_batch("c1", "n1", "b1", [sample], heard)  # type: ignore[attr-defined]
    finally:
        store.close()
    assert _status(db) == "unreachable"  # 60 s silent: past the default 30 s
    store = open_store(db)
    try:
        # What `gpufleet hub --unreachable-after 120` records when it starts serving.
        Hub(store, unreachable_after_s=120, started_s=time.time() - 90).note_serving()  # type: ignore[arg-type]
    finally:
        store.close()
    assert _status(db) == "healthy"  # 60 s silent, the hub's timeout 120 s
    store = open_store(db)
    try:
        # A hub started just now gives every node its whole timeout, as the serving one does.
        Hub(store, unreachable_after_s=10).note_serving()  # type: ignore[arg-type]
    finally:
        store.close()
    assert _status(db) == "healthy"  # silent since before it started: not blamed yet


def test_a_mistyped_store_is_an_error_not_a_new_hub(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "hub.db"
    for args in (["nodes"], ["token", "list"], ["token", "revoke", "abcd1234"]):
        r = runner.invoke(app, ["hub", *args, "--db", str(missing)])
        assert r.exit_code == 2, (args, r.output)
        assert f"no hub store at {missing}" in r.output
    assert not missing.parent.exists()
    # Creating a token before the hub first starts creates the store, as the README says.
    made = runner.invoke(
        app, ["hub", "token", "create", "--db", str(missing), "--name", "a", "--scope", "read"]
    )
    assert made.exit_code == 0, made.output
    assert missing.exists()


def test_an_empty_file_is_not_turned_into_a_hub_store_by_reading(tmp_path: Path) -> None:
    empty = tmp_path / "hub.db"
    empty.touch()
    for args in (["nodes"], ["token", "list"], ["token", "revoke", "abcd1234"]):
        r = runner.invoke(app, ["hub", *args, "--db", str(empty)])
        assert r.exit_code == 2, (args, r.output)
        assert f"{empty} is an empty file, not a gpufleet hub store" in r.output
        assert empty.stat().st_size == 0
    # Creating a token may start the store in the empty file, as it may create a new one.
    made = runner.invoke(
        app, ["hub", "token", "create", "--db", str(empty), "--name", "a", "--scope", "read"]
    )
    assert made.exit_code == 0, made.output
    assert empty.stat().st_size > 0
    assert runner.invoke(app, ["hub", "token", "list", "--db", str(empty)]).exit_code == 0


def test_a_bad_token_create_makes_no_store(tmp_path: Path) -> None:
    db = tmp_path / "new" / "hub.db"
    for extra in (["--scope", "bogus"], ["--scope", "read", "--ttl-days", "0"]):
        r = runner.invoke(app, ["hub", "token", "create", "--db", str(db), "--name", "a", *extra])
        assert r.exit_code == 2, r.output
    assert (
        "unknown scope(s) bogus"
        in runner.invoke(
            app, ["hub", "token", "create", "--db", str(db), "--name", "a", "--scope", "bogus"]
        ).output
    )
    assert not db.parent.exists()
