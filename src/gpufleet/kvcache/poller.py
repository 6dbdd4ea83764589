"""Scrape the configured vLLM and LMCache servers on an interval, into the store.

The agent runs one :class:`KvCacheMonitor`: a thread scrapes every source each
``interval_s``, appends the scrapes to the store (when it keeps KV-cache scrapes) and to an
in-memory hour, and deletes scrapes older than the store's raw retention once an hour. The
API and ``gpufleet kvcache`` read windows of scrapes back through :meth:`scrapes` and
:meth:`summary`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import httpx

from gpufleet.kvcache.exposition import metrics_url, scrape
from gpufleet.kvcache.readings import KvCacheSummary, summarize
from gpufleet.settings import KvCacheSettings
from gpufleet.store.base import StoreError
from gpufleet.store.kvcache_records import KIND_LMCACHE, KIND_VLLM, KvCacheRecords, KvCacheScrape

log = logging.getLogger(__name__)

MEMORY_S = 3600.0
"""Scrapes kept in memory (what a store-less agent can answer windows from)."""
RETENTION_EVERY_S = 3600.0


class KvCacheMonitor:
    """Scrapes ``vllm_urls`` and ``lmcache_urls``; keeps the scrapes; summarizes windows.

    Args:
        vllm_urls: vLLM servers (``http://host:8000`` or its ``/metrics`` URL).
        lmcache_urls: LMCache servers (the multi-process server's ``/metrics``).
        store: where scrapes are kept (None: memory only).
        interval_s: seconds between scrapes of the thread.
        timeout_s: per HTTP request.
        transport: httpx transport (tests inject one; default: the network).
        clock: epoch seconds.
        retention_s: scrapes older than this are deleted from the store.

    Raises:
        ValueError: a URL is not http(s).
    """

    def __init__(
        self,
        vllm_urls: Sequence[str] = (),
        lmcache_urls: Sequence[str] = (),
        *,
        store: object | None = None,
        interval_s: float = 15.0,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        retention_s: float | None = None,
    ) -> None:
        self.sources: tuple[tuple[str, str], ...] = tuple(
            dict.fromkeys(
                [(metrics_url(u), KIND_VLLM) for u in vllm_urls]
                + [(metrics_url(u), KIND_LMCACHE) for u in lmcache_urls]
            )
        )
        self.store = store if isinstance(store, KvCacheRecords) else None
        self.interval_s = interval_s
        self.retention_s = retention_s
        self._clock = clock
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._memory: deque[KvCacheScrape] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_retention_s = 0.0
        self.store_error: str | None = None
        """Why the last write to the store failed (None: it worked)."""

    @property
    def configured(self) -> bool:
        """Whether any source is configured."""
        return bool(self.sources)

    # ---- scraping ----------------------------------------------------------------------

    def scrape_once(self) -> list[KvCacheScrape]:
        """Scrape every source now; keep and return the scrapes."""
        scrapes = [scrape(url, kind, self._client, clock=self._clock) for url, kind in self.sources]
        now = self._clock()
        with self._lock:
            self._memory.extend(scrapes)
            while self._memory and self._memory[0].ts_s < now - MEMORY_S:
                self._memory.popleft()
        if self.store is not None:
            try:
                self.store.save_kvcache_scrapes(scrapes)
                self.store_error = None
            except StoreError as exc:
                self.store_error = str(exc)
                log.warning("KV-cache scrapes not stored: %s", exc)
            self._retention(now)
        return scrapes

    def _retention(self, now: float) -> None:
        if self.store is None or self.retention_s is None:
            return
        if now - self._last_retention_s < RETENTION_EVERY_S:
            return
        self._last_retention_s = now
        try:
            self.store.delete_kvcache_scrapes_before(now - self.retention_s)
        except StoreError as exc:
            log.warning("old KV-cache scrapes not deleted: %s", exc)

    # ---- reading -----------------------------------------------------------------------

    def scrapes(self, start_s: float, end_s: float) -> list[KvCacheScrape]:
        """Scrapes in ``[start_s, end_s)``, oldest first: from the store when it keeps them,
        else from memory (the last hour)."""
        if self.store is not None:
            try:
                return self.store.kvcache_scrapes(start_s=start_s, end_s=end_s)
            except StoreError as exc:
                log.warning("reading KV-cache scrapes from memory: %s", exc)
        with self._lock:
            return [s for s in self._memory if start_s <= s.ts_s < end_s]

    def latest(self) -> list[KvCacheScrape]:
        """Each source's newest scrape."""
        newest: dict[str, KvCacheScrape] = {}
        with self._lock:
            for s in self._memory:
                newest[s.source] = s
        if self.store is not None and len(newest) < len(self.sources):
            try:
                for s in self.store.latest_kvcache_scrapes():
                    newest.setdefault(s.source, s)
            except StoreError as exc:
                log.warning("newest KV-cache scrapes from memory only: %s", exc)
        return list(newest.values())

    def summary(self, window_s: float, *, now_s: float | None = None) -> KvCacheSummary:
        """The summary of the last ``window_s`` seconds."""
        end = self._clock() if now_s is None else now_s
        start = end - window_s
        # A hair past "now": a scrape taken this instant is inside the window.
        return summarize(
            self.scrapes(start, end + 1e-3),
            start_s=start,
            end_s=end,
            configured=self.sources,
            latest=self.latest(),
        )

    # ---- thread ------------------------------------------------------------------------

    def start(self) -> None:
        """Scrape in a background thread every ``interval_s`` (idempotent)."""
        if self._thread is not None or not self.sources:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gpufleet-kvcache", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.scrape_once()
            except Exception:  # a bug here must not end the thread silently
                log.exception("KV-cache scrape failed")
            self._stop.wait(max(self.interval_s - (time.monotonic() - started), 0.0))

    def stop(self) -> None:
        """Stop the thread and close the HTTP client (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        self._client.close()


def monitor_for(
    settings: KvCacheSettings, store: object | None, *, retention_s: float | None = None
) -> KvCacheMonitor | None:
    """The agent's monitor for ``settings`` (None when no URL is configured)."""
    if not settings.vllm_urls and not settings.lmcache_urls:
        return None
    return KvCacheMonitor(
        settings.vllm_urls,
        settings.lmcache_urls,
        store=store,
        interval_s=settings.interval_s,
        timeout_s=settings.timeout_s,
        retention_s=retention_s,
    )
