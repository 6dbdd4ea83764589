"""Endpoint builders of an agent's KV-cache routes (``/lmcache/*``: vLLM and LMCache
monitoring, docs/KVCACHE.md). Each returns a :class:`~gpufleet.client._core.Call`;
:mod:`gpufleet.client._bind` makes it a method of ``client.kvcache``.

Every one but ``status`` needs sources configured on the agent (``[kvcache]`` URLs) and at
least one that answered; otherwise the server answers 409, raised as
:class:`~gpufleet.client.errors.ConflictError` with its detail (what to set).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from gpufleet.client._core import Call, one_of
from gpufleet.client._wire import obj
from gpufleet.client.errors import InvalidArgument
from gpufleet.client.types_kvcache import (
    KvCacheConfigured,
    KvCacheMetrics,
    KvCacheRecommendation,
    KvCacheStatus,
)

MODES: tuple[str, ...] = ("in_process", "mp")
"""How LMCache runs: inside vLLM, or as its multi-process server."""
MAX_WINDOW_S = 30 * 86_400.0
"""The longest window the agent reads (30 days)."""
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def window_arg(window: str) -> str:
    """``window`` as sent, once it reads as the agent reads it: ``30s``, ``15m``, ``1h``,
    ``2d`` or plain seconds, above 0 and at most 30 days.

    Raises:
        InvalidArgument: anything else (the server would answer 422).
    """
    match = _WINDOW.match(window) if isinstance(window, str) else None
    if match is None:
        raise InvalidArgument(f"cannot read window {window!r}: use e.g. 30s, 15m, 1h or 2d")
    seconds = float(match.group(1)) * _UNIT_S[(match.group(2) or "s").lower()]
    if not 0 < seconds <= MAX_WINDOW_S:
        raise InvalidArgument(f"window {window!r} must be above 0 and at most 30d")
    return window


def _block_size(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"block_size must be a positive integer, got {value!r}")
    return value


def _given(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def kvcache_status() -> Call[KvCacheStatus]:
    """The configured vLLM / LMCache sources: reachable or not, last scrape, metric-name
    generations, models (``GET /lmcache/status``). Without sources it answers
    ``configured=False`` and a ``hint`` saying what to set (no error)."""
    return Call("GET", "/lmcache/status", lambda d: KvCacheStatus.from_wire(obj(d)))


def kvcache_metrics(window: str = "15m") -> Call[KvCacheMetrics]:
    """Hit rates from counter deltas, KV usage, preemptions, queues and TTFT p50/p90/p99
    over the last ``window`` (``GET /lmcache/metrics``).

    Args:
        window: how far back: ``30s``, ``15m``, ``1h``, ``2d`` (at most 30 days).

    Raises:
        InvalidArgument: a window the agent cannot read (refused before sending).
        ConflictError: no source is configured on the agent.
    """
    params = {"window": window_arg(window)}
    return Call("GET", "/lmcache/metrics", lambda d: KvCacheMetrics.from_wire(obj(d)), params)


def kvcache_optimize(
    window: str = "15m",
    *,
    block_size: int | None = None,
    remote_url: str | None = None,
    disk_path: str | None = None,
    mode: str | None = None,
) -> Call[KvCacheRecommendation]:
    """LMCache settings for the traffic of the last ``window``, the reasoning, and the GPU
    memory they are expected to save (``POST /lmcache/optimize``). Nothing is written: pass
    the result's ``settings`` to :func:`kvcache_configure`, or configure with
    ``apply_recommendation=True``.

    Args:
        window: how far back to look (``15m``).
        block_size: vLLM's KV block size (default: the agent's ``kvcache.block_size``).
        remote_url: a shared remote tier to propose, ``lm://host:port``.
        disk_path: where a new disk tier goes (default: the agent's ``kvcache.disk_path``).
        mode: ``in_process`` or ``mp`` (default: the agent's ``kvcache.mode``).

    Raises:
        ConflictError: no source configured, or none answered in the window.
        RequestRejected: the agent's current LMCache config is invalid.
    """
    one_of(mode, MODES, "mode")
    body = {"window": window_arg(window)} | _given(
        block_size=_block_size(block_size), remote_url=remote_url, disk_path=disk_path, mode=mode
    )
    return Call(
        "POST", "/lmcache/optimize", lambda d: KvCacheRecommendation.from_wire(obj(d)), body=body
    )


def kvcache_configure(
    settings: Mapping[str, Any] | None = None,
    *,
    apply_recommendation: bool = False,
    window: str = "15m",
    path: str | os.PathLike[str] | None = None,
    mode: str | None = None,
    block_size: int | None = None,
    dry_run: bool = False,
) -> Call[KvCacheConfigured]:
    """Write LMCache's YAML on the agent's machine, the previous file kept as
    ``<name>.<UTC time>.bak``, and say how to start vLLM with it (``POST /lmcache/configure``).
    The file's current settings are overlaid by the recommendation's, then by ``settings``.

    Args:
        settings: LMCache keys to set (``chunk_size``, ``local_cpu``,
            ``max_local_cpu_size`` in GiB, ``local_disk``...).
        apply_recommendation: also write what :func:`kvcache_optimize` recommends for
            ``window`` (needs sources that answered).
        window: the recommendation's window (sent only with ``apply_recommendation``).
        path: the YAML to write, a path on the agent (default: its ``kvcache.config_path``).
        mode: ``in_process`` or ``mp``: which connector the vLLM command names.
        block_size: vLLM's KV block size ``chunk_size`` must be a multiple of.
        dry_run: validate and show, write nothing (``written`` is False).

    Raises:
        InvalidArgument: neither ``settings`` nor ``apply_recommendation``.
        RequestRejected: an unknown setting or a bad value (the detail names it).
        ConflictError: ``apply_recommendation`` without sources that answered.
        ApiError: 400, a path the agent cannot write (or no path configured).
    """
    if settings is None and not apply_recommendation:
        raise InvalidArgument("give settings (LMCache keys) or apply_recommendation=True")
    if settings is not None and not isinstance(settings, Mapping):
        raise InvalidArgument(f"settings must be a mapping of LMCache keys, got {settings!r}")
    one_of(mode, MODES, "mode")
    body: dict[str, Any] = {"apply_recommendation": bool(apply_recommendation)}
    body |= _given(
        settings=None if settings is None else dict(settings),
        window=window_arg(window) if apply_recommendation else None,
        path=None if path is None else os.fspath(path),
        mode=mode,
        block_size=_block_size(block_size),
    )
    body["dry_run"] = bool(dry_run)
    return Call(
        "POST", "/lmcache/configure", lambda d: KvCacheConfigured.from_wire(obj(d)), body=body
    )
