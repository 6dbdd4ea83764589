"""What ``/lmcache/optimize`` and ``/lmcache/configure`` (and ``gpufleet kvcache``) do, once,
for the API and the CLI alike: read the current LMCache config, recommend, merge, write."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from gpufleet.kvcache.config_file import (
    DEFAULT_BLOCK_SIZE,
    KNOWN_KEYS,
    ConfigPathError,
    LmcacheConfigError,
    WrittenConfig,
    read_config,
    render_config,
    validate_config,
    write_config,
)
from gpufleet.kvcache.readings import KvCacheSummary
from gpufleet.kvcache.recommend import DEFAULT_DISK_PATH, HostResources, Recommendation, recommend


class NotConfiguredError(ValueError):
    """No vLLM or LMCache URL is configured, so there is nothing to read."""


NOT_CONFIGURED = (
    "no vLLM or LMCache metrics URLs are configured: set kvcache.vllm_urls / "
    "kvcache.lmcache_urls ([kvcache] in the TOML file, or GPUFLEET_KVCACHE__VLLM_URLS="
    "'[\"http://127.0.0.1:8000\"]') and restart the agent"
)


class NoConfigPathError(ValueError):
    """Neither the request nor the settings name the LMCache YAML to write."""


def optimize(
    summary: KvCacheSummary,
    host: HostResources,
    *,
    config_path: str | None,
    block_size: int | None = None,
    disk_path: str | None = None,
    remote_url: str | None = None,
    mode: str | None = None,
) -> Recommendation:
    """The recommendation for ``summary`` over the LMCache config at ``config_path`` (its
    current settings; LMCache's defaults when there is no file).

    Raises:
        NoKvCacheDataError: nothing answered in the window.
        LmcacheConfigError: the current file is unreadable.
    """
    current = read_config(config_path) if config_path else None
    return recommend(
        summary,
        host,
        current,
        block_size=block_size,
        disk_path=disk_path or DEFAULT_DISK_PATH,
        remote_url=remote_url,
        mode=mode or detected_mode(summary),
    )


MP_NAME_SETS = frozenset({"lmcache-mp", "lmcache-mp-early"})


def detected_mode(summary: KvCacheSummary | None) -> str:
    """``mp`` when a source of ``summary`` is LMCache's multi-process server, else
    ``in_process`` (LMCache inside vLLM, or none yet)."""
    if summary is not None and any(MP_NAME_SETS & set(s.name_sets) for s in summary.sources):
        return "mp"
    return "in_process"


def configure(
    path: str | None,
    *,
    settings: Mapping[str, Any] | None = None,
    recommendation: Recommendation | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
) -> WrittenConfig:
    """Write the file's current settings, overlaid by the recommendation's, overlaid by
    ``settings`` (so a partial update keeps the rest); a dry run only validates.

    Raises:
        NoConfigPathError: no path.
        LmcacheConfigError: invalid settings, or the path cannot be written
            (:class:`ConfigPathError`).
    """
    if not path:
        raise NoConfigPathError(
            "no LMCache config path: give one (path / --path) or set kvcache.config_path"
        )
    if settings is None and recommendation is None:
        raise ValueError("give settings to write, or apply the recommendation")
    if recommendation is None and not settings:
        raise LmcacheConfigError("settings is empty: give at least one LMCache setting to change")
    try:
        current = read_config(path)
    except ConfigPathError:
        raise
    except LmcacheConfigError as exc:
        # Replacing a file we cannot read would drop whatever the user keeps in it.
        raise LmcacheConfigError(f"{exc}; fix or move the file, nothing was written") from exc
    stray = sorted(set(current or {}) - KNOWN_KEYS)
    if stray:
        raise LmcacheConfigError(
            f"the existing file {path} holds unknown LMCache setting(s) {', '.join(stray)}: "
            "remove them from it (or move the file), nothing was written"
        )
    merged: dict[str, Any] = dict(current or {})
    if recommendation is not None:
        merged.update(recommendation.settings)
    merged.update(settings or {})
    if dry_run or (current is not None and merged == current):
        # A dry run, or nothing would change: validate and render, write (and back up) nothing.
        config = validate_config(merged, block_size=block_size)
        return WrittenConfig(
            path=path,
            backup_path=None,
            yaml_text=render_config(config),
            settings=config,
            written=False,
        )
    return write_config(path, merged, block_size=block_size, clock=clock)
