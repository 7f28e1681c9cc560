"""A circuit breaker: after a failure, skip the backend for a back-off that doubles with each
consecutive failure (from `backoff_min` up to `backoff_max` seconds); a success resets it."""

from __future__ import annotations

import threading
import time


class Breaker:
    """The state of one backend (a Redis server, or one shard of a cluster)."""

    def __init__(self, backoff_min: float, backoff_max: float):
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.skip_until = 0.0
        self.backoff = 0.0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def available(self) -> bool:
        return time.monotonic() >= self.skip_until

    def failed(self, error: Exception) -> None:
        with self._lock:
            self.backoff = min(self.backoff_max, max(self.backoff_min, 2 * self.backoff))
            self.skip_until = time.monotonic() + self.backoff
            self.last_error = f"{type(error).__name__}: {error}"

    def succeeded(self) -> None:
        if self.backoff:
            with self._lock:
                self.backoff = 0.0
                self.skip_until = 0.0
                self.last_error = None
