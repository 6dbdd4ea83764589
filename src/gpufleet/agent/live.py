"""The latest in-memory snapshot, which every live endpoint reads (no hardware call per request)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from gpufleet.model import GpuSourceStatus, Snapshot


class LiveState:
    """Thread-safe holder of the newest snapshot and a short in-memory history.

    The sampler thread publishes; API handlers read. The in-memory history lets live views
    show the last minutes even when the store cannot be written.
    """

    def __init__(
        self, gpu_status: GpuSourceStatus | Callable[[], GpuSourceStatus], keep: int = 600
    ) -> None:
        """Hold ``keep`` recent snapshots.

        Args:
            gpu_status: the GPU source's status, or a callable returning it (the source's
                ``status`` method) so that a GPU found after start-up shows up.
            keep: snapshots kept in memory.
        """
        self._lock = threading.Lock()
        self._status = gpu_status
        self._latest: Snapshot | None = None
        self._recent: deque[Snapshot] = deque(maxlen=keep)
        self.samples_taken = 0
        self.last_sample_duration_s: float | None = None

    def publish(self, snapshot: Snapshot, duration_s: float | None = None) -> None:
        """Make ``snapshot`` the latest."""
        with self._lock:
            self._latest = snapshot
            self._recent.append(snapshot)
            self.samples_taken += 1
            self.last_sample_duration_s = duration_s

    @property
    def gpu_status(self) -> GpuSourceStatus:
        """What the GPU source can see now."""
        return self._status() if callable(self._status) else self._status

    @property
    def latest(self) -> Snapshot | None:
        """Newest snapshot, or None before the first sample."""
        with self._lock:
            return self._latest

    def recent(self) -> list[Snapshot]:
        """Snapshots still in memory, oldest first."""
        with self._lock:
            return list(self._recent)
