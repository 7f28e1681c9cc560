"""Who may call, and how often: API_KEYS, METRICS_TOKEN and RATE_LIMIT through the real app,
with limits counted in memory, in a real redis-server and in a real Redis Cluster."""

from __future__ import annotations

import hashlib

import pytest

from service.access import KeyRing, limiter_storage_uri
from service.config import ConfigError, load_config
from tests.conftest import free_port

KEY = "k-3b9f0c2e"
OTHER_KEY = "k-7d11aa09"
HASHED_KEY = "k-given-as-its-hash"


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.data[:300]
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    return error


@pytest.fixture
def keyed_client(make_app):
    keys = f"{KEY}, {OTHER_KEY},{hashlib.sha256(HASHED_KEY.encode()).hexdigest()}"
    return make_app({"API_KEYS": keys, "METRICS_TOKEN": "scrape-me"}).test_client()


def test_everything_is_open_by_default(client, circuit):
    assert client.post("/v1/gradients", json=circuit).status_code == 200
    assert client.get("/metrics").status_code == 200


def test_the_api_needs_a_known_key(keyed_client, circuit):
    missing = keyed_client.post("/v1/gradients", json=circuit)
    assert_error(missing, 401, "unauthorized")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = keyed_client.post("/v1/gradients", json=circuit, headers=bearer("k-nope"))
    assert_error(wrong, 401, "unauthorized")
    basic = keyed_client.get("/v1/ops", headers={"Authorization": f"Basic {KEY}"})
    assert_error(basic, 401, "unauthorized")
    for key in (KEY, OTHER_KEY, HASHED_KEY):
        answer = keyed_client.post("/v1/gradients", json=circuit, headers=bearer(key))
        assert answer.status_code == 200 and answer.get_json()["value"] == -12
    # a configured hash is not itself a key
    digest = hashlib.sha256(HASHED_KEY.encode()).hexdigest()
    assert_error(keyed_client.get("/v1/ops", headers=bearer(digest)), 401, "unauthorized")


def test_probes_pages_stay_open_and_metrics_need_their_token(keyed_client):
    for path in ("/healthz", "/readyz", "/", "/openapi.json"):
        with keyed_client.get(path) as answer:
            assert answer.status_code == 200, path
    assert_error(keyed_client.get("/metrics"), 401, "unauthorized")
    assert_error(keyed_client.get("/metrics", headers=bearer(KEY)), 401, "unauthorized")
    assert keyed_client.get("/metrics", headers=bearer("scrape-me")).status_code == 200


def test_the_key_ring_compares_digests():
    ring = KeyRing(f"{KEY},,{hashlib.sha256(b'x').hexdigest()}")
    assert len(ring.digests) == 2
    assert ring.holder(KEY) == hashlib.sha256(KEY.encode()).hexdigest()
    assert ring.holder("x") is not None and ring.holder("y") is None


def assert_rate_limited(response) -> None:
    error = assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 61  # the window's end, rounded up
    assert error["details"] == {"limit": "3 per 1 minute", "retry_after_seconds": retry_after}


def test_rate_limits_count_per_key_in_memory(make_app, circuit):
    client = make_app({"API_KEYS": f"{KEY},{OTHER_KEY}", "RATE_LIMIT": "3/minute"}).test_client()
    for _ in range(3):
        assert client.post("/v1/gradients", json=circuit, headers=bearer(KEY)).status_code == 200
    assert_rate_limited(client.post("/v1/gradients", json=circuit, headers=bearer(KEY)))
    assert client.get("/v1/ops", headers=bearer(OTHER_KEY)).status_code == 200
    # probes are never limited, and a caller without a key is refused, not counted
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))
    assert_error(client.get("/v1/ops"), 401, "unauthorized")


