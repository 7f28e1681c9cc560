"""Every REDIS_URL form through the real app: rediss:// (a real TLS redis-server with a throwaway
certificate), unix:// (a real socket), redis+cluster:// (the real three-shard cluster, one
shard killed and back)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from service.config import ConfigError
from service.store.redis_connect import parse_cluster_url
from tests.conftest import free_port

FAST_ENOUGH = {"REDIS_TIMEOUT_SECONDS": 1.0}


def graph(x: float) -> dict:
    return {"graph": {"nodes": [{"id": "x", "op": "input", "value": x},
                                {"id": "f", "op": "tanh", "inputs": ["x"]}], "output": "f"}}


def wait_for_redis(**connection) -> None:
    give_up = time.monotonic() + 15
    with redis.Redis(socket_timeout=1, socket_connect_timeout=1, retry=None,
                     **connection) as probe:
        while True:
            try:
                probe.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < give_up, f"redis-server never answered on {connection}"
                time.sleep(0.05)


def start_redis(tmp_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [shutil.which("redis-server"), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def tls_redis(tmp_path):
    """A redis-server speaking TLS only, with a self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    process = start_redis(tmp_path, "--port", "0", "--tls-port", str(port), "--bind",
                          "127.0.0.1", "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                          "--tls-auth-clients", "no")
    try:
        wait_for_redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(cert))
        yield f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}", port
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def socket_redis(tmp_path):
    path = tmp_path / "redis.sock"
    process = start_redis(tmp_path, "--port", "0", "--unixsocket", str(path),
                          "--unixsocketperm", "700")
    try:
        wait_for_redis(unix_socket_path=str(path))
        yield f"unix://{path}?db=0"
    finally:
        process.kill()
        process.wait()


def assert_shared_between_apps(make_app, url: str) -> None:
    body = graph(0.25)
    first = make_app({"REDIS_URL": url, **FAST_ENOUGH}).test_client()
    second = make_app({"REDIS_URL": url, **FAST_ENOUGH}).test_client()
    assert first.get("/readyz").get_json() == {"status": "ready", "cache": "redis"}
    assert first.post("/v1/gradients", json=body).headers["X-Cache"] == "miss"
    again = second.post("/v1/gradients", json=body)
    assert (again.status_code, again.headers["X-Cache"]) == (200, "hit")


def test_rediss_verifies_the_server_certificate_and_stores(make_app, tls_redis):
    url, port = tls_redis
    assert_shared_between_apps(make_app, url)
    # the same server without TLS in the URL does not answer: the store really spoke TLS
    plain = make_app({"REDIS_URL": f"redis://127.0.0.1:{port}/0", **FAST_ENOUGH})
    assert plain.test_client().get("/readyz").status_code == 503


def test_unix_socket(make_app, socket_redis):
    assert_shared_between_apps(make_app, socket_redis)


def test_cluster_urls_name_their_nodes():
    nodes, options = parse_cluster_url("redis+cluster://u:p%40ss@10.0.0.1:7000,[::1]:7001/0")
    assert [(n.host, n.port) for n in nodes] == [("10.0.0.1", 7000), ("::1", 7001)]
    assert options == {"username": "u", "password": "p@ss"}
    for broken in ("redis+cluster://", "redis+cluster://host-without-port"):
        with pytest.raises(ValueError, match="REDIS_URL"):
            parse_cluster_url(broken)


def test_a_malformed_cluster_url_stops_the_app_at_start(make_app):
    with pytest.raises((ValueError, ConfigError), match="REDIS_URL"):
        make_app({"REDIS_URL": "redis+cluster://nohost"})


def test_a_cluster_shares_results_and_a_killed_shard_costs_no_request(make_app, redis_cluster):
    assert_shared_between_apps(make_app, redis_cluster.url)
    replicas = [make_app({"REDIS_URL": redis_cluster.url, **FAST_ENOUGH}).test_client()
                for _ in range(2)]
    bodies = [graph(i / 10) for i in range(12)]  # hashes spread over the three shards
    for body in bodies:
        replicas[0].post("/v1/gradients", json=body)
    redis_cluster.kill(1)
    for replica in replicas:
        for body in bodies:
            answer = replica.post("/v1/gradients", json=body)
            assert answer.status_code == 200 and answer.get_json()["value"] is not None
        not_ready = replica.get("/readyz")
        assert not_ready.status_code == 503
        port = str(redis_cluster.ports[1])
        assert port in not_ready.get_json()["error"]["message"]  # says which shard is away
    redis_cluster.start(1)
    give_up = time.monotonic() + 30
    while replicas[1].get("/readyz").status_code != 200:
        assert time.monotonic() < give_up, "the app never saw the shard back"
        time.sleep(0.2)
    hits = [replicas[1].post("/v1/gradients", json=body).headers["X-Cache"] for body in bodies]
    assert "hit" in hits  # the surviving shards kept their results
