"""The result cache: finished response bodies keyed by request hash, in Redis or in process.

Three classes implement `ResultCache`: `RedisResultCache`, shared by every worker;
`MemoryResultCache`, a bounded LRU inside one process (the default without Redis); and
`NearCachedResults`, a small in-process LRU in front of Redis.

The cache only ever accelerates: every method swallows backend failures (counting them
through `on_error`) and the caller computes afresh. A failing Redis costs at most one short
timeout, after which `RedisResultCache` stops trying for a growing back-off interval, then
probes again on the next request, so caching resumes by itself.

`fetch_or_compute` adds single flight on top: concurrent identical misses compute once, the
others poll briefly for the owner's result and compute themselves if it does not come (the
API waits at most a quarter of the request's compute deadline, see service/api.py).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Literal, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.timing import NO_TIMER, NullTimer, StageTimer

Outcome = Literal["hit", "miss"]


class ResultCache(Protocol):
    """Response bodies by request hash. Failures never raise; they read as a miss."""

    backend: str

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


def _ignore_error(operation: str) -> None:
    return None


class MemoryResultCache:
    """A byte-bounded, thread-safe LRU inside one process: the default when REDIS_URL is unset.

    Each gunicorn worker has its own, so hits are per worker; Redis shares them.
    """

    backend = "memory"

    def __init__(self, *, max_bytes: int, max_entry_bytes: int, ttl_seconds: float):
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.ttl_seconds = ttl_seconds
        self.size_bytes = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._claims: dict[str, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, body = entry
            if expires_at <= time.monotonic():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return body

    def put(self, key: str, body: bytes) -> None:
        cost = len(key) + len(body)
        if len(body) > self.max_entry_bytes or cost > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (time.monotonic() + self.ttl_seconds, body)
            self.size_bytes += cost
            while self.size_bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, body = self._entries.pop(key)
        self.size_bytes -= len(key) + len(body)

    def claim(self, key: str) -> str | None:
        with self._lock:
            if key in self._claims:
                return None
            token = secrets.token_hex(8)
            self._claims[key] = token
            return token

    def put_and_release(self, key: str, token: str, body: bytes | None) -> None:
        if body is not None:
            self.put(key, body)
        with self._lock:
            if self._claims.get(key) == token:
                del self._claims[key]

    def waiting(self, key: str) -> tuple[bytes | None, bool]:
        body = self.get(key)
        with self._lock:
            return body, key in self._claims

    def unavailable_reason(self, *, probe: bool = True) -> str | None:
        return None

    def close(self) -> None:
        return None


# Delete the claim only if it still holds our token: an expired claim may be someone else's now.
_RELEASE_CLAIM = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisResultCache:
    """Results in Redis under `chainrule:v<engine version>:result:<hash>`, with a TTL.

    One connection pool per process, socket and connect timeouts of `timeout_seconds`, no
    client-side retries. After a failure the cache is skipped for a back-off interval that
    doubles on each consecutive failure (from `backoff_min` up to `backoff_max` seconds); the
    first success resets it.
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        *,
        engine_version: str,
        ttl_seconds: int,
        max_entry_bytes: int,
        timeout_seconds: float,
        claim_ttl_seconds: float,
        on_error: Callable[[str], None] = _ignore_error,
        backoff_min: float = 0.25,
        backoff_max: float = 5.0,
        max_connections: int = 32,
    ):
        self.prefix = f"chainrule:v{engine_version}:"
        self.ttl_seconds = ttl_seconds
        self.max_entry_bytes = max_entry_bytes
        self.claim_ttl_ms = max(1, int(claim_ttl_seconds * 1000))
        self.on_error = on_error
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            max_connections=max_connections,
        )
        self._release_claim = self.client.register_script(_RELEASE_CLAIM)
        self._state_lock = threading.Lock()
        self._skip_until = 0.0
        self._backoff = 0.0
        self.last_error: str | None = None

    def result_key(self, key: str) -> str:
        return f"{self.prefix}result:{key}"

    def claim_key(self, key: str) -> str:
        return f"{self.prefix}claim:{key}"

    def close(self) -> None:
        self.client.close()

    # -- the circuit breaker -------------------------------------------------------------

    def _available(self) -> bool:
        return time.monotonic() >= self._skip_until

    def _failed(self, operation: str, error: Exception) -> None:
        with self._state_lock:
            self._backoff = min(self.backoff_max, max(self.backoff_min, 2 * self._backoff))
            self._skip_until = time.monotonic() + self._backoff
            self.last_error = f"{type(error).__name__}: {error}"
        self.on_error(operation)

    def _succeeded(self) -> None:
        if self._backoff:
            with self._state_lock:
                self._backoff = 0.0
                self._skip_until = 0.0
                self.last_error = None

    # -- ResultCache ---------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        try:
            body = self.client.get(self.result_key(key))
        except redis.RedisError as error:
            self._failed("get", error)
            return None
        self._succeeded()
        return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.max_entry_bytes or not self._available():
            return
        try:
            self.client.set(self.result_key(key), body, ex=self.ttl_seconds)
        except redis.RedisError as error:
            self._failed("put", error)
            return
        self._succeeded()

    def claim(self, key: str) -> str | None:
        if not self._available():
            return ""
        token = secrets.token_hex(8)
        try:
            claimed = self.client.set(self.claim_key(key), token, nx=True, px=self.claim_ttl_ms)
        except redis.RedisError as error:
            self._failed("claim", error)
            return ""
        self._succeeded()
        return token if claimed else None

    def put_and_release(self, key: str, token: str, body: bytes | None) -> None:
        if not token:  # the claim was granted only because Redis was unavailable
            if body is not None:
                self.put(key, body)
            return
        if not self._available():
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                if body is not None and len(body) <= self.max_entry_bytes:
                    pipe.set(self.result_key(key), body, ex=self.ttl_seconds)
                self._release_claim(keys=[self.claim_key(key)], args=[token], client=pipe)
                pipe.execute()
        except redis.RedisError as error:
            self._failed("put", error)
            return
        self._succeeded()

    def waiting(self, key: str) -> tuple[bytes | None, bool]:
        if not self._available():
            return None, False
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.get(self.result_key(key))
                pipe.exists(self.claim_key(key))
                body, claimed = pipe.execute()
        except redis.RedisError as error:
            self._failed("wait", error)
            return None, False
        self._succeeded()
        return body, bool(claimed)

    def unavailable_reason(self, *, probe: bool = True) -> str | None:
        # A probe asks Redis even while backing off: readiness checks are rare, and a success
        # ends the back-off early. Without one, only a back-off in force counts.
        if not probe:
            return None if self._available() else f"redis unreachable ({self.last_error})"
        try:
            self.client.ping()
        except redis.RedisError as error:
            self._failed("ping", error)
            return f"redis unreachable ({self.last_error})"
        self._succeeded()
        return None


