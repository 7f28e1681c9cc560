"""The store Protocol: response bodies by result hash, bytes in and bytes out.

A store keeps bodies (`get`/`put`), the claims single flight needs (`claim`,
`put_and_release`, `waiting`; the waiting policy itself is service/store/single_flight.py) and
registered graphs (`get_graph`/`put_graph`, CONTRACT section 7: records written by
service/graphs.py, kept GRAPH_TTL_SECONDS from their last use).
A store only ever accelerates: a backend failure never raises, it reads as a miss (and
`claim` answers "" so the caller computes without a claim).
"""

from __future__ import annotations

from typing import Protocol


class Store(Protocol):
    """Response bodies by result hash, and single-flight claims on those hashes."""

    backend: str  # "embedded", "redis" or "memory": what /readyz reports

    def get(self, key: str) -> bytes | None:
        """The stored body, or None (absent, expired, or the backend is unavailable)."""

    def put(self, key: str, body: bytes) -> None:
        """Store `body` unless it is over the entry size limit or the backend is unavailable."""

    def claim(self, key: str) -> str | None:
        """Try to become the one computer of `key`: a token to pass to `put_and_release`, or
        None when somebody else holds the claim. An unavailable backend answers "" (compute
        without a claim)."""

    def put_and_release(self, key: str, token: str, body: bytes | None) -> None:
        """Store the body (None: the computation failed) and drop the claim, if still ours."""

    def waiting(self, key: str) -> tuple[bytes | None, bool]:
        """While waiting on another's claim: (the body if stored, whether the claim still holds).

        The claim is read before the body: the owner stores its body before (or as) it lets
        go of its claim, so a claim seen gone comes with the body it left, if any. Read the
        other way round, the owner could finish in between, and a waiter would find neither
        and compute again."""

    def get_graph(self, graph_id: str) -> bytes | None:
        """A registered graph's record, its TTL refreshed (the full graph TTL from now); None
        when absent, expired, or the backend is unavailable."""

    def put_graph(self, graph_id: str, body: bytes) -> None:
        """Keep a registered graph's record for the graph TTL. Idempotent (an id always names
        the same bytes), so concurrent puts of one id are fine; not bound by the result entry
        size limit (a registered graph is as large as the body that brought it)."""

    def unavailable_reason(self, *, probe: bool = True) -> str | None:
        """None when the backend answers, else a sentence saying why it does not. With
        probe=False, answer from what recent operations saw, without asking the backend."""

    def close(self) -> None:
        """Release the backend's connections (the worker is exiting)."""
