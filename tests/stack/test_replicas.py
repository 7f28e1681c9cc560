"""Many replicas for real: scripts/stack-native --replicas 3 (nginx from Debian's package in
front of three `chainrule serve` replicas, one redis-server) driven over loopback HTTP.

Requests through nginx spread over every replica (each replica's own /metrics counts them),
a result computed on one replica is a hit on the others through Redis, request ids pass
through nginx, and a replica killed outright (SIGKILL to its process group, as a container
crash) under load costs no request: nginx replays every attempt that failed before a response
began on another replica (a response cut between a replica's headers and its body is sent
again by the client, as chainrule_client does), and the script starts the replica again as
compose's `restart: unless-stopped` would.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from deploy.native.ports import free_port_block

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = 3
COMPOSE_API_ENV = yaml.safe_load((ROOT / "docker-compose.yml").read_text())[
    "services"]["api"]["environment"]


@dataclass
class Stack:
    url: str
    replica_urls: list[str]
    replica_pids: list[int]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _graph(x: float) -> dict:
    """f = (x + y) * z, a result whose value the test knows: (x + 5) * -4."""
    return {"graph": {"nodes": [
        {"id": "x", "op": "input", "value": x}, {"id": "y", "op": "input", "value": 5},
        {"id": "z", "op": "input", "value": -4}, {"id": "q", "op": "add", "inputs": ["x", "y"]},
        {"id": "f", "op": "mul", "inputs": ["q", "z"]}], "output": "f"}}


def _wait_for(predicate, seconds: float, what: str, log: Path) -> None:
    give_up = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > give_up:
            pytest.fail(f"{what}; stack log:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)


def _answers(url: str, path: str = "/healthz") -> bool:
    try:
        return httpx.get(url + path, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def native_stack(log: Path, port: int, redis_port: int, *options: str,
                 start_seconds: float = 60) -> Iterator[Stack]:
    """scripts/stack-native with REPLICAS replicas behind nginx on `port`, once every replica
    and nginx answer /readyz; stopped by SIGTERM after, which must end it cleanly."""
    # append mode: nginx reopens /dev/stdout with O_APPEND, the api writes through this one
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "stack-native"), "--port", str(port),
             "--replicas", str(REPLICAS), "--redis-port", str(redis_port), *options],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    try:
        _wait_for(lambda: "redis at" in log.read_text(errors="replace"), start_seconds,
                  "stack-native did not start", log)
        pids = [int(p) for p in re.findall(r"^replica \d+ on \S+ \(pid (\d+)\)$",
                                           log.read_text(errors="replace"), re.M)]
        stack = Stack(f"http://127.0.0.1:{port}",
                      [f"http://127.0.0.1:{port + i}" for i in range(1, REPLICAS + 1)],
                      pids, log)
        for url in [*stack.replica_urls, stack.url]:
            _wait_for(lambda url=url: _answers(url, "/readyz"), 60, f"{url} never ready", log)
        yield stack
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    log = tmp_path_factory.mktemp("replicas") / "stack.log"
    port = free_port_block(REPLICAS + 1)
    redis_port = free_port_block(1)
    with native_stack(log, port, redis_port) as stack:
        yield stack


def _requests_counted(replica_url: str, route: str) -> float:
    text = httpx.get(replica_url + "/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "chainrule_http_requests" for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("route") == route)


def test_requests_through_nginx_spread_over_every_replica(stack):
    before = [_requests_counted(url, "/healthz") for url in stack.replica_urls]
    with httpx.Client(base_url=stack.url, timeout=5) as client:
        assert all(client.get("/healthz").status_code == 200 for _ in range(30))
    after = [_requests_counted(url, "/healthz") for url in stack.replica_urls]
    served = [b - a for a, b in zip(before, after, strict=True)]
    assert sum(served) == 30
    assert all(count > 0 for count in served), served


def test_a_result_computed_on_one_replica_is_a_hit_on_the_others(stack):
    body = _graph(float(uuid.uuid4().int % 10_000))
    first = httpx.post(stack.replica_urls[0] + "/v1/gradients", json=body, timeout=10)
    assert (first.status_code, first.headers["X-Cache"]) == (200, "miss")
    digest = first.json()["hash"]
    for url in stack.replica_urls[1:]:
        again = httpx.post(url + "/v1/gradients", json=body, timeout=10)
        assert (again.status_code, again.headers["X-Cache"]) == (200, "hit")
        assert again.json()["value"] == first.json()["value"]
        stored = httpx.get(f"{url}/v1/results/{digest}", timeout=10)
        assert stored.status_code == 200 and stored.json()["cached"] is True
    through_lb = httpx.post(stack.url + "/v1/gradients", json=body, timeout=10)
    assert (through_lb.status_code, through_lb.headers["X-Cache"]) == (200, "hit")


def test_a_body_larger_than_nginx_memory_buffer_goes_through(stack):
    # nginx spools it to a temporary file under its prefix before picking a replica
    body = {"graph": {"nodes": [{"id": "x", "op": "input", "value": [0.5] * 400_000},
                                {"id": "s", "op": "sum", "inputs": ["x"]}], "output": "s"},
            "wrt": ["s"]}
    answer = httpx.post(stack.url + "/v1/gradients", json=body, timeout=30)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["value"] == 200_000.0


def test_request_ids_pass_through_nginx(stack):
    chosen = f"replicas-test-{uuid.uuid4().hex}"
    answered = httpx.get(stack.url + "/healthz", headers={"X-Request-ID": chosen}, timeout=5)
    assert answered.headers["X-Request-ID"] == chosen
    # without one, nginx makes the id and both log lines carry it
    minted = httpx.get(stack.url + "/healthz", timeout=5).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", minted)

    def both_logged() -> bool:
        loggers = {entry.get("logger") for entry in _log_entries(stack)
                   if entry.get("request_id") == minted}
        return loggers == {"nginx", "gunicorn.access"}

    _wait_for(both_logged, 10, "the request id was not in nginx's and the api's logs",
              stack.log)


def _log_entries(stack: Stack) -> list[dict]:
    entries = []
    for line in stack.log_text().splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a concurrent writer
    return entries


def _post_as_the_sdk_does(client: httpx.Client, body: dict, cut: list[str]) -> httpx.Response:
    """POST; a response cut off after it began is sent again once, as chainrule_client does
    (POSTs are pure). nginx replays every failure before a response begins, but not a replica
    dying between writing its headers and its body: that one is the client's to retry."""
    try:
        return client.post("/v1/gradients", json=body)
    except httpx.RemoteProtocolError as error:
        cut.append(str(error))
        return client.post("/v1/gradients", json=body)


