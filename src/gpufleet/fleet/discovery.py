"""Finding agents on the LAN (issue 5): mDNS (``_gpufleet._tcp.local.``, python-zeroconf),
UDP broadcast announcements, and a static peer list.

Agents advertise themselves (:class:`MdnsAdvertiser`, :class:`UdpAnnouncer`); the hub
browses and listens (:class:`MdnsBrowser`, :class:`UdpListener`) and keeps what it heard in
a :class:`DiscoveryRegistry`. Discovery only says where an agent is: it never grants access,
and a discovered agent is not a node of the hub until it joins with a ``node-join`` token.
The hub lists discovered agents beside the joined nodes so an operator sees who has not
joined yet.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

logger = logging.getLogger(__name__)

SERVICE_TYPE = "_gpufleet._tcp.local."
UDP_PORT = 8101
"""Where agents send, and a hub listens for, UDP announcements."""
_MAX_DATAGRAM = 2048


@dataclass(frozen=True, slots=True)
class Discovered:
    """An agent heard of: who it says it is and where its API is."""

    cluster: str
    node: str
    url: str
    source: str
    """``mdns``, ``udp`` or ``static``."""
    seen_s: float


def _valid(announce: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """``(cluster, node, url)`` of an announcement, or None when it is not one of ours."""
    values = [announce.get(k) for k in ("cluster", "node", "url")]
    texts = [v for v in values if isinstance(v, str) and 0 < len(v) <= 200]
    if len(texts) != 3:
        return None
    cluster, node, url = texts
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return None
    return cluster, node, url


class DiscoveryRegistry:
    """What the hub has heard, by agent (thread-safe); entries not heard again for
    ``forget_after_s`` are dropped."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, forget_after_s: float = 600.0
    ) -> None:
        self._clock = clock
        self._forget = forget_after_s
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], Discovered] = {}

    def heard(self, announce: Mapping[str, Any], source: str) -> Discovered | None:
        """Record an announcement; None (ignored) when it is malformed."""
        ids = _valid(announce)
        if ids is None:
            return None
        found = Discovered(ids[0], ids[1], ids[2], source, self._clock())
        with self._lock:
            self._seen[(found.cluster, found.node)] = found
        return found

    def forget(self, cluster: str, node: str) -> None:
        with self._lock:
            self._seen.pop((cluster, node), None)

    def all(self) -> list[Discovered]:
        """Everything heard recently, by cluster and node."""
        cutoff = self._clock() - self._forget
        with self._lock:
            for key in [k for k, d in self._seen.items() if d.seen_s < cutoff]:
                del self._seen[key]
            return sorted(self._seen.values(), key=lambda d: (d.cluster, d.node))


# ---- mDNS ------------------------------------------------------------------------------------


def _host_of(url: str) -> str:
    return urlparse(url).hostname or "127.0.0.1"


class MdnsAdvertiser:
    """An agent's mDNS service record: ``<cluster>-<node>._gpufleet._tcp.local.`` with its
    cluster, node and API URL as properties."""

    def __init__(self, cluster: str, node: str, url: str) -> None:
        parsed = urlparse(url)
        try:
            address = socket.gethostbyname(parsed.hostname or "127.0.0.1")
        except OSError:
            address = "127.0.0.1"
        self._zc = Zeroconf(ip_version=IPVersion.V4Only)
        label = f"{cluster}-{node}".replace(".", "-")[:60]
        self._info = ServiceInfo(
            SERVICE_TYPE,
            f"{label}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(address)],
            port=parsed.port or (443 if parsed.scheme == "https" else 80),
            properties={"cluster": cluster, "node": node, "url": url},
            server=f"{label}.local.",
        )
        self._zc.register_service(self._info, allow_name_change=True)

    def close(self) -> None:
        try:
            self._zc.unregister_service(self._info)
        finally:
            self._zc.close()


class MdnsBrowser:
    """The hub's browser of ``_gpufleet._tcp.local.``: every agent found goes to ``registry``."""

    def __init__(self, registry: DiscoveryRegistry) -> None:
        self._registry = registry
        self._zc = Zeroconf(ip_version=IPVersion.V4Only)

        def changed(zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
            if state_change not in (ServiceStateChange.Added, ServiceStateChange.Updated):
                return
            info = zeroconf.get_service_info(service_type, name, timeout=2000)
            if info is None:
                return
            props = {
                k.decode(errors="replace"): (v or b"").decode(errors="replace")
                for k, v in info.properties.items()
            }
            if registry.heard(props, "mdns") is None:
                logger.debug("ignored a malformed mDNS record %s: %s", name, props)

        self._browser = ServiceBrowser(self._zc, SERVICE_TYPE, handlers=[changed])

    def close(self) -> None:
        self._browser.cancel()
        self._zc.close()


# ---- UDP -------------------------------------------------------------------------------------


def announcement(cluster: str, node: str, url: str) -> bytes:
    """The datagram an agent broadcasts."""
    body = {"service": "gpufleet", "cluster": cluster, "node": node, "url": url}
    return json.dumps(body, separators=(",", ":")).encode()


class UdpListener:
    """The hub's listener for UDP announcements on ``port`` (a thread)."""

    def __init__(
        self, registry: DiscoveryRegistry, *, host: str = "0.0.0.0", port: int = UDP_PORT
    ) -> None:
        self._registry = registry
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.settimeout(0.5)
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="gpufleet-udp-discovery", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _peer = self._sock.recvfrom(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                body = json.loads(data)
            except ValueError:
                continue
            if isinstance(body, dict) and body.get("service") == "gpufleet":
                self._registry.heard(body, "udp")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


class UdpAnnouncer:
    """An agent's announcements: one datagram to each target every ``every_s`` (a thread).
    The default target is the LAN broadcast address on :data:`UDP_PORT`."""

    def __init__(
        self,
        cluster: str,
        node: str,
        url: str,
        *,
        targets: Sequence[tuple[str, int]] = (("255.255.255.255", UDP_PORT),),
        every_s: float = 10.0,
    ) -> None:
        self._payload = announcement(cluster, node, url)
        self._targets = list(targets)
        self._every = every_s
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpufleet-udp-announce", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for target in self._targets:
                try:
                    self._sock.sendto(self._payload, target)
                except OSError as exc:  # no route to the broadcast address: say so once
                    logger.debug("UDP announcement to %s failed: %s", target, exc)
            self._stop.wait(self._every)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


# ---- static peers -----------------------------------------------------------------------------


def probe_static_peers(
    registry: DiscoveryRegistry, urls: Sequence[str], get: Callable[[str], Mapping[str, Any]]
) -> list[str]:
    """Ask each agent URL of a static list who it is (its ``/health`` answer names
    ``instance_id`` as ``cluster/node``) and record it; returns the URLs that did not answer."""
    failed = []
    for url in urls:
        try:
            answer = get(url.rstrip("/") + "/health")
        except Exception as exc:  # an unreachable peer is reported, never fatal
            logger.debug("static peer %s did not answer: %s", url, exc)
            failed.append(url)
            continue
        instance = str(answer.get("instance_id", ""))
        cluster, _, node = instance.partition("/")
        if registry.heard({"cluster": cluster, "node": node, "url": url}, "static") is None:
            failed.append(url)
    return failed
