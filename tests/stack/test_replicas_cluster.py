"""Many replicas over a Redis Cluster, for real: scripts/stack-native --replicas 3
--redis-cluster (nginx in front of three `chainrule serve` replicas of four workers each, a
Redis Cluster of three masters joined by `redis-cli --cluster create`).

A result computed on one replica is a hit on every other, and GET /v1/results finds it there;
a graph registered on one replica is shown and computed by every other;
twelve concurrent identical slow requests spread over the three replicas compute once; a
replica killed under load through nginx costs no request; a shard killed outright leaves every
replica answering (computing what the lost shard held) and /readyz naming the shard.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from deploy.native.ports import free_port_block
from tests.stack.test_replicas import (
    REPLICAS,
    Stack,
    _graph,
    native_stack,
)
from tests.stack.test_replicas import (
    test_a_replica_killed_under_load_costs_no_request as replica_killed_under_load,
)


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory) -> Iterator[Stack]:
    log = tmp_path_factory.mktemp("replicas-cluster") / "stack.log"
    port = free_port_block(REPLICAS + 1)
    redis_port = free_port_block(3, offset=10000)  # the cluster bus listens 10000 above
    with native_stack(log, port, redis_port, "--redis-cluster", start_seconds=90) as stack:
        text = log.read_text(errors="replace")
        assert "redis at redis+cluster://" in text
        stack.shard_ports = [redis_port + i for i in range(3)]
        yield stack


def slow_request(seed: float) -> dict:
    """About 0.3 s of matrix products: a 400 x 400 matrix grown from 800 numbers by
    broadcasting, through four matmul + tanh layers, and the gradient back."""
    n = 400
    nodes = [{"id": "a", "op": "input", "value": [[seed + i / n] for i in range(n)]},
             {"id": "b", "op": "input", "value": [[(i % 7) / 7 for i in range(n)]]},
             {"id": "z0", "op": "add", "inputs": ["a", "b"]}]
    for k in range(1, 5):
        nodes.append({"id": f"m{k}", "op": "matmul", "inputs": [f"z{k - 1}", f"z{k - 1}"]})
        nodes.append({"id": f"z{k}", "op": "tanh", "inputs": [f"m{k}"]})
    nodes.append({"id": "s", "op": "sum", "inputs": ["z4"]})
    return {"graph": {"nodes": nodes, "output": "s"}, "wrt": ["a"]}


def test_a_result_is_a_hit_and_a_stored_result_on_every_replica(cluster_stack):
    body = _graph(float(uuid.uuid4().int % 10_000))
    first = httpx.post(cluster_stack.replica_urls[0] + "/v1/gradients", json=body, timeout=10)
    assert (first.status_code, first.headers["X-Cache"]) == (200, "miss")
    digest = first.json()["hash"]
    for url in cluster_stack.replica_urls[1:]:
        again = httpx.post(url + "/v1/gradients", json=body, timeout=10)
        assert (again.status_code, again.headers["X-Cache"]) == (200, "hit")
        stored = httpx.get(f"{url}/v1/results/{digest}", timeout=10)
        assert stored.status_code == 200 and stored.json()["value"] == first.json()["value"]
    through_lb = httpx.post(cluster_stack.url + "/v1/gradients", json=body, timeout=10)
    assert (through_lb.status_code, through_lb.headers["X-Cache"]) == (200, "hit")


def test_a_graph_registered_on_one_replica_serves_on_every_replica(cluster_stack):
    graph = _graph(float(uuid.uuid4().int % 10_000))["graph"]
    registered = httpx.post(cluster_stack.replica_urls[0] + "/v1/graphs", json={"graph": graph},
                            timeout=10)
    assert registered.status_code == 201, registered.text
    graph_id = registered.json()["id"]
    inline = httpx.post(cluster_stack.replica_urls[0] + "/v1/gradients", json={"graph": graph},
                        timeout=10).json()
    for url in [*cluster_stack.replica_urls[1:], cluster_stack.url]:
        shown = httpx.get(f"{url}/v1/graphs/{graph_id}", timeout=10)
        assert shown.status_code == 200
        by_id = httpx.post(f"{url}/v1/graphs/{graph_id}/gradients", json={}, timeout=10)
        assert by_id.status_code == 200, by_id.text
        assert (by_id.json()["hash"], by_id.json()["value"]) == (inline["hash"], inline["value"])


def test_twelve_identical_slow_misses_over_three_replicas_compute_once(cluster_stack):
    body = slow_request(float(uuid.uuid4().int % 10_000))
    answers: list[httpx.Response] = []
    start = threading.Barrier(12)

    def send(url: str) -> None:
        with httpx.Client(timeout=60) as client:
            start.wait()
            answers.append(client.post(url + "/v1/gradients", json=body))

    threads = [threading.Thread(target=send, args=(cluster_stack.replica_urls[i % 3],))
               for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [answer.status_code for answer in answers] == [200] * 12
    outcomes = sorted(answer.headers["X-Cache"] for answer in answers)
    assert outcomes == ["hit"] * 11 + ["miss"], outcomes
    assert len({answer.json()["value"] for answer in answers}) == 1


def test_a_replica_killed_under_load_through_nginx_costs_no_request(cluster_stack):
    replica_killed_under_load(cluster_stack)


def test_a_killed_shard_leaves_every_replica_answering(cluster_stack):
    # last in the module: the shard stays down
    victim = cluster_stack.shard_ports[1]
    with redis.Redis(port=victim, socket_timeout=2) as shard:
        pid = shard.info("server")["process_id"]
    os.kill(pid, signal.SIGKILL)
    bodies = [_graph(float(uuid.uuid4().int % 100_000)) for _ in range(9)]
    for url in [*cluster_stack.replica_urls, cluster_stack.url]:
        for body in bodies:
            answer = httpx.post(url + "/v1/gradients", json=body, timeout=10)
            expected = (body["graph"]["nodes"][0]["value"] + 5) * -4
            assert (answer.status_code, answer.json()["value"]) == (200, expected)
    for url in cluster_stack.replica_urls:
        not_ready = httpx.get(url + "/readyz", timeout=10)
        assert not_ready.status_code == 503
        assert f":{victim}" in not_ready.json()["error"]["message"]
