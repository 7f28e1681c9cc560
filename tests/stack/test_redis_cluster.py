"""The `redis_cluster` fixture (tests/cluster.py) is a real, whole Redis Cluster: three masters
sharing the slots, keys spread over them, a killed shard's keys unavailable while the others
answer, and the shard back after a restart. Checked with redis-py's cluster client directly.
"""

from __future__ import annotations

import time

import pytest
import redis

KEYS = [f"chainrule:test:{i}" for i in range(60)]


def _shard_of(cluster, client: redis.RedisCluster, key: str) -> int:
    node = client.get_node_from_key(key)
    return cluster.ports.index(node.port)


def test_the_cluster_is_whole_with_three_masters(redis_cluster):
    assert redis_cluster.url == "redis+cluster://" + ",".join(
        f"127.0.0.1:{port}" for port in redis_cluster.ports)
    assert [host for host, _ in redis_cluster.nodes] == ["127.0.0.1"] * 3
    for shard in range(3):
        info = redis_cluster.cluster_info(shard)
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == 16384
        assert int(info["cluster_size"]) == 3 and int(info["cluster_known_nodes"]) == 3


def test_keys_spread_over_every_shard_and_read_back(redis_cluster):
    with redis_cluster.client() as client:
        for i, key in enumerate(KEYS):
            client.set(key, i)
        assert [int(client.get(key)) for key in KEYS] == list(range(len(KEYS)))
        assert {_shard_of(redis_cluster, client, key) for key in KEYS} == {0, 1, 2}
        # one hash tag, one slot: what must live together can
        tagged = ["{graph:abc}:result", "{graph:abc}:claim"]
        assert len({client.keyslot(key) for key in tagged}) == 1


def test_a_killed_shard_loses_its_keys_only_and_comes_back_empty(redis_cluster):
    with redis_cluster.client(socket_timeout=0.5, socket_connect_timeout=0.5) as client:
        for i, key in enumerate(KEYS):
            client.set(key, i)
        shard_of = {key: _shard_of(redis_cluster, client, key) for key in KEYS}
    redis_cluster.kill(1)
    on_dead = [key for key in KEYS if shard_of[key] == 1]
    alive = [key for key in KEYS if shard_of[key] != 1]
    # the survivors mark the shard failed within the node timeout
    give_up = time.monotonic() + 15
    while int(redis_cluster.cluster_info(0)["cluster_slots_fail"]) == 0:
        assert time.monotonic() < give_up, "the killed shard was never marked failed"
        time.sleep(0.05)
    with redis_cluster.client(socket_timeout=0.5, socket_connect_timeout=0.5) as client:
        assert [int(client.get(key)) for key in alive] == [KEYS.index(k) for k in alive]
        with pytest.raises(redis.RedisError):
            client.get(on_dead[0])
    redis_cluster.start(1)
    assert redis_cluster.cluster_info(1)["cluster_state"] == "ok"
    with redis_cluster.client() as client:
        assert client.get(on_dead[0]) is None  # no persistence: the shard is back, empty
        client.set(on_dead[0], "again")
        assert client.get(on_dead[0]) == b"again"
        assert int(client.get(alive[0])) == KEYS.index(alive[0])
