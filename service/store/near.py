"""A small in-process store in front of a shared one: repeated hits skip the network.

A body never changes for its hash (the engine version is part of the hash), so a copy kept in
the worker can never be stale, and it keeps serving hits while the shared store is away.
Registered graphs go straight to the shared store: their TTL lives there, and the worker keeps
its own loaded copies (service/graphs.py).
"""

from __future__ import annotations

from service.store.base import Store
from service.store.memory import MemoryStore


class NearCachedStore:
    """`near` (in process) in front of `far` (Redis or the embedded store); claims and readiness
    are the far store's."""

    def __init__(self, near: MemoryStore, far: Store):
        self.near = near
        self.far = far
        self.backend = far.backend

    def close(self) -> None:
        self.far.close()

    def get(self, key: str) -> bytes | None:
        body = self.near.get(key)
        if body is None:
            body = self.far.get(key)
            if body is not None:
                self.near.put(key, body)
        return body

    def put(self, key: str, body: bytes) -> None:
        self.near.put(key, body)
        self.far.put(key, body)

    def claim(self, key: str) -> str | None:
        return self.far.claim(key)

    def put_and_release(self, key: str, token: str, body: bytes | None) -> None:
        if body is not None:
            self.near.put(key, body)
        self.far.put_and_release(key, token, body)

    def waiting(self, key: str) -> tuple[bytes | None, bool]:
        body, claimed = self.far.waiting(key)
        if body is not None:
            self.near.put(key, body)
        return body, claimed

    def get_graph(self, graph_id: str) -> bytes | None:
        return self.far.get_graph(graph_id)

    def put_graph(self, graph_id: str, body: bytes) -> None:
        self.far.put_graph(graph_id, body)

    def unavailable_reason(self, *, probe: bool = True) -> str | None:
        return self.far.unavailable_reason(probe=probe)
