"""LMCache's YAML configuration: validate, write atomically keeping the previous version, and
the matching vLLM ``--kv-transfer-config``.

LMCache reads the file named by ``LMCACHE_CONFIG_FILE`` (sizes in GB, the disk tier as a
``file://`` URL); vLLM loads LMCache as a KV connector, ``LMCacheConnectorV1`` in process or
``LMCacheMPConnector`` against LMCache's multi-process server, with ``kv_role`` ``kv_both``
(store and load). LMCache splits prompts into ``chunk_size``-token chunks, and vLLM's
connector requires the chunk size to be a multiple of vLLM's KV block size (16 tokens unless
``--block-size`` says otherwise).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

DEFAULT_BLOCK_SIZE = 16
"""vLLM's default KV block size in tokens."""

LMCACHE_DEFAULTS: dict[str, Any] = {
    "chunk_size": 256,
    "local_cpu": True,
    "max_local_cpu_size": 5.0,
    "max_local_disk_size": 0.0,
}
"""LMCache's own defaults for the settings gpufleet reasons about."""

CONNECTORS = {"in_process": "LMCacheConnectorV1", "mp": "LMCacheMPConnector"}
"""vLLM KV connector per LMCache mode."""

_BOOL_KEYS = frozenset(
    {
        "local_cpu",
        "save_decode_cache",
        "use_layerwise",
        "save_unfull_chunk",
        "enable_blending",
        "py_enable_gc",
        "enable_lazy_memory_allocator",
        "enable_p2p",
        "enable_controller",
        "internal_api_server_enabled",
    }
)
_SIZE_GB_KEYS = frozenset({"max_local_cpu_size", "max_local_disk_size", "reserve_local_cpu_size"})
_TEXT_KEYS = frozenset(
    {
        "pre_caching_hash_algorithm",
        "external_lookup_client",
        "lookup_url",
        "distributed_url",
        "controller_url",
        "lmcache_instance_id",
    }
)
_CHOICES: dict[str, tuple[object, ...]] = {
    "remote_serde": ("naive", "cachegen"),
    "cache_policy": ("LRU", "LFU", "FIFO"),
    "numa_mode": ("auto", "manual", None),
}
_OTHER_KEYS = frozenset(
    {"chunk_size", "local_disk", "remote_url", "blocking_timeout_secs", "extra_config"}
)
KNOWN_KEYS: frozenset[str] = frozenset(
    {*_BOOL_KEYS, *_SIZE_GB_KEYS, *_TEXT_KEYS, *_CHOICES, *_OTHER_KEYS}
)
"""LMCache settings ``configure`` accepts (a subset of LMCache's, the ones that size and place
the cache)."""


class LmcacheConfigError(ValueError):
    """A setting is unknown or out of range, or the file cannot be read or written; the
    message says which and what to give instead."""


class ConfigPathError(LmcacheConfigError):
    """The config path cannot be written (a directory, no permission, read-only disk)."""


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _check_value(key: str, value: object, block_size: int) -> str | None:
    """What is wrong with one setting, or None."""
    if key in _BOOL_KEYS:
        return None if isinstance(value, bool) else f"{key} must be true or false"
    if key in _SIZE_GB_KEYS:
        size = _number(value)
        if size is None or not 0 <= size < float("inf"):
            return f"{key} must be a size in GB, 0 or more (got {value!r})"
        return None
    if key in _TEXT_KEYS:
        return None if isinstance(value, str) and value.strip() else f"{key} must be a string"
    if key in _CHOICES:
        allowed = _CHOICES[key]
        shown = ", ".join("null" if a is None else str(a) for a in allowed)
        return None if value in allowed else f"{key} must be one of {shown} (got {value!r})"
    if key == "chunk_size":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            return f"chunk_size must be a positive whole number of tokens (got {value!r})"
        if value % block_size:
            return (
                f"chunk_size {value} is not a multiple of vLLM's KV block size {block_size}: "
                f"use e.g. {max(block_size, value // block_size * block_size)} or 256"
            )
        return None
    if key == "local_disk":
        if value is None:
            return None
        if not isinstance(value, str) or not value.startswith("file://") or value == "file://":
            return (
                'local_disk must be a file:// URL such as "file:///var/cache/lmcache/" '
                f"(got {value!r})"
            )
        return None
    if key == "remote_url":
        if value is None:
            return None
        if not isinstance(value, str) or "://" not in value or value.endswith("://"):
            return (
                'remote_url must look like protocol://host:port, e.g. "lm://cache:65432" '
                f"(got {value!r})"
            )
        return None
    if key == "blocking_timeout_secs":
        number = _number(value)
        return None if number is not None and number > 0 else f"{key} must be a positive number"
    if key == "extra_config":
        return None if isinstance(value, dict) else "extra_config must be a mapping"
    return None


