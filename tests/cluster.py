"""The `redis_cluster` fixture: a real Redis Cluster of three masters on loopback ports.

Registered for every test by tests/conftest.py. The fixture value (RedisClusterProcesses,
deploy/native/redis_cluster.py, also used by scripts/stack-native --redis-cluster) offers:

    .url            "redis+cluster://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3", the api's REDIS_URL
    .nodes          [("127.0.0.1", p1), ...]
    .kill(i)        SIGKILL shard i (0-based): its slots' keys become unavailable, the other
                    shards keep answering (cluster-require-full-coverage no: it is a cache)
    .start(i)       start shard i again on its port, empty; returns once the cluster is whole
    .client()       a redis.RedisCluster over the nodes
    .cluster_info(i) CLUSTER INFO as shard i sees it

Failure detection takes about a second (cluster-node-timeout 1000 ms).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.native.redis_cluster import RedisClusterProcesses


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterProcesses]:
    cluster = RedisClusterProcesses(tmp_path / "redis-cluster")
    try:
        cluster.launch()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        cluster.stop()
        pytest.fail(f"Redis Cluster did not start: {error}")
    yield cluster
    cluster.stop()
