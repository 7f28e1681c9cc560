"""The store Protocol: response bodies by result hash, bytes in and bytes out.

A store keeps bodies (`get`/`put`) and the claims single flight needs (`claim`,
`put_and_release`, `waiting`); the waiting policy itself is service/store/single_flight.py.
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
        """While waiting on another's claim: (the body if stored, whether the claim still holds)."""

    def unavailable_reason(self, *, probe: bool = True) -> str | None:
        """None when the backend answers, else a sentence saying why it does not. With
        probe=False, answer from what recent operations saw, without asking the backend."""

    def close(self) -> None:
        """Release the backend's connections (the worker is exiting)."""
