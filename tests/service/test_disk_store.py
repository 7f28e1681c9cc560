"""The embedded store (diskcache in a directory): shared by every process that opens the
directory, bounded in bytes with least-recently-used eviction, expiring, surviving a reopen,
claims exclusive across processes, registered graphs refreshed on use."""

from __future__ import annotations

import multiprocessing
import time

from engine import ENGINE_VERSION
from service.store import DiskStore


def disk_store(directory, **overrides) -> DiskStore:
    settings = dict(engine_version=ENGINE_VERSION, max_bytes=1_000_000, max_entry_bytes=64_000,
                    ttl_seconds=60, claim_ttl_seconds=5)
    settings.update(overrides)
    return DiskStore(directory, **settings)


def test_two_openers_of_one_directory_share_bodies_and_claims(tmp_path):
    first, second = disk_store(tmp_path), disk_store(tmp_path)
    first.put("a", b"body of a")
    assert second.get("a") == b"body of a"
    token = second.claim("b")
    assert token and first.claim("b") is None
    assert first.waiting("b") == (None, True)
    second.put_and_release("b", token, b"body of b")
    assert first.waiting("b") == (b"body of b", False)
    assert first.claim("b")  # released: claimable again


def test_a_release_with_a_stale_token_keeps_the_new_owner_claim(tmp_path):
    store = disk_store(tmp_path)
    token = store.claim("k")
    store.put_and_release("k", "not-" + token, b"late body")
    assert store.waiting("k") == (b"late body", True)


def test_bodies_survive_reopening_the_directory(tmp_path):
    store = disk_store(tmp_path)
    store.put("kept", b"still here")
    store.close()
    assert disk_store(tmp_path).get("kept") == b"still here"


def test_keys_carry_the_engine_version(tmp_path):
    disk_store(tmp_path, engine_version="0-old").put("h", b"old engine")
    assert disk_store(tmp_path).get("h") is None


def test_entries_over_the_entry_limit_are_not_kept(tmp_path):
    store = disk_store(tmp_path, max_entry_bytes=10)
    store.put("big", b"x" * 11)
    assert store.get("big") is None
    store.put_and_release("big", store.claim("big"), b"x" * 11)
    assert store.waiting("big") == (None, False)


def test_entries_expire(tmp_path):
    store = disk_store(tmp_path, ttl_seconds=0.05, claim_ttl_seconds=0.05)
    store.put("short", b"lived")
    assert store.claim("owner")
    time.sleep(0.1)
    assert store.get("short") is None
    assert store.waiting("owner") == (None, False)  # a crashed owner's claim lapses


def test_the_size_limit_evicts_the_least_recently_used(tmp_path):
    # bodies of 40 KB are kept in files, so their bytes count exactly toward the limit;
    # diskcache evicts (up to) ten of the least recently used at a time once over it
    store = disk_store(tmp_path, max_bytes=1_200_000)
    body = b"z" * 40_000
    store.put("first", body)
    for i in range(100):
        store.put(f"filler-{i}", body)
        store.get("first")  # kept in use: never the least recently used
    assert store.cache.volume() <= 1_200_000 + 200_000  # the database's own pages on top
    assert store.get("first") == body
    assert store.get("filler-0") is None  # the oldest unused went first
    assert store.get("filler-99") == body


def test_registered_graphs_are_refreshed_when_read(tmp_path):
    store = disk_store(tmp_path, graph_ttl_seconds=0.3)
    store.put_graph("g1", b"graph record")
    for _ in range(3):
        time.sleep(0.15)
        assert store.get_graph("g1") == b"graph record"  # each read restarts its TTL
    time.sleep(0.35)
    assert store.get_graph("g1") is None


def _claim_in_child(directory: str, key: str, results) -> None:
    results.put(disk_store(directory).claim(key))


def test_claims_are_exclusive_across_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    children = [context.Process(target=_claim_in_child, args=(str(tmp_path), "one", results))
                for _ in range(4)]
    for child in children:
        child.start()
    tokens = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
    assert sum(1 for token in tokens if token) == 1 and tokens.count(None) == 3


def test_readiness_names_the_directory(tmp_path):
    store = disk_store(tmp_path)
    assert store.unavailable_reason() is None
    store.cache.close()
    (tmp_path / "cache.db").unlink()
    (tmp_path / "cache.db").mkdir()  # the database is now a directory: SQLite cannot open it
    reason = store.unavailable_reason()
    assert reason is not None and str(tmp_path) in reason
    assert store.get("anything") is None  # a broken store reads as a miss, never raises
