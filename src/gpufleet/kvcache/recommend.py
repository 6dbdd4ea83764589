"""Recommend LMCache settings from what the scrapes showed and what the host has free.

The rules, in order (the first that applies sets the verdict):

1. **caching_wont_help** — over enough traffic, fewer than 5 % of the queried prompt tokens
   were found in any cache (vLLM's prefix cache, LMCache): requests share few prefixes, so a
   bigger cache cannot raise the hit rate. An idle, oversized CPU tier is shrunk.
2. **grow_cpu_tier / add_disk_tier** — LMCache evicted from its CPU tier: the reusable KV
   does not fit. The tier grows into at most half of the host's available memory; what does
   not fit there goes to a local disk tier (at most half the free disk).
3. **enable_offload** — vLLM's GPU KV cache is nearly full (≥ 90 %), requests were
   preempted, or requests queue while it is over 80 %, and LMCache is not in use: offload KV
   to a CPU tier so preempted and repeated prefixes are reloaded instead of recomputed.
4. **keep** — nothing above: the settings fit the traffic.

**Memory saved** is GPU memory: the KV cache the LMCache tiers hold that would otherwise have
to stay on the GPU (or be recomputed) — what they hold now plus what the recommended growth
is expected to fill. The working set beyond the CPU tier is estimated from the evicted share
of what was written (``writes / (writes - evictions)`` times the usage; twice the usage
when writes are not reported). LMCache's sizes are GiB (``max_local_cpu_size: 5`` is
5 × 2³⁰ bytes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gpufleet.kvcache.config_file import DEFAULT_BLOCK_SIZE, LMCACHE_DEFAULTS, kv_transfer_config
from gpufleet.kvcache.readings import KvCacheSummary
from gpufleet.kvcache.recommend_types import (
    DEFAULT_DISK_PATH,
    GIB,
    HostResources,
    NoKvCacheDataError,
    Recommendation,
    SettingChange,
)
from gpufleet.store.kvcache_records import KIND_VLLM

MIN_QUERIED_TOKENS = 10_000.0
"""Fewer queried tokens than this in the window: too little traffic to judge hit rates."""
LOW_HIT_RATE_PCT = 5.0
HIGH_KV_USAGE_PCT = 90.0
QUEUE_KV_USAGE_PCT = 80.0
HOST_SHARE = 0.5
"""Most of the host's available memory (and free disk) a recommendation may take."""
MIN_STEP_BYTES = 1 * GIB
"""Growth smaller than this is not worth a change."""


def _gib(value: Any) -> float:
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        return 0.0


def _round_gib(n_bytes: float) -> float:
    """Bytes as GiB rounded up to a tenth (sizes are written in GiB)."""
    # The epsilon keeps float noise (5.0000001) from rounding a whole tenth up.
    return math.ceil(n_bytes / GIB * 10 - 1e-6) / 10


def _fmt_gib(n_bytes: float | None) -> str:
    return "unknown" if n_bytes is None else f"{n_bytes / GIB:.1f} GiB"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} %"


class _Plan:
    def __init__(self, current: Mapping[str, Any]) -> None:
        self.settings = dict(current)
        self.changes: list[SettingChange] = []
        self.reasoning: list[str] = []

    def set(self, key: str, value: Any, reason: str) -> None:
        old = self.settings.get(key)
        if old != value:
            self.changes.append(SettingChange(key, old, value, reason))
            self.settings[key] = value


