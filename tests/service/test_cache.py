"""The result cache backends and single flight, against a real redis-server, a real Redis
Cluster and the embedded store in a temporary directory."""

from __future__ import annotations

import threading
import time

import pytest

from service.store import (
    DiskStore,
    MemoryStore,
    NearCachedStore,
    RedisStore,
    Unstored,
    fetch_or_compute,
)
from tests.service.stores import STORE_KINDS, store_of_kind

FAR = 60.0  # seconds: a wait_until nobody reaches in these tests


def redis_cache(server, errors: list[str] | None = None, **overrides) -> RedisStore:
    settings = dict(
        engine_version="test",
        ttl_seconds=60,
        max_entry_bytes=1024,
        timeout_seconds=0.2,
        claim_ttl_seconds=5,
        backoff_min=0.01,
        backoff_max=0.05,
    )
    settings.update(overrides)
    on_error = errors.append if errors is not None else (lambda operation: None)
    return RedisStore(server.url, on_error=on_error, **settings)


@pytest.fixture
def cache(redis_server):
    cache = redis_cache(redis_server)
    yield cache
    cache.close()


# ---------------------------------------------------------------- in process


def test_memory_cache_evicts_least_recently_used_by_bytes():
    cache = MemoryStore(max_bytes=300, max_entry_bytes=200, ttl_seconds=60)
    cache.put("a", b"x" * 100)
    cache.put("b", b"y" * 100)
    assert cache.get("a") == b"x" * 100  # now b is the least recently used
    cache.put("c", b"z" * 100)
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    assert cache.size_bytes <= 300


def test_memory_cache_skips_entries_over_the_entry_limit():
    cache = MemoryStore(max_bytes=10_000, max_entry_bytes=10, ttl_seconds=60)
    cache.put("big", b"x" * 11)
    assert cache.get("big") is None and len(cache) == 0


def test_memory_cache_replacing_a_key_keeps_the_byte_count():
    cache = MemoryStore(max_bytes=10_000, max_entry_bytes=1000, ttl_seconds=60)
    cache.put("k", b"x" * 100)
    cache.put("k", b"y" * 50)
    assert cache.size_bytes == 51 and cache.get("k") == b"y" * 50


def test_memory_cache_entries_expire():
    cache = MemoryStore(max_bytes=10_000, max_entry_bytes=1000, ttl_seconds=0.01)
    cache.put("k", b"v")
    time.sleep(0.02)
    assert cache.get("k") is None and cache.size_bytes == 0


def test_memory_cache_claims_are_exclusive_until_released():
    cache = MemoryStore(max_bytes=10_000, max_entry_bytes=1000, ttl_seconds=60)
    token = cache.claim("k")
    assert token and cache.claim("k") is None
    assert cache.waiting("k") == (None, True)
    cache.put_and_release("k", token, b"body")
    assert cache.waiting("k") == (b"body", False)
    assert cache.claim("k")


# ---------------------------------------------------------------- redis


def test_redis_cache_stores_under_the_engine_versioned_prefix_with_a_ttl(cache, redis_server):
    cache.put("abc", b"body")
    assert cache.get("abc") == b"body"
    with redis_server.client() as raw:
        assert raw.get("chainrule:vtest:{abc}:result") == b"body"
        assert 0 < raw.ttl("chainrule:vtest:{abc}:result") <= 60


def test_redis_cache_skips_entries_over_the_entry_limit(cache):
    cache.put("big", b"x" * 1025)
    assert cache.get("big") is None


def test_redis_claim_is_exclusive_and_released_only_by_its_owner(cache, redis_server):
    token = cache.claim("k")
    assert token and cache.claim("k") is None
    cache.put_and_release("k", "not-the-token", None)
    assert cache.waiting("k") == (None, True)
    cache.put_and_release("k", token, b"done")
    assert cache.waiting("k") == (b"done", False)
    with redis_server.client() as raw:
        assert raw.exists("chainrule:vtest:{k}:claim") == 0


