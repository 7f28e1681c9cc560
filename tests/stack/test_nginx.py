"""The load balancer: deploy/nginx/nginx.conf.template as docker-compose.yml's `lb` renders it
(the official image's envsubst) and as scripts/stack-native renders it for Debian's nginx,
checked against the api's settings; the native rendering is run through `nginx -t` for real.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from deploy.native import nginx
from deploy.native.ports import free_port_block
from tests.stack.gunicorn_settings import gunicorn_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
LB = COMPOSE["services"]["lb"]
API = COMPOSE["services"]["api"]
TEMPLATE = (ROOT / "deploy" / "nginx" / "nginx.conf.template").read_text()


def _image_rendering() -> str:
    """What the nginx image's 20-envsubst-on-templates.sh writes: envsubst over the defined
    variables whose names match NGINX_ENVSUBST_FILTER."""
    name_filter = re.compile(LB["environment"]["NGINX_ENVSUBST_FILTER"])
    values = {k: str(v) for k, v in LB["environment"].items() if name_filter.search(k)}
    return nginx.render(TEMPLATE, values)


def _directive(config: str, name: str) -> str:
    return re.search(rf"^\s*{name}\s+([^;]*);", config, re.M).group(1)


def test_lb_is_the_official_image_with_the_repo_template():
    major, minor = map(int, LB["image"].split(":")[1].split(".")[:2])
    assert LB["image"].startswith("nginx:") and (major, minor) >= (1, 28)  # `resolve`: 1.27.3
    source, target, mode = LB["volumes"][0].split(":")
    assert (ROOT / source).resolve() == ROOT / "deploy" / "nginx" / "nginx.conf.template"
    assert (target, mode) == ("/etc/nginx/templates/nginx.conf.template", "ro")
    # the image writes templates/X.template to $NGINX_ENVSUBST_OUTPUT_DIR/X
    assert LB["environment"]["NGINX_ENVSUBST_OUTPUT_DIR"] == "/etc/nginx"


def test_only_the_lb_publishes_a_port_so_the_api_scales():
    assert LB["ports"] == ["8000:8000"]
    assert "ports" not in API and API["expose"] == ["8000"]
    assert LB["depends_on"]["api"]["condition"] == "service_healthy"
    assert _directive(_image_rendering(), "listen") == "8000"


def test_every_placeholder_is_filled_in_both_stacks():
    expected = nginx.placeholders(TEMPLATE)
    assert expected == {"CHAINRULE_LISTEN", "CHAINRULE_RESOLVER", "CHAINRULE_UPSTREAMS",
                        "MAX_BODY_BYTES"}
    native = nginx.native_values(LB["environment"], 8000, [8001, 8002])
    for config in (_image_rendering(), nginx.render(TEMPLATE, native)):
        assert not nginx.placeholders(config)
        assert "$request_id" in config and "$host" in config  # nginx's own variables kept


def test_compose_upstream_re_resolves_every_api_replica():
    config = _image_rendering()
    assert re.search(r"^\s*resolver 127\.0\.0\.11 valid=\d+s", config, re.M)
    assert re.search(r"^\s*server api:8000 resolve\b", config, re.M)
    assert re.search(r"^\s*zone chainrule_api \d+k;", config, re.M)


def test_native_upstream_lists_each_replica_with_the_compose_parameters():
    config = nginx.render(TEMPLATE, nginx.native_values(LB["environment"], 9000, [9001, 9002]))
    servers = re.findall(r"^\s*server (\S+)( [^;]*)?;", config, re.M)
    compose_parameters = " max_fails=1 fail_timeout=5s"
    assert servers == [("127.0.0.1:9001", compose_parameters),
                       ("127.0.0.1:9002", compose_parameters)]
    assert _directive(config, "listen") == "127.0.0.1:9000"
    assert "resolver" not in re.sub(r"#.*", "", config)


def test_body_limit_retries_and_timeouts_follow_the_api_settings():
    config = _image_rendering()
    assert LB["environment"]["MAX_BODY_BYTES"] == API["environment"]["MAX_BODY_BYTES"]
    assert _directive(config, "client_max_body_size") == API["environment"]["MAX_BODY_BYTES"]
    # a gone replica's POST is replayed elsewhere; the api's own 503/504 answers are not
    retry = _directive(config, "proxy_next_upstream").split()
    assert {"error", "timeout", "non_idempotent"} <= set(retry)
    assert not {"http_503", "http_504"} & set(retry)
    assert _directive(config, "proxy_request_buffering") == "on"
    # nginx waits longer than gunicorn lets a worker go silent under the compose settings
    worker_timeout = gunicorn_settings(API["environment"])["timeout"]
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        assert int(_directive(config, name).rstrip("s")) > worker_timeout
    assert _directive(config, "proxy_set_header X-Request-ID") == "$chainrule_request_id"
    assert _directive(config, "keepalive")
    optimize = re.search(r"location /v1/optimize \{([^}]*)\}", config).group(1)
    assert "proxy_buffering off;" in optimize


def _nginx_check(prefix: Path, config_text: str) -> subprocess.CompletedProcess:
    """`nginx -t` (parse and check, bind nothing) of a configuration under `prefix`."""
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.fail("nginx is not installed (scripts/install-system-deps nginx)")
    prefix.mkdir()
    config = prefix / "nginx.conf"
    config.write_text(config_text)
    argv = nginx.nginx_argv(config, prefix)
    return subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True, timeout=30)


def test_the_native_rendering_passes_nginx_own_check(tmp_path):
    values = nginx.native_values(LB["environment"], 8000, [8001, 8002, 8003])
    checked = _nginx_check(tmp_path / "nginx", nginx.render(TEMPLATE, values))
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr


def test_the_compose_rendering_passes_nginx_own_check_but_for_resolve(tmp_path):
    # Debian's nginx (1.22) predates `resolve` in upstreams and cannot look `api` up here;
    # everything else of what the image will run is checked.
    config = _image_rendering().replace("server api:8000 resolve", "server 127.0.0.1:8000")
    checked = _nginx_check(tmp_path / "nginx", config)
    assert checked.returncode == 0, checked.stderr


@pytest.fixture
def lone_nginx(tmp_path):
    """The native rendering run for real, in front of two replica ports nothing listens on."""
    port = free_port_block(3)
    values = nginx.native_values(LB["environment"], port, [port + 1, port + 2])
    prefix = tmp_path / "nginx"
    config = nginx.write_config(prefix, values)
    process = subprocess.Popen(nginx.nginx_argv(config, prefix), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        nginx.wait_listening(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_no_replica_left_is_a_json_503_with_retry_after(lone_nginx):
    answer = httpx.post(lone_nginx + "/v1/gradients", json={"graph": {}}, timeout=10,
                        headers={"X-Request-ID": "lb-test-1"})
    assert answer.status_code == 503
    assert answer.headers["X-Request-ID"] == "lb-test-1"
    assert answer.headers["Retry-After"] == "1"
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == "unavailable"
    assert set(answer.json()["error"]) == {"code", "message", "node", "details"}


def _read_response(connection: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP response with a Content-Length, without waiting for nginx's lingering close."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += connection.recv(65536) or pytest.fail("closed before the headers")
    head, body = received.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(body) < length:
        body += connection.recv(65536) or pytest.fail("closed before the whole body")
    return head, body


def test_a_body_over_max_body_bytes_is_a_json_413_before_any_replica(lone_nginx):
    limit = int(API["environment"]["MAX_BODY_BYTES"])
    host, port = lone_nginx.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"POST /v1/gradients HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
            f"\r\nContent-Length: {limit + 1}\r\n\r\n".encode())
        head, body = _read_response(connection)
    assert head.startswith(b"HTTP/1.1 413 ")
    error = json.loads(body)["error"]
    assert error["code"] == "too_large" and str(limit) in error["message"]
