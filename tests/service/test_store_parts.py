"""The store's parts: the key layout (Redis Cluster hash tags) and the one locked LRU."""

from __future__ import annotations

import re

from service.store import KeyLayout, LockedLRU

DIGEST = "ab" * 32


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes to place a key: the first {...} part."""
    return re.search(r"\{(.+?)\}", key).group(1)


def test_a_result_and_its_claim_share_a_cluster_slot():
    keys = KeyLayout("1")
    assert keys.result(DIGEST) == f"chainrule:v1:{{{DIGEST}}}:result"
    assert keys.claim(DIGEST) == f"chainrule:v1:{{{DIGEST}}}:claim"
    assert hash_tag(keys.result(DIGEST)) == hash_tag(keys.claim(DIGEST)) == DIGEST
    assert keys.graph(DIGEST) == f"chainrule:v1:{{{DIGEST}}}:graph"


def test_keys_of_another_engine_version_differ():
    assert KeyLayout("1").result(DIGEST) != KeyLayout("2").result(DIGEST)


def test_the_lru_evicts_the_least_recently_used_by_count():
    lru: LockedLRU[str, int] = LockedLRU(max_items=2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # b is now the least recently used
    lru.put("c", 3)
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3


def test_the_lru_bounds_the_total_cost_and_refuses_what_alone_exceeds_it():
    lru: LockedLRU[str, bytes] = LockedLRU(max_cost=10, cost=lambda key, value: len(value))
    assert lru.put("a", b"x" * 6) and lru.put("b", b"y" * 4)
    assert lru.cost == 10
    lru.put("c", b"z")
    assert lru.get("a") is None and lru.cost == 5
    assert lru.put("huge", b"w" * 11) is False and lru.get("huge") is None and lru.cost == 5


def test_replacing_a_key_counts_its_cost_once():
    lru: LockedLRU[str, bytes] = LockedLRU(max_cost=100, cost=lambda key, value: len(value))
    lru.put("k", b"x" * 40)
    lru.put("k", b"y" * 10)
    assert lru.cost == 10 and len(lru) == 1 and lru.pop("k") == b"y" * 10 and lru.cost == 0
