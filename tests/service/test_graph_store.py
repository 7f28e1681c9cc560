"""Registered graphs in every store: put, get, TTL refreshed on use, expiry, no size limit.
Every store: in process, Redis, Redis Cluster, the embedded store, and the near cache over
Redis and over the embedded store."""

from __future__ import annotations

import time

import pytest

from service.store import DiskStore, KeyLayout, MemoryStore, RedisStore
from tests.service.stores import STORE_KINDS, store_of_kind

GRAPH_TTL = 2  # seconds (Redis TTLs are whole seconds; two leave room for a busy machine)
BIG = b"x" * 5000  # over every max_entry_bytes below: graphs are not bound by it


def memory_store() -> MemoryStore:
    return MemoryStore(
        max_bytes=100_000, max_entry_bytes=1000, ttl_seconds=60, graph_ttl_seconds=GRAPH_TTL
    )


def redis_store(server) -> RedisStore:
    return RedisStore(
        server.url, engine_version="test", ttl_seconds=60, graph_ttl_seconds=GRAPH_TTL,
        max_entry_bytes=1000, timeout_seconds=0.5, claim_ttl_seconds=5,
    )


def disk_store(directory) -> DiskStore:
    return DiskStore(
        directory, engine_version="test", max_bytes=1_000_000, max_entry_bytes=1000,
        ttl_seconds=60, graph_ttl_seconds=GRAPH_TTL, claim_ttl_seconds=5,
    )


@pytest.fixture(params=STORE_KINDS)
def store(request, tmp_path):
    yield from store_of_kind(
        request, tmp_path, near=memory_store, redis=redis_store, disk=disk_store
    )


def test_a_put_graph_is_read_back_whatever_its_size(store):
    assert store.get_graph("g1") is None
    store.put_graph("g1", BIG)
    store.put_graph("g1", BIG)  # idempotent
    assert store.get_graph("g1") == BIG
    assert store.get("g1") is None  # graphs and results do not share keys


def test_a_graph_expires_unless_used_and_each_use_refreshes_it(store):
    store.put_graph("used", b"record")
    store.put_graph("idle", b"record")
    deadline = time.monotonic() + 2.5 * GRAPH_TTL
    while time.monotonic() < deadline:
        assert store.get_graph("used") == b"record"
        time.sleep(GRAPH_TTL / 10)
    assert store.get_graph("idle") is None
    assert store.get_graph("used") == b"record"


def test_redis_keeps_a_graph_under_the_graph_key_with_the_graph_ttl(redis_server):
    store = redis_store(redis_server)
    store.put_graph("abc", b"record")
    key = KeyLayout("test").graph("abc")
    with redis_server.client() as raw:
        assert raw.get(key) == b"record"
        assert 0 < raw.ttl(key) <= GRAPH_TTL
    store.close()


def test_an_unreachable_redis_reads_as_no_graph(redis_server):
    store = redis_store(redis_server)
    store.put_graph("abc", b"record")
    redis_server.stop()
    assert store.get_graph("abc") is None
    store.put_graph("def", b"record")  # never raises
    assert store.unavailable_reason() is not None
    store.close()
