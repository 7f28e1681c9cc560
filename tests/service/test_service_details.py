"""Service details from issue 15: conditional GETs, CORS, what /metrics counts and shows, how
logs read, and where the server listens by default."""

from __future__ import annotations

import io
import logging

import pytest

from service.config import load_config
from service.observe.jsonlog import JsonLogFormatter, TextLogFormatter, formatter_for

GRAPH = {"nodes": [{"id": "x", "op": "input", "value": 3.0},
                   {"id": "f", "op": "mul", "inputs": ["x", "x"]}], "output": "f"}


def _stored_hash(client) -> str:
    response = client.post("/v1/gradients", json={"graph": GRAPH})
    assert response.status_code == 200
    return response.get_json()["hash"]


# ---------------------------------------------------------------- If-None-Match


def test_a_result_the_client_holds_is_answered_304(client):
    digest = _stored_hash(client)
    response = client.get(f"/v1/results/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == f'"{digest}"'


@pytest.mark.parametrize("tag", ['"0000"', "*"])
def test_other_tags_and_star(client, tag):
    digest = _stored_hash(client)
    response = client.get(f"/v1/results/{digest}", headers={"If-None-Match": tag})
    assert response.status_code == (304 if tag == "*" else 200)


@pytest.mark.parametrize("field, answered", [
    ('W/"{h}"', 304),             # If-None-Match compares weakly (RFC 9110 13.1.2)
    ('"0000", W/"{h}"', 304),     # a list naming it
    ('W/"0000", "{h}"', 304),
    ('"0000", W/"1111"', 200),
    ("{h}", 304),                 # unquoted: read leniently, as the tag it spells
    ('"{h}" , *', 304),
])
def test_weak_tags_and_lists_are_compared_weakly(client, field, answered):
    digest = _stored_hash(client)
    response = client.get(f"/v1/results/{digest}",
                          headers={"If-None-Match": field.format(h=digest)})
    assert response.status_code == answered
    assert (response.data == b"") == (answered == 304)


def test_if_none_match_sent_on_two_lines_is_one_list(client):
    digest = _stored_hash(client)
    response = client.get(f"/v1/results/{digest}",
                          headers=[("If-None-Match", '"0000"'), ("If-None-Match", f'W/"{digest}"')])
    assert response.status_code == 304


def test_an_unknown_hash_is_404_even_with_a_matching_tag(client):
    digest = "a" * 64
    response = client.get(f"/v1/results/{digest}", headers={"If-None-Match": f'"{digest}"'})
    assert response.status_code == 404


def test_posts_ignore_if_none_match(client):
    digest = _stored_hash(client)
    response = client.post("/v1/gradients", json={"graph": GRAPH},
                           headers={"If-None-Match": f'"{digest}"'})
    assert response.status_code == 200 and response.get_json()["hash"] == digest


# ---------------------------------------------------------------- CORS


def test_cors_is_off_by_default(client):
    response = client.post("/v1/gradients", json={"graph": GRAPH},
                           headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("app_config", [{"CORS_ORIGINS": ("https://app.example",)}])
def test_cors_origins_lets_listed_browsers_call(client):
    listed = {"Origin": "https://app.example"}
    response = client.post("/v1/gradients", json={"graph": GRAPH}, headers=listed)
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    preflight = client.options("/v1/gradients", headers={
        **listed, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in preflight.headers["Access-Control-Allow-Headers"]
    other = client.post("/v1/gradients", json={"graph": GRAPH},
                        headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_origins_setting_is_parsed_and_checked():
    config = load_config(environ={"CORS_ORIGINS": "https://a.example, http://b.example:8080/"})
    assert config["CORS_ORIGINS"] == ("https://a.example", "http://b.example:8080")
    assert load_config(environ={})["CORS_ORIGINS"] == ()
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        load_config(environ={"CORS_ORIGINS": "app.example"})


# ---------------------------------------------------------------- /metrics


def _metric_lines(client) -> list[str]:
    text = client.get("/metrics").get_data(as_text=True)
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_a_405_is_counted_under_its_route(client):
    client.get("/v1/gradients")
    client.delete(f"/v1/results/{'a' * 64}")
    lines = _metric_lines(client)
    assert ('chainrule_http_requests_total{method="GET",route="/v1/gradients",status="405"} 1.0'
            in lines)
    assert any('route="/v1/results/<digest>",status="405"' in line for line in lines)
    assert not any('route="unmatched",status="405"' in line for line in lines)


def test_process_build_info_and_cache_errors_are_there_from_the_start(client):
    lines = _metric_lines(client)
    assert any(line.startswith("process_resident_memory_bytes ") for line in lines)
    assert any(line.startswith("process_cpu_seconds_total ") for line in lines)
    build = [line for line in lines if line.startswith("chainrule_build_info{")]
    assert len(build) == 1 and build[0].endswith(" 1.0") and 'engine_version="' in build[0]
    for operation in ("get", "put"):
        assert f'chainrule_cache_errors_total{{operation="{operation}"}} 0.0' in lines


# ---------------------------------------------------------------- logs and binding


def _formatted(formatter: logging.Formatter) -> str:
    record = logging.LogRecord("chainrule.test", logging.INFO, __file__, 1, "hello %s",
                               ("there",), None)
    record.request_id = "r-1"
    return formatter.format(record)


def test_text_logs_read_as_lines_and_json_stays_json():
    text = _formatted(TextLogFormatter())
    assert "INFO" in text and "chainrule.test hello there" in text and "request_id=r-1" in text
    assert not text.startswith("{")
    assert _formatted(JsonLogFormatter()).startswith("{")


def test_log_format_auto_is_text_on_a_terminal_only(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert type(formatter_for("auto")) is JsonLogFormatter
    monkeypatch.setattr("sys.stderr", Terminal())
    assert type(formatter_for("auto")) is TextLogFormatter
    assert type(formatter_for("json")) is JsonLogFormatter


def test_the_server_listens_on_loopback_unless_told_otherwise():
    assert load_config(environ={})["HOST"] == "127.0.0.1"
    assert load_config(environ={"HOST": "0.0.0.0"})["HOST"] == "0.0.0.0"


def test_the_container_keeps_all_interfaces_and_json_logs():
    from pathlib import Path

    dockerfile = (Path(__file__).parents[2] / "Dockerfile").read_text()
    assert "HOST=0.0.0.0" in dockerfile and "LOG_FORMAT=json" in dockerfile


def test_a_text_access_line_reads_as_one():
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "request", (), None)
    for key, value in {"method": "POST", "path": "/v1/gradients", "status": 200,
                       "duration_ms": 4.7, "cache": "miss", "request_id": "r-2"}.items():
        setattr(record, key, value)
    line = TextLogFormatter().format(record)
    assert "gunicorn.access POST /v1/gradients 200 4.7 ms cache=miss request_id=r-2" in line