def recommend(
    summary: KvCacheSummary,
    host: HostResources,
    current: Mapping[str, Any] | None = None,
    *,
    block_size: int | None = None,
    disk_path: str = DEFAULT_DISK_PATH,
    remote_url: str | None = None,
    mode: str = "in_process",
) -> Recommendation:
    """LMCache settings for ``summary``'s traffic on a host with ``host`` free.

    Args:
        summary: the window's readings.
        host: free memory and disk of the host running vLLM / LMCache.
        current: the LMCache config in use (its file); None when there is none.
        block_size: vLLM's KV block size (else what vLLM reports, else 16).
        disk_path: where a new disk tier goes.
        remote_url: a shared remote tier to use when several vLLM instances are seen.
        mode: ``in_process`` or ``mp`` (which vLLM connector).

    Raises:
        NoKvCacheDataError: no source answered in the window.
    """
    if summary.basis == "none":
        raise NoKvCacheDataError(
            "no vLLM or LMCache source answered in the window: check the URLs "
            "(gpufleet kvcache status) or widen the window"
        )
    blocks = block_size or summary.block_size or DEFAULT_BLOCK_SIZE
    cur = {**LMCACHE_DEFAULTS, **(current or {})}
    plan = _Plan(cur)
    s = summary
    vllm_rate = s.prefix_hit_rate_pct
    lmc_rate = next(
        (
            r
            for r in (
                s.lmcache_hit_rate_pct,
                s.lmcache_lookup_hit_rate_pct,
                s.external_hit_rate_pct,
            )
            if r is not None
        ),
        None,
    )
    queried = max(
        (
            v
            for v in (
                s.prefix_queries_tokens,
                s.lmcache_requested_tokens,
                s.lmcache_lookup_tokens,
                s.external_queries_tokens,
            )
            if v is not None
        ),
        default=0.0,
    )
    usage_pct = s.kv_usage_max_pct
    pressure = (
        (usage_pct is not None and usage_pct >= HIGH_KV_USAGE_PCT)
        or (s.preemptions or 0.0) > 0
        or ((s.requests_waiting or 0.0) > 0 and (usage_pct or 0.0) >= QUEUE_KV_USAGE_PCT)
    )
    evictions = s.lmcache_evictions or 0.0
    lmcache_on = s.lmcache_seen or current is not None
    cpu_gib = _gib(cur.get("max_local_cpu_size"))
    cpu_used = s.lmcache_cpu_usage_bytes
    offloaded = _offloaded(s)
    avail = host.mem_available_bytes
    room = 0.0 if avail is None else HOST_SHARE * avail
    rates = [r for r in (vllm_rate, lmc_rate) if r is not None]
    where = "over the window" if s.basis == "window" else "since the servers started"
    plan.reasoning.append(
        f"{queried:,.0f} prompt tokens queried {where}; hit rate: vLLM prefix cache "
        f"{_pct(vllm_rate)}, LMCache {_pct(lmc_rate)}; GPU KV usage {_pct(usage_pct)} "
        f"(max over engines), {s.preemptions or 0:.0f} preemptions, "
        f"{s.requests_waiting or 0:.0f} waiting; LMCache CPU tier {_fmt_gib(cpu_used)} used "
        f"of {cpu_gib:g} GiB, {evictions:.0f} evictions; host {_fmt_gib(avail)} memory "
        f"available, {_fmt_gib(host.disk_free_bytes)} disk free"
    )
    saved: float | None = offloaded
    basis = "KV held in LMCache's CPU and disk tiers now"
    freed: float | None = None
    added = 0.0
    if queried >= MIN_QUERIED_TOKENS and rates and max(rates) < LOW_HIT_RATE_PCT:
        verdict = "caching_wont_help"
        headline = (
            f"Caching won't help: only {max(rates):.1f} % of prompt tokens were found in a "
            "cache, so requests share few prefixes."
        )
        plan.reasoning.append(
            "A larger cache raises the hit rate only when prompts repeat; these do not, so no "
            "tier should grow."
        )
        if pressure:
            plan.reasoning.append(
                "GPU KV pressure here comes from concurrency, not reuse: lower vLLM's "
                "--max-num-seqs or add GPUs; offloading only helps reused prefixes."
            )
        if lmcache_on and cpu_used is not None and evictions == 0:
            target = max(1.0, _round_gib(2 * cpu_used))
            if target + 1 <= cpu_gib:
                plan.set(
                    "max_local_cpu_size",
                    target,
                    f"{_fmt_gib(cpu_used)} of {cpu_gib:g} GiB used and nothing evicted: "
                    f"{target:g} GiB (twice the use) is enough",
                )
                freed = (cpu_gib - target) * GIB
        saved, basis = 0.0, "nothing is reused, so no KV is kept off the GPU by caching"
    elif evictions > 0 and lmcache_on:
        used = cpu_used if cpu_used is not None else cpu_gib * GIB
        writes = s.lmcache_cpu_writes
        if writes is not None and writes > evictions:
            working_set = used * writes / (writes - evictions)
            how = f"{evictions:.0f} of {writes:.0f} writes were evicted"
        else:
            working_set = 2 * used
            how = f"{evictions:.0f} evictions (writes not reported: assumed twice the tier)"
        # The tier holds what LMCache reports using, or the configured size if that is more
        # (a config written for a restart not yet done reads smaller than the use).
        tier = max(cpu_gib * GIB, used)
        need = max(working_set - tier, 0.0)
        if avail is None:
            # No host sample (yet): propose what is missing and say what it takes.
            room = working_set - used
            plan.reasoning.append(
                f"The host's free memory is unknown: check that {_fmt_gib(need)} more are free."
            )
        # Memory not yet taken by the tier must come from what the host has available now.
        new_bytes = min(working_set, used + room)
        grow = max(new_bytes - tier, 0.0)
        plan.reasoning.append(
            f"The CPU tier is full ({how}): the reusable KV is about {_fmt_gib(working_set)}, "
            f"{_fmt_gib(need)} more than the tier holds."
        )
        if used < 0.9 * cpu_gib * GIB:
            plan.reasoning.append(
                f"LMCache reports {_fmt_gib(used)} used of a {cpu_gib:g} GiB tier while "
                "evicting: the server may run with a smaller size than this config says "
                "(restart it to apply the config)."
            )
        verdict = "grow_cpu_tier"
        headline = "LMCache evicts from a full CPU tier: give it more memory."
        saved = offloaded or used
        if grow >= MIN_STEP_BYTES:
            new_size = _round_gib(tier + grow)
            plan.set(
                "max_local_cpu_size",
                new_size,
                f"the reusable KV, {_fmt_gib(working_set)}, as far as half of the "
                f"{_fmt_gib(avail)} available allows",
            )
            plan.set("local_cpu", True, "the CPU tier holds the offloaded KV")
            added = max(0.0, new_size * GIB - used)
            saved += min(grow, need)
        rest = max(0.0, working_set - tier - (grow if grow >= MIN_STEP_BYTES else 0.0))
        disk_room = 0.0 if host.disk_free_bytes is None else HOST_SHARE * host.disk_free_bytes
        if rest >= MIN_STEP_BYTES and disk_room >= MIN_STEP_BYTES:
            disk_bytes = min(1.5 * rest, disk_room)
            disk_gib = _round_gib(max(disk_bytes, _gib(cur.get("max_local_disk_size")) * GIB))
            plan.set(
                "local_disk",
                cur.get("local_disk") or f"file://{disk_path}",
                "what the host's memory cannot hold goes to a local disk tier",
            )
            plan.set(
                "max_local_disk_size",
                disk_gib,
                f"{_fmt_gib(rest)} does not fit in memory; half of the free disk at most",
            )
            verdict = "add_disk_tier" if grow < MIN_STEP_BYTES else "grow_cpu_and_add_disk_tier"
            headline = "LMCache evicts from a full CPU tier: add a local disk tier."
            saved += min(rest, disk_bytes)
        elif rest >= MIN_STEP_BYTES:
            verdict = "tier_full_no_room"
            headline = "LMCache evicts, and the host has no memory or disk to spare."
            plan.reasoning.append(
                "Neither memory nor disk has room: a shared remote tier (remote_url) or "
                "fewer models per host would keep more KV."
            )
        basis = "KV held in LMCache's tiers now plus what the added capacity will hold"
    elif pressure and not lmcache_on:
        verdict = "enable_offload"
        headline = "vLLM's GPU KV cache is under pressure: offload KV to LMCache's CPU tier."
        size = 5.0 if avail is None else max(1.0, min(_round_gib(avail / 4), room / GIB))
        plan.set("local_cpu", True, "offload KV to host memory")
        plan.set(
            "max_local_cpu_size",
            round(size, 1),
            "a quarter of the available host memory"
            if avail is not None
            else "LMCache's default (host memory unknown)",
        )
        plan.set("chunk_size", _valid_chunk(cur.get("chunk_size"), blocks), "LMCache's default")
        added = size * GIB
        saved = size * GIB
        basis = (
            "upper bound: the new CPU tier's size, reached once preempted and repeated "
            "prefixes fill it"
        )
    else:
        verdict = "keep"
        headline = "The settings fit the traffic."
        if pressure:
            plan.reasoning.append(
                "GPU KV usage is high although LMCache has room: the running requests "
                "themselves fill the GPU; lower --max-num-seqs or add GPUs."
            )
        if queried < MIN_QUERIED_TOKENS:
            verdict = "insufficient_data"
            headline = f"Too little traffic to judge ({queried:,.0f} tokens queried)."
    if lmcache_on and verdict != "caching_wont_help":
        _tune_chunk(
            plan, vllm_rate, s.lmcache_lookup_hit_rate_pct or s.lmcache_hit_rate_pct, blocks
        )
    _remote(plan, summary, remote_url)
    if (
        cur.get("chunk_size") is not None
        and _valid_chunk(cur["chunk_size"], blocks) != cur["chunk_size"]
    ):
        plan.set(
            "chunk_size",
            _valid_chunk(cur["chunk_size"], blocks),
            f"must be a multiple of vLLM's block size {blocks}",
        )
    return Recommendation(
        verdict=verdict,
        summary=headline,
        settings=plan.settings,
        changes=tuple(plan.changes),
        reasoning=tuple(plan.reasoning),
        memory_saved_bytes=saved,
        memory_saved_basis=basis,
        host_memory_freed_bytes=freed,
        host_memory_added_bytes=added,
        kv_transfer_config=kv_transfer_config(mode),
        mode=mode,
        observed={
            "queried_tokens": queried,
            "prefix_hit_rate_pct": vllm_rate,
            "lmcache_hit_rate_pct": lmc_rate,
            "kv_usage_max_pct": usage_pct,
            "preemptions": s.preemptions,
            "lmcache_evictions": s.lmcache_evictions,
            "lmcache_cpu_usage_bytes": cpu_used,
            "host_mem_available_bytes": None if avail is None else float(avail),
            "host_disk_free_bytes": None
            if host.disk_free_bytes is None
            else float(host.disk_free_bytes),
        },
    )


