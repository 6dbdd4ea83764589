"""Where ``gpufleet kvcache`` reads from: a running agent (``--url``), an agent's stored
scrapes (``--db``), or the servers live (two scrapes ``--over`` apart)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from gpufleet.cli.common import console, fail, get_json, guarded, send_json


def kv_settings(config: Path | None) -> Any:
    from gpufleet.cli.common import settings_from

    return settings_from(config)


def live_summary(
    vllm: list[str] | None, lmcache: list[str] | None, over: str, config: Path | None
) -> Any:
    from gpufleet.kvcache.actions import NOT_CONFIGURED
    from gpufleet.kvcache.poller import KvCacheMonitor
    from gpufleet.kvcache.readings import parse_duration_s

    kv = kv_settings(config).kvcache
    vllm_urls = (vllm or []) if vllm or lmcache else kv.vllm_urls
    lmcache_urls = (lmcache or []) if vllm or lmcache else kv.lmcache_urls
    if not vllm_urls and not lmcache_urls:
        fail(f"give --vllm-url / --lmcache-url, --db or --url; {NOT_CONFIGURED}")
    over_s = 0.0 if over.strip() in ("0", "0s") else guarded(lambda: parse_duration_s(over))
    monitor = guarded(
        lambda: KvCacheMonitor(vllm_urls, lmcache_urls, timeout_s=kv.timeout_s), "bad URL"
    )
    try:
        monitor.scrape_once()
        if over_s > 0:
            with console.status(f"second scrape in {over_s:g} s (rates come from the deltas)"):
                time.sleep(over_s)
            monitor.scrape_once()
        return monitor.summary(over_s + 60.0)
    finally:
        monitor.stop()


def db_summary(db: str, window: str, config: Path | None) -> Any:
    from gpufleet.cli.common import open_for_reading
    from gpufleet.kvcache.readings import parse_duration_s, summarize
    from gpufleet.store.kvcache_records import KvCacheRecords

    window_s = guarded(lambda: parse_duration_s(window))
    store = open_for_reading(db, config)
    try:
        if not isinstance(store, KvCacheRecords):
            fail(f"the {store.backend} store keeps no KV-cache scrapes")
        now = time.time()
        scrapes = guarded(lambda: store.kvcache_scrapes(start_s=now - window_s, end_s=now + 1))
        latest = guarded(store.latest_kvcache_scrapes)
    finally:
        store.close()
    if not latest:
        fail(
            f"no KV-cache scrapes in {db}: start an agent with [kvcache] vllm_urls / "
            "lmcache_urls writing to it, or read the servers live with --vllm-url"
        )
    configured = [(s.source, s.kind) for s in latest]
    return summarize(
        scrapes, start_s=now - window_s, end_s=now, configured=configured, latest=latest
    )


def metrics_data(
    url: str | None,
    db: str | None,
    vllm: list[str] | None,
    lmcache: list[str] | None,
    over: str,
    window: str,
    config: Path | None,
) -> dict[str, Any]:
    from gpufleet.api.schemas.lmcache import LmcacheMetrics

    if sum(x is not None and x != [] for x in (url, db, vllm or lmcache or None)) > 1:
        fail("give one of --url, --db or --vllm-url/--lmcache-url")
    if url:
        data: dict[str, Any] = get_json(url, "/lmcache/metrics", {"window": window})
        return data
    if db:
        return LmcacheMetrics.of(db_summary(db, window, config), window).model_dump()
    return LmcacheMetrics.of(live_summary(vllm, lmcache, over, config), over).model_dump()


def host_resources(disk_path: str) -> Any:
    from gpufleet.collectors.system import PsutilSystemSource
    from gpufleet.kvcache.recommend import HostResources

    return HostResources.from_system(PsutilSystemSource().sample(time.time()), disk_path)


def recommend_data(
    url: str | None,
    db: str | None,
    vllm: list[str] | None,
    lmcache: list[str] | None,
    over: str,
    window: str,
    config: Path | None,
    config_path: str | None,
    block_size: int | None,
    remote_url: str | None,
    mode: str | None,
) -> dict[str, Any]:
    from gpufleet.api.schemas.lmcache import LmcacheRecommendation
    from gpufleet.kvcache.actions import optimize
    from gpufleet.kvcache.config_file import vllm_command

    if url:
        body = {"window": window, "block_size": block_size, "remote_url": remote_url, "mode": mode}
        data: dict[str, Any] = send_json("POST", url, "/lmcache/optimize", body)
        return data
    summary = db_summary(db, window, config) if db else live_summary(vllm, lmcache, over, config)
    kv = kv_settings(config).kvcache
    path = config_path or kv.config_path
    rec = guarded(
        lambda: optimize(
            summary,
            host_resources(kv.disk_path),
            config_path=path,
            block_size=block_size or kv.block_size,
            disk_path=kv.disk_path,
            remote_url=remote_url,
            mode=mode or kv.mode,
        )
    )
    return LmcacheRecommendation.of(
        rec,
        window=window if db else over,
        config_path=path,
        vllm_command=vllm_command(path or "lmcache.yaml", rec.mode),
    ).model_dump()
