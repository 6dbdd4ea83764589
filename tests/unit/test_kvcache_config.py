"""LMCache's YAML: validated, written atomically, the previous version kept; vLLM's
``kv_transfer_config``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from tests.unit.kvcache_support import StepClock

from gpufleet.kvcache.actions import NoConfigPathError, configure
from gpufleet.kvcache.config_file import (
    ConfigPathError,
    LmcacheConfigError,
    kv_transfer_config,
    read_config,
    validate_config,
    vllm_command,
    write_config,
)


def test_write_then_rewrite_keeps_the_previous_version(tmp_path: Path) -> None:
    clock = StepClock(1_765_000_000.0)
    path = tmp_path / "conf" / "lmcache.yaml"
    first = write_config(
        path, {"chunk_size": 256, "local_cpu": True, "max_local_cpu_size": 5.0}, clock=clock
    )
    assert first.backup_path is None
    assert first.written
    assert yaml.safe_load(path.read_text()) == {
        "chunk_size": 256,
        "local_cpu": True,
        "max_local_cpu_size": 5.0,
    }
    assert read_config(path) == first.settings
    os.chmod(path, 0o640)
    clock.advance(60)
    second = write_config(
        path,
        {
            "chunk_size": 256,
            "local_cpu": True,
            "max_local_cpu_size": 20.0,
            "local_disk": "file:///var/cache/lmcache/",
            "max_local_disk_size": 100.0,
        },
        clock=clock,
    )
    assert second.backup_path == str(path.with_name("lmcache.yaml.20251206T054740Z.bak"))
    backup = Path(second.backup_path)
    assert yaml.safe_load(backup.read_text())["max_local_cpu_size"] == 5.0
    assert read_config(path)["max_local_disk_size"] == 100.0  # type: ignore[index]
    assert (path.stat().st_mode & 0o777) == 0o640  # the file's mode survives the rewrite
    # A second write in the same second keeps both older versions.
    third = write_config(path, {"chunk_size": 512}, clock=clock)
    assert third.backup_path is not None
    assert third.backup_path != second.backup_path
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "lmcache.yaml",
        "lmcache.yaml.20251206T054740Z-1.bak",
        "lmcache.yaml.20251206T054740Z.bak",
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"chunk_sizee": 256}, "unknown LMCache setting(s) chunk_sizee"),
        ({"chunk_size": 250}, "not a multiple of vLLM's KV block size 16"),
        ({"chunk_size": 0}, "chunk_size must be a positive whole number"),
        ({"chunk_size": "256"}, "chunk_size must be a positive whole number"),
        ({"max_local_cpu_size": -1}, "max_local_cpu_size must be a size in GB, 0 or more"),
        ({"max_local_cpu_size": True}, "max_local_cpu_size must be a size in GB"),
        ({"local_cpu": "yes"}, "local_cpu must be true or false"),
        ({"local_disk": "/var/cache"}, "local_disk must be a file:// URL"),
        ({"local_disk": "file:///var/cache/"}, "local_disk needs max_local_disk_size above 0"),
        ({"max_local_disk_size": 10}, "max_local_disk_size needs local_disk"),
        ({"remote_url": "redis-host"}, "remote_url must look like protocol://host:port"),
        ({"remote_serde": "pickle"}, "remote_serde must be one of naive, cachegen"),
    ],
)
def test_invalid_settings_say_what_to_fix(settings: dict[str, object], message: str) -> None:
    with pytest.raises(LmcacheConfigError) as err:
        validate_config(settings)
    assert message in str(err.value)


def test_block_size_is_configurable() -> None:
    assert validate_config({"chunk_size": 96}, block_size=32) == {"chunk_size": 96}
    with pytest.raises(LmcacheConfigError, match="block size 64"):
        validate_config({"chunk_size": 96}, block_size=64)


def test_unwritable_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigPathError, match="is a directory"):
        write_config(tmp_path, {"chunk_size": 256})
    # A parent that is a file cannot hold the config, whoever runs the test (root too).
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(ConfigPathError, match="cannot write"):
        write_config(blocker / "lmcache.yaml", {"chunk_size": 256})
    assert blocker.read_text() == "x"


def test_nothing_is_written_when_invalid(tmp_path: Path) -> None:
    path = tmp_path / "lmcache.yaml"
    write_config(path, {"chunk_size": 256})
    with pytest.raises(LmcacheConfigError):
        write_config(path, {"chunk_size": 255})
    assert yaml.safe_load(path.read_text()) == {"chunk_size": 256}
    assert [p.name for p in tmp_path.iterdir()] == ["lmcache.yaml"]


def test_configure_merges_over_the_file_and_dry_runs(tmp_path: Path) -> None:
    path = tmp_path / "lmcache.yaml"
    write_config(path, {"chunk_size": 256, "max_local_cpu_size": 5.0})
    dry = configure(str(path), settings={"max_local_cpu_size": 40}, dry_run=True)
    assert not dry.written
    assert dry.settings == {"chunk_size": 256, "max_local_cpu_size": 40}
    assert "max_local_cpu_size: 40" in dry.yaml_text
    assert read_config(path) == {"chunk_size": 256, "max_local_cpu_size": 5.0}
    done = configure(str(path), settings={"max_local_cpu_size": 40})
    assert done.written
    assert read_config(path) == {"chunk_size": 256, "max_local_cpu_size": 40}
    assert done.backup_path is not None
    with pytest.raises(NoConfigPathError):
        configure(None, settings={"chunk_size": 256})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chunk_size: [unclosed\n", "(?s)cannot read.*fix or move the file, nothing was written"),
        ("- 1\n- 2\n", "not a YAML mapping"),
        ("my_key: 3\n", "existing file .* holds unknown LMCache setting.*my_key"),
    ],
)
def test_a_file_that_cannot_be_kept_is_not_replaced(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "lmcache.yaml"
    path.write_text(text)
    with pytest.raises(LmcacheConfigError, match=message):
        configure(str(path), settings={"chunk_size": 256})
    assert path.read_text() == text
    assert [p.name for p in tmp_path.iterdir()] == ["lmcache.yaml"]


def test_nothing_to_change_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "lmcache.yaml"
    configure(str(path), settings={"chunk_size": 256})
    with pytest.raises(LmcacheConfigError, match="settings is empty"):
        configure(str(path), settings={})
    same = configure(str(path), settings={"chunk_size": 256})
    assert (same.written, same.backup_path) == (False, None)
    assert [p.name for p in tmp_path.iterdir()] == ["lmcache.yaml"]


def test_kv_transfer_config_and_command() -> None:
    assert kv_transfer_config() == {"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both"}
    assert kv_transfer_config("mp") == {"kv_connector": "LMCacheMPConnector", "kv_role": "kv_both"}
    with pytest.raises(LmcacheConfigError, match="mode must be one of"):
        kv_transfer_config("remote")
    assert vllm_command("/etc/lmcache.yaml", model="m") == (
        "LMCACHE_CONFIG_FILE=/etc/lmcache.yaml vllm serve m --kv-transfer-config "
        '\'{"kv_connector":"LMCacheConnectorV1","kv_role":"kv_both"}\''
    )
