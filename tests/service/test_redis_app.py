"""The app with the Redis result cache, against a real redis-server that also goes away."""

from __future__ import annotations

import logging
import runpy
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine import ENGINE_VERSION

GUNICORN_CONF = Path(__file__).resolve().parents[2] / "service" / "gunicorn.conf.py"


def hash_of(response) -> str:
    return response.headers["ETag"].strip('"')


def test_a_result_is_stored_under_the_versioned_prefix(app_with_redis, redis_server, circuit):
    client = app_with_redis.test_client()
    miss = client.post("/v1/gradients", json=circuit)
    assert miss.headers["X-Cache"] == "miss"
    with redis_server.client() as raw:
        stored = raw.get(f"chainrule:v{ENGINE_VERSION}:{{{hash_of(miss)}}}:result")
        assert stored == miss.data
        assert 0 < raw.ttl(f"chainrule:v{ENGINE_VERSION}:{{{hash_of(miss)}}}:result") <= 3600
        assert raw.keys("*claim*") == []
    hit = client.post("/v1/gradients", json=circuit)
    assert hit.headers["X-Cache"] == "hit"
    assert client.get(f"/v1/results/{hash_of(miss)}").status_code == 200


def test_hits_are_shared_between_apps(app_with_redis, make_app, redis_server, circuit):
    first = app_with_redis.test_client().post("/v1/gradients", json=circuit)
    other = make_app({"REDIS_URL": redis_server.url}).test_client()
    second = other.post("/v1/gradients", json=circuit)
    assert second.headers["X-Cache"] == "hit" and hash_of(second) == hash_of(first)


@pytest.mark.parametrize("redis_app_config", [{"CACHE_MAX_ENTRY_BYTES": 100}])
def test_a_body_over_the_entry_limit_is_not_stored(app_with_redis, circuit):
    client = app_with_redis.test_client()
    assert client.post("/v1/gradients", json=circuit).headers["X-Cache"] == "miss"
    assert client.post("/v1/gradients", json=circuit).headers["X-Cache"] == "miss"


def test_requests_are_answered_while_redis_is_down_and_caching_resumes(
    app_with_redis, make_app, redis_server, circuit
):
    client = app_with_redis.test_client()
    redis_server.stop()
    for x in range(5):
        response = client.post("/v1/gradients", json={**circuit, "inputs": {"x": x}})
        assert response.status_code == 200 and response.headers["X-Cache"] == "miss"
    assert client.get("/readyz").status_code == 503
    lookup = client.get("/v1/results/" + "0" * 64)
    assert lookup.status_code == 404 and "unreachable" in lookup.get_json()["error"]["message"]

    redis_server.start()
    give_up = time.monotonic() + 10
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < give_up, "the cache did not come back"
        time.sleep(0.05)
    miss = client.post("/v1/gradients", json=circuit)
    with redis_server.client() as raw:
        assert raw.exists(f"chainrule:v{ENGINE_VERSION}:{{{hash_of(miss)}}}:result")
    other = make_app({"REDIS_URL": redis_server.url}).test_client()
    assert other.post("/v1/gradients", json=circuit).headers["X-Cache"] == "hit"


def test_the_near_cache_keeps_serving_hits_without_redis(app_with_redis, redis_server, circuit):
    client = app_with_redis.test_client()
    client.post("/v1/gradients", json=circuit)
    redis_server.stop()
    assert client.post("/v1/gradients", json=circuit).headers["X-Cache"] == "hit"


@pytest.mark.parametrize("redis_app_config", [{"NEAR_CACHE_MAX_BYTES": 0}])
def test_without_a_near_cache_every_hit_reads_redis(app_with_redis, redis_server, circuit):
    client = app_with_redis.test_client()
    miss = client.post("/v1/gradients", json=circuit)
    with redis_server.client() as raw:
        raw.delete(f"chainrule:v{ENGINE_VERSION}:{{{hash_of(miss)}}}:result")
    assert client.post("/v1/gradients", json=circuit).headers["X-Cache"] == "miss"


def test_redis_errors_are_counted(app_with_redis, redis_server, circuit):
    client = app_with_redis.test_client()
    redis_server.stop()
    client.post("/v1/gradients", json=circuit)
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'chainrule_cache_errors_total{operation="get"} 1.0' in metrics


def test_a_gunicorn_worker_exiting_closes_its_redis_connections(
    app_with_redis, redis_server, circuit, monkeypatch
):
    for name in ("_srcfile", "logThreads", "logMultiprocessing", "logProcesses"):
        monkeypatch.setattr(logging, name, getattr(logging, name))  # the config sets them
    worker_exit = runpy.run_path(str(GUNICORN_CONF))["worker_exit"]
    app_with_redis.test_client().post("/v1/gradients", json=circuit)
    with redis_server.client() as raw:
        assert len(raw.client_list()) == 2  # the app's connection and this one
        worker_exit(None, SimpleNamespace(wsgi=app_with_redis))
        for _ in range(100):
            if len(raw.client_list()) == 1:
                break
            time.sleep(0.01)
        assert len(raw.client_list()) == 1
    worker_exit(None, SimpleNamespace())  # the arbiter's view of a worker: no app, no error
