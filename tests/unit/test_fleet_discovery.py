"""Finding agents: mDNS records, UDP announcements and static peers reach the registry;
malformed announcements are ignored; discovery lists agents, it never joins them."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from gpufleet.fleet.discovery import (
    DiscoveryRegistry,
    MdnsAdvertiser,
    MdnsBrowser,
    UdpAnnouncer,
    UdpListener,
    announcement,
    probe_static_peers,
)


def _until(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize(
    "announce",
    [
        {"cluster": "lab", "node": "n1"},
        {"cluster": "lab", "node": "n1", "url": "ftp://x"},
        {"cluster": "lab", "node": "", "url": "http://10.0.0.1:8003"},
        {"cluster": 3, "node": "n1", "url": "http://10.0.0.1:8003"},
    ],
)
def test_malformed_announcements_are_ignored(announce: dict[str, Any]) -> None:
    registry = DiscoveryRegistry()
    assert registry.heard(announce, "udp") is None
    assert registry.all() == []


def test_agents_not_heard_again_are_forgotten() -> None:
    now = [1000.0]
    registry = DiscoveryRegistry(clock=lambda: now[0], forget_after_s=60)
    registry.heard({"cluster": "lab", "node": "n1", "url": "http://10.0.0.1:8003"}, "udp")
    assert [d.node for d in registry.all()] == ["n1"]
    now[0] += 61
    assert registry.all() == []


def test_udp_announcements_reach_the_hub() -> None:
    registry = DiscoveryRegistry()
    listener = UdpListener(registry, host="127.0.0.1", port=0)
    announcer = UdpAnnouncer(
        "lab", "n2", "http://127.0.0.1:8003", targets=[("127.0.0.1", listener.port)], every_s=0.2
    )
    try:
        assert _until(lambda: [d.node for d in registry.all()] == ["n2"])
        (found,) = registry.all()
        assert (found.cluster, found.url, found.source) == ("lab", "http://127.0.0.1:8003", "udp")
        # Noise on the port (another program, a garbled datagram) changes nothing.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\xff not json", ("127.0.0.1", listener.port))
            s.sendto(json.dumps({"service": "other"}).encode(), ("127.0.0.1", listener.port))
        time.sleep(0.3)
        assert [d.node for d in registry.all()] == ["n2"]
    finally:
        announcer.close()
        listener.close()
    assert json.loads(announcement("lab", "n2", "http://h:1"))["service"] == "gpufleet"


def test_an_mdns_record_is_found_by_the_browser() -> None:
    registry = DiscoveryRegistry()
    browser = MdnsBrowser(registry)
    advertiser = MdnsAdvertiser("lab", "mdns-n3", "http://127.0.0.1:8123")
    try:
        assert _until(lambda: any(d.node == "mdns-n3" for d in registry.all()), 15)
        found = next(d for d in registry.all() if d.node == "mdns-n3")
        assert (found.cluster, found.url, found.source) == ("lab", "http://127.0.0.1:8123", "mdns")
    finally:
        advertiser.close()
        browser.close()


class _Agent(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"status": "healthy", "instance_id": "lab/static-n4"}).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def agent_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Agent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_static_peers_are_looked_up(agent_url: str) -> None:
    registry = DiscoveryRegistry()

    def get(url: str) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(url, timeout=5).json()
        return answer

    failed = probe_static_peers(registry, [agent_url, "http://127.0.0.1:9"], get)
    assert failed == ["http://127.0.0.1:9"]
    (found,) = registry.all()
    assert (found.cluster, found.node, found.url, found.source) == (
        "lab",
        "static-n4",
        agent_url,
        "static",
    )