def test_without_keys_the_limit_is_per_client_address(make_app, circuit):
    client = make_app({"RATE_LIMIT": "3/minute"}).test_client()
    for _ in range(3):
        assert client.get("/v1/ops").status_code == 200
    assert_rate_limited(client.post("/v1/gradients", json=circuit))
    elsewhere = client.get("/v1/ops", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert elsewhere.status_code == 200


def _shared_limit_holds_across_apps(make_app, redis_url: str, circuit) -> None:
    settings = {"REDIS_URL": redis_url, "API_KEYS": KEY, "RATE_LIMIT": "3/minute",
                "REDIS_TIMEOUT_SECONDS": 1.0}
    replicas = [make_app(settings).test_client() for _ in range(2)]
    answers = [replicas[i % 2].post("/v1/gradients", json=circuit, headers=bearer(KEY))
               for i in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert_rate_limited(replicas[1].get("/v1/ops", headers=bearer(KEY)))
    assert_rate_limited(replicas[0].get("/v1/ops", headers=bearer(KEY)))


def test_a_limit_in_redis_holds_across_replicas(make_app, redis_server, circuit):
    _shared_limit_holds_across_apps(make_app, redis_server.url, circuit)
    with redis_server.client() as raw:  # counted under the key's digest, never the key
        digest = hashlib.sha256(KEY.encode()).hexdigest()
        assert raw.keys(f"LIMITS:LIMITER/chainrule/{digest}/*")
        assert not [name for name in raw.keys("*") if KEY.encode() in name]


def test_a_limit_in_a_redis_cluster_holds_across_replicas(make_app, redis_cluster, circuit):
    _shared_limit_holds_across_apps(make_app, redis_cluster.url, circuit)


def test_a_redis_that_is_down_never_refuses_a_request(make_app, redis_server, circuit):
    redis_server.stop()
    client = make_app({"REDIS_URL": redis_server.url, "RATE_LIMIT": "100/minute"}).test_client()
    assert client.post("/v1/gradients", json=circuit).status_code == 200


def test_a_cluster_that_is_down_at_start_never_refuses_a_request(make_app, circuit):
    nowhere = f"redis+cluster://127.0.0.1:{free_port()}"
    client = make_app({"REDIS_URL": nowhere, "RATE_LIMIT": "100/minute"}).test_client()
    answer = client.post("/v1/gradients", json=circuit)
    assert answer.status_code == 200 and answer.headers["X-Cache"] == "miss"
    assert client.get("/readyz").status_code == 503


def test_the_limiter_uses_the_store_redis_url_names():
    assert limiter_storage_uri(None) == "memory://"
    assert limiter_storage_uri("redis://h:6379/0") == "redis://h:6379/0"
    assert limiter_storage_uri("rediss://h:6380/0") == "rediss://h:6380/0"
    assert limiter_storage_uri("unix:///run/redis.sock?db=0") == "redis+unix:///run/redis.sock?db=0"
    assert limiter_storage_uri("redis+cluster://a:1,b:2") == "redis+cluster://a:1,b:2"


def test_api_keys_that_name_no_key_are_a_config_error():
    with pytest.raises(ConfigError, match="API_KEYS"):
        load_config(environ={"API_KEYS": " , "})
    assert load_config(environ={"API_KEYS": ""})["API_KEYS"] is None


def test_a_rate_limit_that_does_not_parse_is_a_config_error():
    with pytest.raises(ConfigError, match="RATE_LIMIT"):
        load_config(environ={"RATE_LIMIT": "lots"})
    assert load_config(environ={"RATE_LIMIT": "10/second;1000/hour"})["RATE_LIMIT"]


def test_a_cors_preflight_passes_keys_and_limits(make_app, circuit):
    # browsers send the preflight without credentials; refusing it would block the keyed call
    client = make_app({"API_KEYS": KEY, "RATE_LIMIT": "3/minute",
                       "CORS_ORIGINS": ("https://app.example",)}).test_client()
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    for _ in range(5):
        answer = client.options("/v1/gradients", headers=preflight)
        assert answer.status_code in (200, 204)
        assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    for _ in range(3):  # the preflights were not counted
        assert client.post("/v1/gradients", json=circuit, headers=bearer(KEY)).status_code == 200
    origin = {"Origin": "https://app.example"}
    refused = client.post("/v1/gradients", json=circuit, headers={**bearer(KEY), **origin})
    assert_rate_limited(refused)
    # a script may read when to try again, and why a call was refused
    exposed = {name.strip() for name in refused.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Retry-After", "WWW-Authenticate", "ETag", "X-Request-ID"} <= exposed


def test_a_cors_preflight_to_metrics_needs_no_token(make_app):
    client = make_app({"METRICS_TOKEN": "scrape-me",
                       "CORS_ORIGINS": ("https://app.example",)}).test_client()
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    answer = client.options("/metrics", headers=preflight)
    assert answer.status_code in (200, 204)
    assert answer.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" not in answer.headers["Access-Control-Allow-Methods"]
    assert client.get("/metrics").status_code == 401  # the scrape itself still needs it