def test_redis_claim_expires(redis_server):
    cache = redis_cache(redis_server, claim_ttl_seconds=0.05)
    try:
        assert cache.claim("k")
        time.sleep(0.1)
        assert cache.claim("k")
    finally:
        cache.close()


def test_a_dead_redis_reads_as_misses_backs_off_and_recovers(redis_server):
    errors: list[str] = []
    cache = redis_cache(redis_server, errors)
    try:
        cache.put("k", b"v")
        redis_server.stop()
        assert cache.get("k") is None
        assert errors == ["get"]
        # Within the back-off the backend is not even tried: no new error is counted.
        assert cache.get("k") is None and cache.claim("k") == ""
        assert errors == ["get"]
        assert "redis unreachable" in cache.unavailable_reason()

        redis_server.start()
        deadline = time.monotonic() + 5
        while cache.unavailable_reason() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cache.unavailable_reason() is None
        cache.put("k", b"again")
        assert cache.get("k") == b"again"
    finally:
        cache.close()


def test_the_back_off_grows_with_consecutive_failures(redis_server):
    cache = redis_cache(redis_server, backoff_min=0.01, backoff_max=1.0)
    try:
        redis_server.stop()
        backoffs = []
        breaker = cache._breakers[""]  # one server: one breaker
        for _ in range(4):
            breaker.skip_until = 0.0  # let the next call try again at once
            cache.get("k")
            backoffs.append(breaker.backoff)
        assert backoffs == [0.01, 0.02, 0.04, 0.08]
    finally:
        cache.close()


def test_a_dead_shard_is_skipped_alone(redis_cluster):
    # a back-off far longer than the test: still in force when the reason is read (the
    # helper's 50 ms could run out first on a loaded machine)
    cache = redis_cache(redis_cluster, timeout_seconds=0.5, backoff_min=60.0, backoff_max=60.0)
    try:
        keys = [f"k{i}" for i in range(30)]
        for key in keys:
            cache.put(key, b"v")
        client = cache.client
        on_dead = {key for key in keys
                   if client.get_node_from_key(cache.result_key(key)).port
                   == redis_cluster.ports[1]}
        assert 0 < len(on_dead) < len(keys)
        redis_cluster.kill(1)
        for _ in range(3):  # the dead shard's back-off never skips the live shards
            found = {key for key in keys if cache.get(key) == b"v"}
            assert found == set(keys) - on_dead
        assert "unreachable" in cache.unavailable_reason(probe=False)
    finally:
        cache.close()


# ---------------------------------------------------------------- near cache


def near_memory() -> MemoryStore:
    return MemoryStore(max_bytes=10_000, max_entry_bytes=1000, ttl_seconds=60)


def test_the_near_cache_fills_from_redis_and_writes_through(cache, redis_server):
    near = near_memory()
    tiered = NearCachedStore(near, cache)
    cache.put("shared", b"from redis")
    assert near.get("shared") is None
    assert tiered.get("shared") == b"from redis" and near.get("shared") == b"from redis"
    tiered.put("mine", b"written")
    assert cache.get("mine") == b"written" and near.get("mine") == b"written"
    token = tiered.claim("computed")
    tiered.put_and_release("computed", token, b"result")
    assert cache.get("computed") == b"result" and near.get("computed") == b"result"
    redis_server.stop()
    assert tiered.get("shared") == b"from redis"
    assert tiered.unavailable_reason() is not None


# ---------------------------------------------------------------- single flight


def disk_cache(directory, **overrides) -> DiskStore:
    settings = dict(engine_version="test", max_bytes=1_000_000, max_entry_bytes=1024,
                    ttl_seconds=60, claim_ttl_seconds=5)
    settings.update(overrides)
    return DiskStore(directory, **settings)


@pytest.fixture(params=STORE_KINDS)
def any_cache(request, tmp_path):
    yield from store_of_kind(
        request, tmp_path, near=near_memory, redis=redis_cache, disk=disk_cache
    )