def test_a_replica_killed_under_load_costs_no_request(stack):
    victim = 1
    outcomes: list[tuple[int, float | None, float]] = []
    cut: list[str] = []
    done = threading.Event()
    counter = itertools.count()

    def load() -> None:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            while not done.is_set():
                # half repeats (cache hits), half fresh misses that compute
                fresh = next(counter) % 2 == 0
                x = float(uuid.uuid4().int % 100_000) if fresh else 1.0
                try:
                    answer = _post_as_the_sdk_does(client, _graph(x), cut)
                    value = answer.json().get("value") if answer.status_code == 200 else None
                    outcomes.append((answer.status_code, value, (x + 5) * -4))
                except httpx.HTTPError as error:
                    outcomes.append((-1, None, 0.0))
                    print("transport error:", error)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: len(outcomes) >= 40, 60, "no load went through", stack.log)
        os.killpg(stack.replica_pids[victim], signal.SIGKILL)
        killed_at = len(outcomes)
        _wait_for(lambda: len(outcomes) >= killed_at + 120, 120, "load stalled after the kill",
                  stack.log)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
    # at most one response being written per worker of the victim when it died
    assert len(cut) <= int(COMPOSE_API_ENV["WEB_CONCURRENCY"]), cut
    statuses = Counter(status for status, _, _ in outcomes)
    assert statuses == {200: len(outcomes)}, f"{statuses}\n{stack.log_text()[-3000:]}"
    assert all(value == expected for _, value, expected in outcomes)
    # the kill was felt: nginx found the victim gone (cut off, or refusing while the stack
    # waits a second before restarting it) and answered from another replica
    victim_address = stack.replica_urls[victim].removeprefix("http://")
    replayed = [entry for entry in _log_entries(stack) if entry.get("logger") == "nginx"
                and entry["upstream"].startswith(victim_address + ", ")]
    assert replayed, f"no request met the killed replica\n{stack.log_text()[-3000:]}"
    # the stack starts the replica again, and it serves on its port
    _wait_for(lambda: "replica 2 exited" in stack.log_text(), 30, "replica 2 not restarted",
              stack.log)
    _wait_for(lambda: _answers(stack.replica_urls[victim]), 60, "replica 2 did not come back",
              stack.log)


def test_a_killed_redis_costs_no_request_and_is_started_again(stack):
    pid = int(re.search(r"^redis at \S+ \(pid (\d+)\)$", stack.log_text(), re.M).group(1))
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: "redis-server exited" in stack.log_text(), 30, "redis death not seen",
              stack.log)
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        # answered while Redis is down or coming back: computed, at worst not stored
        for x in (11.0, 12.0, 13.0):
            answer = client.post("/v1/gradients", json=_graph(x))
            assert (answer.status_code, answer.json()["value"]) == (200, (x + 5) * -4)
        _wait_for(lambda: "redis-server restarted" in stack.log_text(), 30,
                  "redis-server not restarted", stack.log)
        for url in stack.replica_urls:
            _wait_for(lambda url=url: _answers(url, "/readyz"), 30, f"{url} not ready again",
                      stack.log)
        # the new redis-server is the store again: a result computed once is a hit after
        body = _graph(float(uuid.uuid4().int % 100_000))
        assert client.post("/v1/gradients", json=body).headers["X-Cache"] == "miss"
        assert client.post("/v1/gradients", json=body).headers["X-Cache"] == "hit"


@pytest.mark.timeout(120)
def test_stack_native_starts_a_redis_cluster_of_three_masters_for_the_api(tmp_path):
    port = free_port_block(2)
    redis_port = free_port_block(3, offset=10000)
    log = tmp_path / "stack.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "stack-native"), "--port", str(port),
             "--redis-port", str(redis_port), "--redis-cluster"],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    nodes = [f"127.0.0.1:{redis_port + i}" for i in range(3)]
    try:
        _wait_for(lambda: "redis at" in log.read_text(errors="replace"), 60,
                  "stack-native did not start", log)
        assert f"redis at redis+cluster://{','.join(nodes)}" in log.read_text()
        with redis.RedisCluster(host="127.0.0.1", port=redis_port) as cluster:
            assert cluster.cluster_info()["cluster_state"] == "ok"
            masters = [n for n in cluster.get_nodes() if n.server_type == "primary"]
            assert sorted(n.name for n in masters) == nodes
            # configured as compose's redis: a bounded LRU cache on every shard
            for node in masters:
                policy = cluster.config_get("maxmemory-policy", target_nodes=node)
                assert policy["maxmemory-policy"] == "allkeys-lru"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    for node in nodes:  # every shard stopped with the stack
        with pytest.raises(redis.ConnectionError), \
                redis.Redis(port=int(node.split(":")[1]), retry=None) as gone:
            gone.ping()