class NearCachedResults:
    """A small in-process LRU (`near`) in front of a shared cache (`far`, Redis).

    A result body never changes for its hash (the engine version is part of the hash), so a
    copy kept in the worker can never be stale: repeated hits cost no network round trip, and
    still work while Redis is away. Claims, waiting and readiness are the far cache's.
    """

    def __init__(self, near: MemoryResultCache, far: ResultCache):
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

    def unavailable_reason(self, *, probe: bool = True) -> str | None:
        return self.far.unavailable_reason(probe=probe)


def fetch_or_compute(
    cache: ResultCache,
    key: str,
    compute: Callable[[], bytes],
    *,
    wait_until: float,
    timer: StageTimer | NullTimer = NO_TIMER,
    poll_seconds: float = 0.002,
) -> tuple[bytes, Outcome]:
    """The stored body for `key` ("hit"), or `compute()`'s, stored for the next caller ("miss").

    While another request holds the claim on `key`, poll for its result until `wait_until`
    (a time.monotonic() value) and compute here if it does not come or the claim lapses.
    `compute` runs under the caller's own deadline, so keep `wait_until` well before it.
    """
    with timer("cache_read"):
        body = cache.get(key)
        if body is not None:
            return body, "hit"
        token = cache.claim(key)
        delay = poll_seconds
        while token is None:
            if time.monotonic() + delay > wait_until:
                token = ""  # the owner is too slow or gone: compute here, unclaimed
                break
            time.sleep(delay)
            delay = min(2 * delay, 0.05)
            body, still_claimed = cache.waiting(key)
            if body is not None:
                return body, "hit"
            if not still_claimed:
                token = cache.claim(key)
    body = None
    try:
        body = compute()
    finally:
        with timer("cache_write"):
            cache.put_and_release(key, token, body)
    return body, "miss"
