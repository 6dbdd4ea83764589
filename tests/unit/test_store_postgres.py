"""PostgreSQL-only behaviour: a server that goes away and comes back, concurrent hubs.

A server that dies is simulated by a small TCP forwarder between the store and the real
server: stopping it drops every connection and refuses new ones, as a dead server would,
without touching the PostgreSQL that other tests share.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from gpufleet.model import GpuSample, Snapshot
from gpufleet.store import Resolution, Store, StoreUnavailable, open_store
from gpufleet.store.schema import LATEST_VERSION

pytestmark = pytest.mark.postgres

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 3600


def snaps(minutes: range, uuid: str = "GPU-a") -> list[Snapshot]:
    return [
        Snapshot(
            ts_s=T0 + m * 60.0,
            cluster="c1",
            node="n1",
            gpus=(GpuSample(uuid=uuid, index=0, util_gpu_pct=float(m)),),
            system=None,
            interval_s=60.0,
        )
        for m in minutes
    ]


class Forwarder:
    """Forwards a local port to PostgreSQL until stopped; can start again on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                return
            with self._lock:
                self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone would not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


@pytest.fixture
def forwarder(pg_url: str) -> Iterator[tuple[Forwarder, str]]:
    """A forwarder to the test server and the store URL that goes through it."""
    parts = urlsplit(pg_url)
    fwd = Forwarder((parts.hostname or "127.0.0.1", parts.port or 5432))
    fwd.start()
    user = f"{parts.username}@" if parts.username else ""
    url = urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{fwd.port}"))
    try:
        yield fwd, url
    finally:
        fwd.stop()


def util_points(store: Store) -> int:
    series = store.gpu_series(
        metric="util_gpu_pct", start_s=T0, end_s=T0 + 86_400, resolution=Resolution.RAW
    )
    return sum(len(s.points) for s in series)


def test_dead_server_is_unavailable_then_recovers(forwarder: tuple[Forwarder, str]) -> None:
    fwd, url = forwarder
    with open_store(url) as store:
        store.write_snapshots(snaps(range(10)))
        fwd.stop()
        with pytest.raises(StoreUnavailable, match="PostgreSQL at postgresql://"):
            store.write_snapshots(snaps(range(10, 20)))
        health = store.health()
        assert (health.writable, health.readable) == (False, False)
        assert "PostgreSQL" in (health.error or "")
        with pytest.raises(StoreUnavailable, match="cannot connect"):
            store.write_snapshots(snaps(range(10, 20)))  # still down: reconnecting fails
        fwd.start()
        store.write_snapshots(snaps(range(10, 20)))  # reconnects by itself
        assert store.health().writable
        assert util_points(store) == 20  # the failed attempts stored nothing


def test_two_hubs_merge_into_the_same_buckets(pg_url: str) -> None:
    with open_store(pg_url) as a, open_store(pg_url) as b:
        errors: list[BaseException] = []

        def write(store: Store, minutes: range) -> None:
            try:
                for m in minutes:
                    store.write_snapshots(snaps(range(m, m + 1)))
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)

        threads = [
            threading.Thread(target=write, args=(a, range(0, 60, 2))),
            threading.Thread(target=write, args=(b, range(1, 60, 2))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        (hour,) = a.gpu_usage(start_s=T0, end_s=T0 + 3600)
        assert hour.seconds == 3600.0
        assert hour.util_sum == sum(m * 60.0 for m in range(60))
        assert util_points(b) == 60


def test_concurrent_first_opens_migrate_once(pg_url: str) -> None:
    stores: list[Store] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            stores.append(open_store(pg_url))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        versions = [s.schema_version() for s in stores]  # type: ignore[attr-defined]
        assert versions == [LATEST_VERSION] * 3
    finally:
        for s in stores:
            s.close()


def test_postgres_scheme_is_an_alias(pg_url: str) -> None:
    with open_store(pg_url.replace("postgresql://", "postgres://", 1)) as store:
        assert store.backend == "postgres"
        assert store.health().writable
