"""Log a recurring fault once: a bounded memory of the messages already logged.

A loop that fails the same way every two seconds must not fill the log, and a loop that
fails in ever new ways (a message carrying a pid or a timestamp) must not grow memory
without end. :class:`LogOnce` remembers the most recently seen keys (an LRU): a key is logged
the first time, then not again while it stays remembered; a key that recurs is refreshed, so
only keys that stopped recurring are forgotten and may be logged once more later.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

DEFAULT_MAX_KEYS = 1024


class LogOnce:
    """Remembers which messages were logged; thread-safe.

    Args:
        logger: where the messages go.
        max_keys: most keys remembered; the least recently seen is forgotten first.
    """

    def __init__(self, logger: logging.Logger, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self._logger = logger
        self._max_keys = max_keys
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def first(self, key: str) -> bool:
        """True when ``key`` is new (or was forgotten), False while it is remembered."""
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return False
            self._seen[key] = None
            if len(self._seen) > self._max_keys:
                self._seen.popitem(last=False)
            return True

    def exception(self, message: str) -> None:
        """``logger.exception(message)`` the first time; call it from an ``except`` block."""
        if self.first(message):
            self._logger.exception(message, stacklevel=2)

    def error(self, message: str, exc: BaseException) -> None:
        """Log ``message`` with ``exc``'s traceback at ERROR the first time."""
        if self.first(message):
            self._logger.error(message, exc_info=exc, stacklevel=2)

    def warning(self, key: str, message: str, *args: object) -> None:
        """Log ``message % args`` at WARNING the first time ``key`` is seen."""
        if self.first(key):
            self._logger.warning(message, *args, stacklevel=2)
