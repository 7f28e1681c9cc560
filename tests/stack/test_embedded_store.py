"""One server, four gunicorn workers, no Redis: the embedded store in CACHE_DIR (results and
registered graphs) is shared by every worker and outlives them. Also API keys and a rate
limit through real processes (the limit counted in a real redis-server, so it holds across
the workers).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.stack.test_replicas_cluster import slow_request
from tests.stack.test_stack import GunicornServer, graph_request


def worker_pids(server: GunicornServer) -> set[int]:
    master = server.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


def wait_for_workers(server: GunicornServer, count: int, other_than: set[int]) -> None:
    give_up = time.monotonic() + 60
    while True:
        pids = worker_pids(server)
        if len(pids) == count and not pids & other_than:
            return
        assert time.monotonic() < give_up, f"workers not replaced: {pids}\n{server.log_text()}"
        time.sleep(0.1)


@pytest.fixture
def embedded_server(tmp_path, fresh_cache_dir):
    server = GunicornServer(tmp_path, "", {"WEB_CONCURRENCY": "4"})
    server.start()
    yield server
    server.stop()


def concurrent_posts(url: str, body: dict, count: int) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    start = threading.Barrier(count)

    def send() -> None:
        with httpx.Client(timeout=60) as client:
            start.wait()
            answers.append(client.post(url + "/v1/gradients", json=body))

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


def test_every_worker_hits_what_one_computed_and_serves_its_graphs_after_they_all_restart(
    embedded_server, fresh_cache_dir
):
    body = graph_request(float(uuid.uuid4().int % 10_000))
    first = httpx.post(embedded_server.url + "/v1/gradients", json=body, timeout=30)
    assert (first.status_code, first.headers["X-Cache"]) == (200, "miss")
    digest = first.json()["hash"]
    assert (fresh_cache_dir / "cache.db").exists()
    registered = httpx.post(embedded_server.url + "/v1/graphs", json={"graph": body["graph"]},
                            timeout=30)
    assert registered.status_code == 201
    graph_id = registered.json()["id"]
    # concurrent repeats keep every worker busy at once: each answers from the shared store
    repeats = concurrent_posts(embedded_server.url, body, 8)
    assert [answer.headers["X-Cache"] for answer in repeats] == ["hit"] * 8
    # every worker dies (as if OOM-killed); gunicorn starts four new, empty processes.
    # The server answers once its first worker is up; gunicorn forks the others a random
    # fraction of a second apart, so wait for all four before killing them.
    wait_for_workers(embedded_server, 4, other_than=set())
    old = worker_pids(embedded_server)
    assert len(old) == 4
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    wait_for_workers(embedded_server, 4, other_than=old)
    with httpx.Client(base_url=embedded_server.url, timeout=30) as client:
        for _ in range(12):  # sync workers close each connection: any worker may answer
            again = client.post("/v1/gradients", json=body)
            assert (again.status_code, again.headers["X-Cache"]) == (200, "hit")
            stored = client.get(f"/v1/results/{digest}")
            assert stored.status_code == 200 and stored.json()["value"] == first.json()["value"]
            by_id = client.post(f"/v1/graphs/{graph_id}/gradients", json={})
            assert (by_id.status_code, by_id.json()["hash"]) == (200, digest)
        assert client.get("/readyz").json() == {"status": "ready", "cache": "embedded"}


def test_identical_slow_misses_on_four_workers_compute_once(embedded_server):
    answers = concurrent_posts(embedded_server.url, slow_request(uuid.uuid4().int % 1000), 8)
    assert [answer.status_code for answer in answers] == [200] * 8
    outcomes = sorted(answer.headers["X-Cache"] for answer in answers)
    assert outcomes == ["hit"] * 7 + ["miss"], outcomes


def test_keys_and_a_shared_rate_limit_through_gunicorn(tmp_path, redis_server):
    server = GunicornServer(tmp_path, redis_server.url, {
        "WEB_CONCURRENCY": "3", "API_KEYS": "alpha-key,beta-key", "RATE_LIMIT": "6/minute",
        "METRICS_TOKEN": "scraper", "REDIS_TIMEOUT_SECONDS": "1"})
    server.start()
    try:
        body = graph_request(1.0)
        refused = httpx.post(server.url + "/v1/gradients", json=body, timeout=30)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith(
            "Bearer")
        assert refused.json()["error"]["code"] == "unauthorized"
        assert httpx.get(server.url + "/metrics", timeout=30).status_code == 401
        scraped = httpx.get(server.url + "/metrics", timeout=30,
                            headers={"Authorization": "Bearer scraper"})
        assert scraped.status_code == 200
        alpha = {"Authorization": "Bearer alpha-key"}
        statuses = []
        for _ in range(8):  # new connection each time: spread over the three workers
            statuses.append(httpx.post(server.url + "/v1/gradients", json=body,
                                       headers=alpha, timeout=30))
        assert [answer.status_code for answer in statuses] == [200] * 6 + [429] * 2
        limited = statuses[-1]
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        beta = httpx.get(server.url + "/v1/ops", timeout=30,
                         headers={"Authorization": "Bearer beta-key"})
        assert beta.status_code == 200
        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
    finally:
        server.stop()
