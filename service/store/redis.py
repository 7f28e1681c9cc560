"""The Redis store: response bodies shared by every worker and replica, with a TTL.

One server or a Redis Cluster, as REDIS_URL says (service/store/redis_connect.py). Keys follow
service/store/keys.py: a result and its claim share a hash slot, so the one script that stores
a result and drops its claim runs on one shard, on a single server and a cluster alike. One
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

from service.store.keys import KeyLayout
from service.store.redis_connect import CLIENT_ERRORS, Client, LazyClient, ping_every_shard


def _ignore_error(operation: str) -> None:
    return None


# KEYS: the result, its claim (one hash slot). ARGV: our token, "1" to store, the body, its TTL.
# The claim is deleted only if it still holds our token: an expired claim may be someone else's.
_PUT_AND_RELEASE = """
if ARGV[2] == '1' then
    redis.call('set', KEYS[1], ARGV[3], 'EX', ARGV[4])
end
if redis.call('get', KEYS[2]) == ARGV[1] then
    return redis.call('del', KEYS[2])
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
        self.max_entry_bytes = max_entry_bytes
        self.claim_ttl_ms = max(1, int(claim_ttl_seconds * 1000))
        self.on_error = on_error
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self._connection = LazyClient(
            url, timeout_seconds=timeout_seconds, max_connections=max_connections
        )
        self._scripts_of: Client | None = None
        self._state_lock = threading.Lock()
        self._skip_until = 0.0
        self._backoff = 0.0
        self.last_error: str | None = None

    def result_key(self, key: str) -> str:
        return self.keys.result(key)

    def claim_key(self, key: str) -> str:
        return self.keys.claim(key)

    @property
    def client(self) -> Client:
        """The connected client (built on first use; raises CLIENT_ERRORS if it cannot be)."""
        return self._connection.get()

    def _put_and_release_script(self, client: Client):
        if self._scripts_of is not client:
            self._put_and_release = client.register_script(_PUT_AND_RELEASE)
            self._scripts_of = client
        return self._put_and_release

    def close(self) -> None:
        self._connection.close()

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
        except CLIENT_ERRORS as error:
            self._failed("get", error)
            return None
        self._succeeded()
        return body

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.max_entry_bytes or not self._available():
            return
        try:
            self.client.set(self.result_key(key), body, ex=self.ttl_seconds)
        except CLIENT_ERRORS as error:
            self._failed("put", error)
            return
        self._succeeded()

    def claim(self, key: str) -> str | None:
        if not self._available():
            return ""
        token = secrets.token_hex(8)
        try:
            claimed = self.client.set(self.claim_key(key), token, nx=True, px=self.claim_ttl_ms)
        except CLIENT_ERRORS as error:
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
        store = body is not None and len(body) <= self.max_entry_bytes
        try:
            client = self.client
            self._put_and_release_script(client)(
                keys=[self.result_key(key), self.claim_key(key)],
                args=[token, "1" if store else "0", body if store else b"", self.ttl_seconds],
                client=client,
            )
        except CLIENT_ERRORS as error:
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
        except CLIENT_ERRORS as error:
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
            ping_every_shard(self.client)
        except CLIENT_ERRORS as error:
            self._failed("ping", error)
            return f"redis unreachable ({self.last_error})"
        self._succeeded()
        return None
