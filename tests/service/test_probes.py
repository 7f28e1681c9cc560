"""Health, readiness, metrics, the OpenAPI document, /docs and the playground."""

from __future__ import annotations

from html.parser import HTMLParser

from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families


def samples(client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    text = client.get("/metrics").get_data(as_text=True)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_with_the_embedded_store(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "cache": "embedded"}


def test_readyz_follows_redis(app_with_redis, redis_server):
    client = app_with_redis.test_client()
    assert client.get("/readyz").get_json() == {"status": "ready", "cache": "redis"}
    redis_server.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "not_ready" and "redis" in error["message"]
    assert error["details"] == {"cache": "redis"}


def test_metrics_count_requests_cache_outcomes_engine_time_and_graph_size(client, circuit):
    client.post("/v1/gradients", json=circuit)
    client.post("/v1/gradients", json=circuit)
    client.post("/v1/gradients", json={**circuit, "cache": False})
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    values = samples(client)
    requests = ("chainrule_http_requests_total",
                (("method", "POST"), ("route", "/v1/gradients"), ("status", "200")))
    assert values[requests] == 3
    unmatched = ("chainrule_http_requests_total",
                 (("method", "GET"), ("route", "unmatched"), ("status", "404")))
    assert values[unmatched] == 1
    for outcome in ("hit", "miss", "bypass"):
        assert values[("chainrule_cache_lookups_total", (("outcome", outcome),))] == 1
    latency = ("chainrule_http_request_duration_seconds_count", (("route", "/v1/gradients"),))
    assert values[latency] == 3
    run = ("chainrule_engine_seconds_count", (("kind", "gradients"), ("stage", "run")))
    assert values[run] == 2  # the hit did not run the engine
    # The repeat was known byte for byte, so only two graphs of 5 nodes were loaded.
    assert values[("chainrule_graph_nodes_sum", (("kind", "gradients"),))] == 10
    assert values[("chainrule_plan_cache_lookups_total", (("outcome", "hit"),))] == 1


def test_error_answers_are_counted_by_code(client, circuit):
    unknown = {"graph": {"nodes": [{"id": "x", "op": "nope"}], "output": "x"}}
    for _ in range(2):
        assert client.post("/v1/gradients", json=unknown).status_code == 422
    assert client.get("/v1/results/" + "0" * 64).status_code == 404
    assert client.post("/v1/gradients", json=circuit).status_code == 200
    counted = {labels: value for (name, labels), value in samples(client).items()
               if name == "chainrule_errors_total"}
    assert counted == {(("code", "unknown_op"), ("status", "422")): 2,
                       (("code", "not_found"), ("status", "404")): 1}


def test_a_streamed_answer_is_timed_until_its_last_event(client):
    graph = {"nodes": [{"id": "x", "op": "input", "value": 3.0},
                       {"id": "f", "op": "pow", "inputs": ["x"], "attrs": {"exponent": 2}}],
             "output": "f"}
    response = client.post("/v1/optimize", json={
        "graph": graph, "params": ["x"], "steps": 2000, "cache": False,
        "optimizer": {"name": "sgd", "lr": 1e-4}}, headers={"Accept": "text/event-stream"})
    assert response.mimetype == "text/event-stream" and b"event: result" in response.data
    response.close()
    values = samples(client)
    run = values[("chainrule_engine_seconds_sum", (("kind", "optimize"), ("stage", "run")))]
    served = values[("chainrule_http_request_duration_seconds_sum",
                     (("route", "/v1/optimize"),))]
    assert served >= run > 0  # the steps ran while the stream was sent, inside its time


def test_openapi_document_is_valid_and_lists_every_endpoint(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    validate(spec)
    for path in ("/v1/gradients", "/v1/evaluate", "/v1/gradcheck", "/v1/diagram",
                 "/v1/results/{hash}", "/v1/ops", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"]


class _PageText(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value and "//" in value:
                self.external.append(value)

    def handle_data(self, data):
        self.text.append(data)


def test_docs_page_renders_the_document_without_external_resources(client):
    response = client.get("/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = _PageText()
    page.feed(response.get_data(as_text=True))
    text = " ".join(page.text)
    assert page.external == []
    for expected in ("/v1/gradients", "/v1/results/{hash}", "GradientsRequest", "too_large"):
        assert expected in text


def test_the_playground_is_served_at_the_root(client):
    # File responses hold the file open until closed.
    with client.get("/") as page, client.get("/static/playground.js") as script:
        assert page.status_code == 200 and page.mimetype == "text/html"
        assert b"playground.js" in page.data
        assert script.status_code == 200
