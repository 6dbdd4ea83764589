"""A real HTTP server serving Prometheus exposition text for the KV-cache tests: one body per
path, switchable between scrapes (so counters advance, or drop as after a restart)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kvcache"


def fixture(name: str) -> str:
    """The text of ``tests/fixtures/kvcache/<name>.prom``."""
    return (FIXTURES / f"{name}.prom").read_text()


class MetricsServer:
    """Serves ``set()`` bodies on 127.0.0.1 (port 0: the OS picks one) until closed."""

    def __init__(self) -> None:
        self._bodies: dict[str, tuple[int, str]] = {}
        self._queues: dict[str, list[tuple[int, str]]] = {}
        self._lock = threading.Lock()
        self.hits: dict[str, int] = {}
        self._closed = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    queue = server._queues.get(self.path)
                    if queue and len(queue) > 1:
                        server._bodies[self.path] = queue.pop(0)
                    elif queue:
                        server._bodies[self.path] = queue[0]
                    status, body = server._bodies.get(self.path, (404, "no such path\n"))
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def set(self, path: str, body: str, status: int = 200) -> None:
        """Serve ``body`` at ``path`` from now on."""
        with self._lock:
            self._bodies[path] = (status, body)

    def set_sequence(self, path: str, bodies: list[str]) -> None:
        """Serve ``bodies`` one per request at ``path``, the last one from then on."""
        with self._lock:
            self._queues[path] = [(200, body) for body in bodies]

    def close(self) -> None:
        """Stop serving (idempotent): the port then refuses connections."""
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextmanager
def metrics_server() -> Iterator[MetricsServer]:
    server = MetricsServer()
    try:
        yield server
    finally:
        server.close()


class StepClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_765_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
