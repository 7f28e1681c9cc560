"""The in-process store: a byte-bounded LRU of response bodies and registered graphs, each with
a TTL, and local claims.

Each gunicorn worker's near cache in front of the shared store (service/store/near.py), and
a store of its own where sharing does not matter (tests, benchmarks' baseline).
"""

from __future__ import annotations

import secrets
import threading
import time

from service.store.lru import LockedLRU

# Registered graphs share the byte budget with results, under keys no result hash can take.
GRAPH_KEY_PREFIX = "graph:"
DEFAULT_GRAPH_TTL_SECONDS = 86400


def _entry_bytes(key: str, entry: tuple[float, bytes]) -> int:
    return len(key) + len(entry[1])


class MemoryStore:
    """Bodies by hash, at most `max_bytes` in all (keys counted), each kept `ttl_seconds`;
    registered graphs kept `graph_ttl_seconds` from their last use."""

    backend = "memory"

    def __init__(
        self,
        *,
        max_bytes: int,
        max_entry_bytes: int,
        ttl_seconds: float,
        graph_ttl_seconds: float = DEFAULT_GRAPH_TTL_SECONDS,
    ):
        self.max_entry_bytes = max_entry_bytes
        self.ttl_seconds = ttl_seconds
        self.graph_ttl_seconds = graph_ttl_seconds
        # key -> (expiry as a time.monotonic() value, body)
        self._entries: LockedLRU[str, tuple[float, bytes]] = LockedLRU(
            max_cost=max_bytes, cost=_entry_bytes
        )
        self._claims: dict[str, str] = {}
        self._claims_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._entries.cost

    def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, body = entry
        if expires_at <= time.monotonic():
            self._entries.pop(key)
            return None
        return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) <= self.max_entry_bytes:
            self._entries.put(key, (time.monotonic() + self.ttl_seconds, body))

    def get_graph(self, graph_id: str) -> bytes | None:
        key = GRAPH_KEY_PREFIX + graph_id
        body = self.get(key)
        if body is not None:  # refresh: a graph lives on while it is used
            self._entries.put(key, (time.monotonic() + self.graph_ttl_seconds, body))
        return body

    def put_graph(self, graph_id: str, body: bytes) -> None:
        key = GRAPH_KEY_PREFIX + graph_id
        self._entries.put(key, (time.monotonic() + self.graph_ttl_seconds, body))

    def claim(self, key: str) -> str | None:
        with self._claims_lock:
            if key in self._claims:
                return None
            token = secrets.token_hex(8)
            self._claims[key] = token
            return token

    def put_and_release(self, key: str, token: str, body: bytes | None) -> None:
        if body is not None:
            self.put(key, body)
        with self._claims_lock:
            if self._claims.get(key) == token:
                del self._claims[key]

    def waiting(self, key: str) -> tuple[bytes | None, bool]:
        with self._claims_lock:  # the claim first: see Store.waiting
            claimed = key in self._claims
        return self.get(key), claimed

    def unavailable_reason(self, *, probe: bool = True) -> str | None:
        return None

    def close(self) -> None:
        return None
