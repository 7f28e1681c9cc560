"""The Redis store: response bodies shared by every worker and replica, with a TTL.

One server or a Redis Cluster, as REDIS_URL says (service/store/redis_connect.py). Keys follow
service/store/keys.py: a result and its claim share a hash slot, so the one script that stores
a result and drops its claim runs on one shard, on a single server and a cluster alike. One
connection pool per process, socket and connect timeouts of `timeout_seconds`, no client-side
retries. A failing Redis (or cluster shard) costs at most one short timeout, after which it is
skipped for a back-off interval that doubles on each consecutive failure (from `backoff_min`
up to `backoff_max` seconds, service/store/breaker.py) and then tried again, so caching resumes
by itself. On a cluster the other shards keep serving meanwhile.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import TypeVar

import redis

from service.store.breaker import Breaker
from service.store.keys import KeyLayout
from service.store.redis_connect import CLIENT_ERRORS, Client, LazyClient, ping_every_shard

T = TypeVar("T")


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
    first success resets it. On a cluster each shard has its own back-off, so a shard that is
    down costs only the keys it holds; failures that name no shard (the cluster cannot be
    reached at all) skip every shard.
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
        self._connection = LazyClient(
            url, timeout_seconds=timeout_seconds, max_connections=max_connections
        )
        self._scripts_of: Client | None = None
        # shard name ("" for a single server, and for failures that name no shard) -> breaker
        self._breakers: dict[str, Breaker] = {"": Breaker(backoff_min, backoff_max)}
        self._breakers_lock = threading.Lock()
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

    # -- the circuit breakers ------------------------------------------------------------

    def _shard(self, redis_key: str | None) -> str:
        """The name of the cluster node holding `redis_key`'s slot; "" for a single server."""
        client = self._connection.built()
        if redis_key is None or not isinstance(client, redis.RedisCluster):
            return ""
        try:
            return client.get_node_from_key(redis_key).name
        except CLIENT_ERRORS:
            return ""

    def _breaker(self, redis_key: str | None) -> Breaker:
        shard = self._shard(redis_key)
        breaker = self._breakers.get(shard)
        if breaker is None:
            with self._breakers_lock:
                breaker = self._breakers.setdefault(
                    shard, Breaker(self.backoff_min, self.backoff_max))
        return breaker

    def _available(self, redis_key: str | None = None) -> bool:
        return self._breakers[""].available() and self._breaker(redis_key).available()

    def _failed(self, operation: str, error: Exception, redis_key: str | None = None) -> None:
        self._breaker(redis_key).failed(error)
        self.last_error = f"{type(error).__name__}: {error}"
        self.on_error(operation)

    def _succeeded(self, redis_key: str | None = None) -> None:
        self._breaker(redis_key).succeeded()
        self._breakers[""].succeeded()

    def _guarded(self, operation: str, redis_key: str, call: Callable[[], T], fallback: T) -> T:
        """`call()` behind its shard's breaker: `fallback` while that shard backs off or when
        the call fails (counted as `operation`), never an exception."""
        if not self._available(redis_key):
            return fallback
        try:
            answer = call()
        except CLIENT_ERRORS as error:
            self._failed(operation, error, redis_key)
            return fallback
        self._succeeded(redis_key)
        return answer

    # -- Store ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        result = self.result_key(key)
        return self._guarded("get", result, lambda: self.client.get(result), None)

    def put(self, key: str, body: bytes) -> None:
        if len(body) > self.max_entry_bytes:
            return
        result = self.result_key(key)
        self._guarded("put", result, lambda: self.client.set(result, body, ex=self.ttl_seconds),
                      None)

    # A claim shares its result's hash slot: the result key names the shard of both.

    def claim(self, key: str) -> str | None:
        token = secrets.token_hex(8)
        claimed = self._guarded(
            "claim", self.result_key(key),
            lambda: bool(self.client.set(self.claim_key(key), token, nx=True,
                                         px=self.claim_ttl_ms)),
            None,
        )
        if claimed is None:  # Redis unavailable: compute without a claim
            return ""
        return token if claimed else None

    def put_and_release(self, key: str, token: str, body: bytes | None) -> None:
        if not token:  # the claim was granted only because Redis was unavailable
            if body is not None:
                self.put(key, body)
            return
        result = self.result_key(key)
        store = body is not None and len(body) <= self.max_entry_bytes

        def store_and_release() -> None:
            client = self.client
            self._put_and_release_script(client)(
                keys=[result, self.claim_key(key)],
                args=[token, "1" if store else "0", body if store else b"", self.ttl_seconds],
                client=client,
            )

        self._guarded("put", result, store_and_release, None)

    def waiting(self, key: str) -> tuple[bytes | None, bool]:
        result = self.result_key(key)

        def body_and_claim() -> tuple[bytes | None, bool]:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.exists(self.claim_key(key))  # first: see Store.waiting
                pipe.get(result)
                claimed, body = pipe.execute()
            return body, bool(claimed)

        return self._guarded("wait", result, body_and_claim, (None, False))

    def get_graph(self, graph_id: str) -> bytes | None:
        key = self.keys.graph(graph_id)
        # GETEX (Redis 6.2): read and refresh the TTL in one round trip
        return self._guarded("get_graph", key,
                             lambda: self.client.getex(key, ex=self.graph_ttl_seconds), None)

    def put_graph(self, graph_id: str, body: bytes) -> None:
        key = self.keys.graph(graph_id)
        self._guarded("put_graph", key,
                      lambda: self.client.set(key, body, ex=self.graph_ttl_seconds), None)

    def unavailable_reason(self, *, probe: bool = True) -> str | None:
        # A probe asks Redis (every shard of a cluster) even while backing off: readiness
        # checks are rare, and a success ends the back-offs early. Without one, only a
        # back-off in force counts.
        if not probe:
            broken = [b.last_error for b in list(self._breakers.values()) if not b.available()]
            return f"redis unreachable ({broken[0]})" if broken else None
        try:
            ping_every_shard(self.client)
        except CLIENT_ERRORS as error:
            self.last_error = f"{type(error).__name__}: {error}"
            self.on_error("ping")
            if not isinstance(self._connection.built(), redis.RedisCluster):
                self._breakers[""].failed(error)  # one server: every key is on it
            return f"redis unreachable ({self.last_error})"
        for breaker in list(self._breakers.values()):
            breaker.succeeded()
        return None
