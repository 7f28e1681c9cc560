"""The embedded store: one SQLite-backed diskcache directory shared by every worker of a server.

The default without REDIS_URL. diskcache is a well-kept library made for exactly this: a cache
in a directory that several processes open at once (SQLite in WAL mode does the locking), with
`eviction_policy="least-recently-used"` under a `size_limit` in bytes, per-key expiry, and an
atomic `add` that single flight's claims need. A result computed by one worker is a hit on the
others, and it outlives a worker's restart (and the server's: the keys carry the engine version
through KeyLayout, so an older engine's results are never read).

Like every store it only accelerates: a locked or broken database reads as a miss (after at
most `timeout_seconds` of SQLite's busy wait), and claims then let the caller compute unclaimed.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import diskcache

from service.store.keys import KeyLayout

# What a failing diskcache raises: a lock held too long, SQLite itself, or the file system.
STORE_ERRORS = (diskcache.Timeout, sqlite3.Error, OSError)
RECENT_SECONDS = 5.0


def _ignore_error(operation: str) -> None:
    return None


class DiskStore:
    """Bodies, registered graphs and claims in `directory`, at most `max_bytes` on disk (least
    recently used evicted first). Safe to share between processes and threads."""

    backend = "embedded"

    def __init__(
        self,
        directory: str | Path,
        *,
        engine_version: str,
        max_bytes: int,
        max_entry_bytes: int,
        ttl_seconds: float,
        claim_ttl_seconds: float,
        graph_ttl_seconds: float = 86400,
        timeout_seconds: float = 1.0,
        on_error: Callable[[str], None] = _ignore_error,
    ):
        self.directory = Path(directory)
        self.keys = KeyLayout(engine_version)
        self.max_entry_bytes = max_entry_bytes
        self.ttl_seconds = ttl_seconds
        self.claim_ttl_seconds = claim_ttl_seconds
        self.graph_ttl_seconds = graph_ttl_seconds
        self.on_error = on_error
        self.last_error: str | None = None
        self.failed_at = -RECENT_SECONDS
        self.cache = diskcache.Cache(
            str(self.directory),
            timeout=timeout_seconds,
            size_limit=max_bytes,
            eviction_policy="least-recently-used",
        )

    def close(self) -> None:
        self.cache.close()

    def _failed(self, operation: str, error: Exception) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        self.failed_at = time.monotonic()
        self.on_error(operation)

    # -- results -------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        try:
            return self.cache.get(self.keys.result(key))
        except STORE_ERRORS as error:
            self._failed("get", error)
            return None

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.max_entry_bytes:
            return
        try:
            self.cache.set(self.keys.result(key), body, expire=self.ttl_seconds)
        except STORE_ERRORS as error:
            self._failed("put", error)

    # -- single flight -------------------------------------------------------------------

    def claim(self, key: str) -> str | None:
        token = secrets.token_hex(8)
        try:
            added = self.cache.add(self.keys.claim(key), token, expire=self.claim_ttl_seconds)
        except STORE_ERRORS as error:
            self._failed("claim", error)
            return ""
        return token if added else None

    def put_and_release(self, key: str, token: str, body: bytes | None) -> None:
        keep = body is not None and len(body) <= self.max_entry_bytes
        try:
            # one transaction: a waiter never sees the claim gone before the body is there
            with self.cache.transact():
                if keep:
                    self.cache.set(self.keys.result(key), body, expire=self.ttl_seconds)
                if token and self.cache.get(self.keys.claim(key)) == token:
                    self.cache.delete(self.keys.claim(key))
        except STORE_ERRORS as error:
            self._failed("put", error)

    def waiting(self, key: str) -> tuple[bytes | None, bool]:
        try:
            claimed = self.keys.claim(key) in self.cache  # first: see Store.waiting
            return self.cache.get(self.keys.result(key)), claimed
        except STORE_ERRORS as error:
            self._failed("wait", error)
            return None, False

    # -- registered graphs ---------------------------------------------------------------

    def get_graph(self, graph_id: str) -> bytes | None:
        key = self.keys.graph(graph_id)
        try:
            record = self.cache.get(key)
            if record is not None:
                self.cache.touch(key, expire=self.graph_ttl_seconds)
            return record
        except STORE_ERRORS as error:
            self._failed("get_graph", error)
            return None

    def put_graph(self, graph_id: str, body: bytes) -> None:
        try:
            self.cache.set(self.keys.graph(graph_id), body, expire=self.graph_ttl_seconds)
        except STORE_ERRORS as error:
            self._failed("put_graph", error)

    # -- readiness -----------------------------------------------------------------------

    def unavailable_reason(self, *, probe: bool = True) -> str | None:
        # Without a probe, only a failure of the last few seconds counts.
        if probe:
            try:
                self.cache.get(self.keys.claim("readiness-probe"))
                self.last_error = None
            except STORE_ERRORS as error:
                self._failed("ping", error)
        recent = time.monotonic() - self.failed_at < RECENT_SECONDS
        if self.last_error is None or not (probe or recent):
            return None
        return f"the embedded store in {self.directory} failed ({self.last_error})"