def _offloaded(s: KvCacheSummary) -> float | None:
    parts = [v for v in (s.lmcache_cpu_usage_bytes, s.lmcache_disk_usage_bytes) if v is not None]
    return sum(parts) if parts else None


def _valid_chunk(value: Any, block_size: int) -> int:
    """``value`` as a positive multiple of ``block_size`` (256 when unusable)."""
    tokens = value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 256
    return max(block_size, round(tokens / block_size) * block_size)


def _tune_chunk(plan: _Plan, vllm_rate: float | None, lmc_rate: float | None, blocks: int) -> None:
    """Halve the chunk when vLLM finds far more prefixes than LMCache: LMCache matches whole
    chunks, so shared prefixes shorter than a chunk are hit only by vLLM's small blocks."""
    chunk = plan.settings.get("chunk_size")
    if vllm_rate is None or lmc_rate is None or not isinstance(chunk, int):
        return
    if vllm_rate >= 20.0 and lmc_rate < vllm_rate / 2 and chunk >= 2 * max(64, blocks):
        smaller = _valid_chunk(chunk // 2, blocks)
        plan.set(
            "chunk_size",
            smaller,
            f"vLLM finds {vllm_rate:.0f} % of tokens cached but LMCache only {lmc_rate:.0f} %: "
            f"shared prefixes are shorter than {chunk}-token chunks",
        )


def _remote(plan: _Plan, summary: KvCacheSummary, remote_url: str | None) -> None:
    instances = sum(1 for src in summary.sources if src.kind == KIND_VLLM and src.reachable)
    if instances < 2:
        return
    if remote_url:
        plan.set("remote_url", remote_url, f"{instances} vLLM instances can share one remote tier")
        plan.set("remote_serde", plan.settings.get("remote_serde") or "naive", "LMCache's default")
    elif not plan.settings.get("remote_url"):
        plan.reasoning.append(
            f"{instances} vLLM instances each keep their own cache: a shared remote tier "
            "(remote_url: lm://host:port) lets each reuse the others' prefixes."
        )


__all__ = [
    "DEFAULT_DISK_PATH",
    "GIB",
    "HostResources",
    "NoKvCacheDataError",
    "Recommendation",
    "SettingChange",
    "recommend",
]
