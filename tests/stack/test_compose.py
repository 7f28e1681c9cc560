"""docker-compose.yml and the Dockerfile checked against the native stack (no Docker runs here).

The compose file is parsed and compared with what the tests run natively: the same command
(`chainrule serve`, i.e. gunicorn with service/gunicorn.conf.py), env var names that the
config knows, health-check paths the app serves, Redis set up as an LRU cache. Then
scripts/stack-native, which runs the compose services from the compose file itself, is started
for real and driven over HTTP (through nginx, as compose's `lb`; see also test_nginx.py and
test_replicas.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from service import create_app
from service.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
API = COMPOSE["services"]["api"]
REDIS = COMPOSE["services"]["redis"]


def _dockerfile_instruction(name: str) -> str:
    """The last instruction `name` with its continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [line for line in text.splitlines() if line.startswith(name + " ")][-1]


def _healthcheck_path(test: list[str]) -> str:
    return re.search(r"http://127\.0\.0\.1:8000(/\w+)", " ".join(test)).group(1)


def test_api_runs_the_same_command_as_the_dockerfile_and_make_run():
    assert API["command"] == ["chainrule", "serve"]
    assert json.loads(_dockerfile_instruction("CMD")[4:]) == API["command"]
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^run: .*\n((?:\t.*\n)+)", makefile, re.M).group(1).splitlines()
    assert recipe[-1] == "\t$(BIN)/chainrule serve"


def test_the_serve_command_runs_gunicorn_with_the_one_config(tmp_path, fake_gunicorn):
    # The compose command with the compose environment, gunicorn replaced by a recorder.
    env = fake_gunicorn.env({**os.environ, **{k: str(v) for k, v in API["environment"].items()}})
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")  # /dev/shm's stand-in
    command = [str(Path(sys.executable).with_name(API["command"][0])), *API["command"][1:]]
    process = subprocess.Popen(command, env=env)
    assert process.wait(timeout=60) == 0
    seen = fake_gunicorn.record()
    assert seen["argv"] == ["--config", str(ROOT / "service" / "gunicorn.conf.py"),
                            "service.wsgi:app"]
    # gunicorn becomes the container's main process, with the metrics directory as configured.
    assert seen["pid"] == process.pid
    assert seen["metrics_dir"] == env["PROMETHEUS_MULTIPROC_DIR"]


def test_environment_names_are_settings_the_config_reads():
    names = set(API["environment"]) | set(
        re.findall(r"(\w+)=", _dockerfile_instruction("ENV")))
    names.discard("PYTHONUNBUFFERED")  # Python's own, not ours
    assert names <= set(SETTINGS), names - set(SETTINGS)
    assert API["environment"]["REDIS_URL"].startswith("redis://redis:6379")


def test_healthchecks_hit_paths_the_app_serves():
    client = create_app({"REDIS_URL": None}).test_client()
    for test in (API["healthcheck"]["test"], json.loads(
            _dockerfile_instruction("HEALTHCHECK").split("CMD", 1)[1])):
        path = _healthcheck_path(test)
        assert path == "/healthz"
        assert client.get(path).status_code == 200


def test_redis_is_a_bounded_lru_cache_without_persistence():
    command = REDIS["command"]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--maxmemory-policy"] == "allkeys-lru"
    assert re.fullmatch(r"\d+[kmg]b", options["--maxmemory"])
    assert options["--save"] == "" and options["--appendonly"] == "no"
    assert REDIS["image"].startswith("redis:7")
    assert REDIS["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert API["depends_on"]["redis"]["condition"] == "service_healthy"
    assert API["restart"] and REDIS["restart"]


def test_container_runs_as_a_non_root_user_with_metrics_on_tmpfs():
    assert DOCKERFILE.startswith("#") and "FROM python:3.11-slim" in DOCKERFILE
    user = _dockerfile_instruction("USER").split()[1]
    assert user not in ("root", "0")
    # /dev/shm is a tmpfs, writable by every user, in every container: no compose-only mount.
    image_env = dict(re.findall(r"(\w+)=(\S+)", _dockerfile_instruction("ENV")))
    metrics = API["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert metrics == image_env["PROMETHEUS_MULTIPROC_DIR"]
    assert Path(metrics).parent == Path("/dev/shm")
    assert "tmpfs" not in API


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(120)
def test_stack_native_serves_and_caches_across_workers(tmp_path):
    port, redis_port = _free_port(), _free_port()
    with open(tmp_path / "stack.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "stack-native"), "--port", str(port),
             "--redis-port", str(redis_port)],
            stdout=subprocess.DEVNULL, stderr=log,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        )
    base = f"http://127.0.0.1:{port}"
    body = {"graph": {"nodes": [
        {"id": "x", "op": "input", "value": -2}, {"id": "y", "op": "input", "value": 5},
        {"id": "z", "op": "input", "value": -4}, {"id": "q", "op": "add", "inputs": ["x", "y"]},
        {"id": "f", "op": "mul", "inputs": ["q", "z"]}], "output": "f"}}
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            for _ in range(200):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                pytest.fail("stack-native did not become ready:\n" +
                            (tmp_path / "stack.log").read_text())
            outcomes = [client.post("/v1/gradients", json=body) for _ in range(6)]
            assert all(r.status_code == 200 for r in outcomes)
            assert outcomes[0].json()["value"] == -12.0
            assert [r.headers["X-Cache"] for r in outcomes][1:] == ["hit"] * 5
            assert "chainrule" in client.get("/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
