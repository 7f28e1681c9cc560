"""The Redis store: response bodies shared by every worker and replica, with a TTL.

Keys follow service/store/keys.py (a result and its claim share a Redis Cluster slot). One
connection pool per process, socket and connect timeouts of `timeout_seconds`, no client-side
retries. A failing Redis costs at most one short timeout, after which the store is skipped for
a back-off interval that doubles on each consecutive failure (from `backoff_min` up to
`backoff_max` seconds) and then probed again, so caching resumes by itself.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.store.keys import KeyLayout


def _ignore_error(operation: str) -> None:
    return None


# Delete the claim only if it still holds our token: an expired claim may be someone else's now.
_RELEASE_CLAIM = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisStore:
    """Results in Redis under `KeyLayout(engine_version).result(hash)`, with a TTL.

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
        graph_ttl_seconds: int = 86400,
        max_entry_bytes: int,
        timeout_seconds: float,
        claim_ttl_seconds: float,
        on_error: Callable[[str], None] = _ignore_error,
        backoff_min: float = 0.25,
        backoff_max: float = 5.0,
        max_connections: int = 32,
    ):
        self.keys = KeyLayout(engine_version)
        self.ttl_seconds = ttl_seconds
        self.graph_ttl_seconds = graph_ttl_seconds
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
        return self.keys.result(key)

    def claim_key(self, key: str) -> str:
        return self.keys.claim(key)

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

    # -- Store ---------------------------------------------------------------------------

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

    def get_graph(self, graph_id: str) -> bytes | None:
        if not self._available():
            return None
        try:  # GETEX (Redis 6.2): read and refresh the TTL in one round trip
            body = self.client.getex(self.keys.graph(graph_id), ex=self.graph_ttl_seconds)
        except redis.RedisError as error:
            self._failed("get_graph", error)
            return None
        self._succeeded()
        return body

    def put_graph(self, graph_id: str, body: bytes) -> None:
        if not self._available():
            return
        try:
            self.client.set(self.keys.graph(graph_id), body, ex=self.graph_ttl_seconds)
        except redis.RedisError as error:
            self._failed("put_graph", error)
            return
        self._succeeded()

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