def test_fetch_or_compute_misses_then_hits(any_cache):
    assert fetch_or_compute(any_cache, "k", lambda: b"v", wait_until=time.monotonic() + FAR) == (
        b"v",
        "miss",
    )
    assert fetch_or_compute(any_cache, "k", lambda: b"w", wait_until=time.monotonic() + FAR) == (
        b"v",
        "hit",
    )


def test_an_unstored_body_is_answered_and_its_claim_released(any_cache):
    far = time.monotonic() + FAR
    assert fetch_or_compute(any_cache, "k", lambda: Unstored(b"cut short"), wait_until=far) == (
        b"cut short", "miss")
    assert any_cache.get("k") is None
    assert any_cache.claim("k")  # nobody holds it: the next request computes at once
    assert fetch_or_compute(any_cache, "j", lambda: b"whole", wait_until=far) == (b"whole", "miss")


def test_concurrent_identical_misses_compute_once(any_cache):
    started = threading.Event()
    release = threading.Event()
    calls = []

    def slow_compute() -> bytes:
        calls.append(1)
        started.set()
        release.wait(10)
        return b"result"

    outcomes = []

    def request() -> None:
        outcomes.append(
            fetch_or_compute(any_cache, "k", slow_compute, wait_until=time.monotonic() + FAR)
        )

    owner = threading.Thread(target=request)
    owner.start()
    assert started.wait(10)
    waiters = [threading.Thread(target=request) for _ in range(4)]
    for thread in waiters:
        thread.start()
    time.sleep(0.05)  # let the waiters find the claim held
    release.set()
    for thread in [owner, *waiters]:
        thread.join(10)
    assert len(calls) == 1
    assert sorted(outcomes) == [(b"result", "hit")] * 4 + [(b"result", "miss")]


def test_a_failed_owner_releases_its_claim(any_cache):
    def broken() -> bytes:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fetch_or_compute(any_cache, "k", broken, wait_until=time.monotonic() + FAR)
    assert any_cache.waiting("k") == (None, False)
    assert fetch_or_compute(any_cache, "k", lambda: b"ok", wait_until=time.monotonic() + FAR) == (
        b"ok",
        "miss",
    )


def test_a_waiter_computes_itself_when_the_owner_is_too_slow(any_cache):
    token = any_cache.claim("k")  # an owner that never finishes
    assert token
    body, outcome = fetch_or_compute(
        any_cache, "k", lambda: b"mine", wait_until=time.monotonic() + 0.02
    )
    assert (body, outcome) == (b"mine", "miss")
    assert any_cache.waiting("k") == (b"mine", True)  # stored, and the owner's claim untouched


@pytest.fixture(params=["memory", "disk"])
def local_store(request, tmp_path):
    """The stores whose reads a test can step between: in process, and the embedded one."""
    if request.param == "memory":
        yield MemoryStore(max_bytes=1 << 20, max_entry_bytes=1 << 16, ttl_seconds=60)
        return
    store = DiskStore(tmp_path / "store", engine_version="test", max_bytes=1 << 20,
                      max_entry_bytes=1 << 16, ttl_seconds=60, claim_ttl_seconds=5)
    yield store
    store.close()


def test_a_waiter_never_finds_the_claim_gone_and_no_body(local_store, monkeypatch):
    """The owner finishes between a waiter's two reads: the waiter must see its body, or its
    claim still held; seeing neither, it would compute the result again."""
    token = local_store.claim("k")
    reads = []

    def finish_after_first_read(read):
        def stepped(*args, **kwargs):
            answer = read(*args, **kwargs)
            if not reads:
                reads.append(1)
                local_store.put_and_release("k", token, b"done")
            return answer
        return stepped

    backend = local_store.cache if isinstance(local_store, DiskStore) else None
    if backend is None:  # the memory store: its claim check, then its get
        monkeypatch.setattr(local_store, "get", finish_after_first_read(local_store.get))
    else:
        monkeypatch.setattr(backend, "get", finish_after_first_read(backend.get))
        monkeypatch.setattr(type(backend), "__contains__",
                            finish_after_first_read(type(backend).__contains__))
    body, claimed = local_store.waiting("k")
    assert reads == [1]
    assert body == b"done" or claimed