def validate_config(
    config: Mapping[str, Any], *, block_size: int = DEFAULT_BLOCK_SIZE
) -> dict[str, Any]:
    """``config`` checked key by key and as a whole; returns it as a plain dict.

    Raises:
        LmcacheConfigError: every problem found, in one message.
    """
    problems: list[str] = []
    unknown = sorted(set(config) - KNOWN_KEYS)
    if unknown:
        problems.append(
            f"unknown LMCache setting(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(KNOWN_KEYS))}"
        )
    for key in sorted(set(config) & KNOWN_KEYS):
        problem = _check_value(key, config[key], block_size)
        if problem:
            problems.append(problem)
    disk_size = _number(config.get("max_local_disk_size", 0.0)) or 0.0
    if config.get("local_disk") and disk_size <= 0:
        problems.append("local_disk needs max_local_disk_size above 0 (GB)")
    if disk_size > 0 and not config.get("local_disk"):
        problems.append('max_local_disk_size needs local_disk (e.g. "file:///var/cache/lmcache/")')
    if problems:
        raise LmcacheConfigError("; ".join(problems))
    return dict(config)


def read_config(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The LMCache settings in the file at ``path``; None when there is no such file.

    Raises:
        LmcacheConfigError: the file cannot be read or is not a YAML mapping.
    """
    target = Path(path).expanduser()
    if not target.exists():
        return None
    if not target.is_file():
        what = "is a directory" if target.is_dir() else "is not a regular file"
        raise ConfigPathError(f"{target} {what}: give the path of the LMCache YAML file")
    try:
        data = yaml.safe_load(target.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LmcacheConfigError(f"cannot read the LMCache config {target}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise LmcacheConfigError(f"{target} is not a YAML mapping of LMCache settings")
    return {str(k): v for k, v in data.items()}


@dataclass(frozen=True, slots=True)
class WrittenConfig:
    """What :func:`write_config` did."""

    path: str
    backup_path: str | None
    """Where the previous file went (None: there was none)."""
    yaml_text: str
    settings: dict[str, Any]
    written: bool = True
    """False for a dry run: validated and rendered, nothing written."""


def _stamp(now_s: float) -> str:
    return datetime.fromtimestamp(now_s, tz=UTC).strftime("%Y%m%dT%H%M%SZ")


def _backup(target: Path, now_s: float) -> Path:
    stamp = _stamp(now_s)
    backup = target.with_name(f"{target.name}.{stamp}.bak")
    n = 1
    while backup.exists():
        backup = target.with_name(f"{target.name}.{stamp}-{n}.bak")
        n += 1
    shutil.copy2(target, backup)
    return backup


def render_config(config: Mapping[str, Any]) -> str:
    """``config`` as the YAML text :func:`write_config` writes (not validated)."""
    return "# LMCache configuration written by gpufleet (LMCACHE_CONFIG_FILE)\n" + yaml.safe_dump(
        dict(config), sort_keys=True, default_flow_style=False
    )


def write_config(
    path: str | os.PathLike[str],
    settings: Mapping[str, Any],
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    clock: Callable[[], float] = time.time,
) -> WrittenConfig:
    """Validate ``settings`` and write them as LMCache YAML at ``path``.

    The previous file, if any, is kept as ``<name>.<UTC time>.bak`` beside it; the new one is
    written to a temporary file in the same directory and renamed over the old, so a reader
    (or a crash) never sees half a file.

    Raises:
        LmcacheConfigError: a setting is invalid, or the path cannot be written.
    """
    config = validate_config(settings, block_size=block_size)
    text = render_config(config)
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigPathError(
            f"{target} is a directory: give a file such as {target / 'lmcache.yaml'}"
        )
    backup: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            backup = _backup(target, clock())
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if backup is not None:
                shutil.copymode(backup, tmp_name)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigPathError(
            f"cannot write {target}: {exc.strerror or exc} (choose a writable path, e.g. under "
            "your home directory, or fix the directory's permissions)"
        ) from exc
    return WrittenConfig(
        path=str(target),
        backup_path=None if backup is None else str(backup),
        yaml_text=text,
        settings=config,
    )


def kv_transfer_config(mode: str = "in_process") -> dict[str, str]:
    """vLLM's ``--kv-transfer-config`` for LMCache in ``mode`` (``in_process`` or ``mp``).

    Raises:
        LmcacheConfigError: unknown mode.
    """
    if mode not in CONNECTORS:
        raise LmcacheConfigError(f"mode must be one of {', '.join(CONNECTORS)} (got {mode!r})")
    return {"kv_connector": CONNECTORS[mode], "kv_role": "kv_both"}


def vllm_command(path: str, mode: str = "in_process", model: str = "<model>") -> str:
    """The ``vllm serve`` line that loads LMCache with the config at ``path``."""
    transfer = json.dumps(kv_transfer_config(mode), separators=(",", ":"))
    return f"LMCACHE_CONFIG_FILE={path} vllm serve {model} --kv-transfer-config '{transfer}'"
