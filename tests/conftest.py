"""Fixtures shared by every test package: the app, its test client, and a real Redis.

`redis_server` starts a real `redis-server` on a free loopback port (Redis is never mocked) and
removes it afterwards; it can be stopped and started again on the same port mid-test.
`app` is built from `app_config`, which a test overrides (or parametrizes) to change settings;
`make_app` builds more apps, each with an embedded store of its own unless the config names a
CACHE_DIR. Every test also gets CACHE_DIR in its environment, a fresh directory, so servers it
starts never share results with another test's (or with the user's ~/.cache/chainrule).
`fake_gunicorn` stands in for `python -m gunicorn` in a child process, to see how `chainrule
serve` starts it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service import create_app
from tests.cluster import redis_cluster  # noqa: F401  (the fixture, for every test)

# Module-scoped servers start before any test's own CACHE_DIR: they get this session's.
os.environ["CACHE_DIR"] = tempfile.mkdtemp(prefix="chainrule-test-cache-")
atexit.register(shutil.rmtree, os.environ["CACHE_DIR"], ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_cache_dir(tmp_path_factory, monkeypatch) -> Path:
    """A CACHE_DIR of this test's own, in the environment its servers inherit."""
    directory = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("CACHE_DIR", str(directory))
    return directory


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A throwaway redis-server process on 127.0.0.1, without persistence."""

    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, wait_seconds: float = 10.0) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.fail("redis-server is not installed (Debian package redis-server)")
        self.process = subprocess.Popen(
            [
                executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5) as probe:
            give_up = time.monotonic() + wait_seconds
            while True:
                try:
                    probe.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > give_up:
                        self.stop()
                        pytest.fail(f"redis-server did not come up on port {self.port}")
                    time.sleep(0.02)

    def stop(self) -> None:
        """Kill the server outright (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app_config() -> dict:
    """Settings over the defaults for the `app` fixture; override it in a test module."""
    return {}


@pytest.fixture
def make_app(tmp_path_factory):
    """make_app(config): a test app over isolated defaults (no Redis, an embedded store in a
    fresh directory, no multiprocess metrics); its stores are closed after the test."""
    apps = []

    def make(config: dict | None = None):
        isolated = {"TESTING": True, "REDIS_URL": None, "PROMETHEUS_MULTIPROC_DIR": None,
                    "CACHE_DIR": str(tmp_path_factory.mktemp("app-cache"))}
        app = create_app({**isolated, **(config or {})})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["chainrule"].close()


@pytest.fixture
def app(make_app, app_config: dict):
    return make_app(app_config)


@pytest.fixture
def client(app):
    return app.test_client()


FAKE_GUNICORN_MAIN = """
import json, os, signal, sys

record = os.environ["FAKE_GUNICORN_RECORD"]
metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
seen = {
    "argv": sys.argv[1:],
    "pid": os.getpid(),
    "metrics_dir": metrics_dir,
    "metrics_dir_existed": bool(metrics_dir) and os.path.isdir(metrics_dir),
    "signals": [],
}


def save():
    with open(record + ".part", "w") as out:
        json.dump(seen, out)
    os.replace(record + ".part", record)


def stop(signum, frame):
    seen["signals"].append(signum)
    save()
    sys.exit(0)


for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, stop)
save()
if os.environ.get("FAKE_GUNICORN_WAIT"):
    while True:
        signal.pause()
sys.exit(int(os.environ.get("FAKE_GUNICORN_EXIT", "0")))
"""


class FakeGunicorn:
    """A `gunicorn` package that, run as `python -m gunicorn`, records its argv, pid and
    metrics directory, then exits (status FAKE_GUNICORN_EXIT) or waits for a signal."""

    def __init__(self, root: Path):
        package = root / "gunicorn"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "__main__.py").write_text(FAKE_GUNICORN_MAIN)
        self.root = root
        self.record_path = root / "record.json"

    def env(self, base: dict[str, str] | None = None, *, wait: bool = False) -> dict[str, str]:
        """`base` (default os.environ) with the fake first on PYTHONPATH."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root), env.get("PYTHONPATH")]))
        env["FAKE_GUNICORN_RECORD"] = str(self.record_path)
        env["FAKE_GUNICORN_WAIT"] = "1" if wait else ""
        return env

    def record(self) -> dict | None:
        """What the fake saw, once it has started (None before)."""
        if not self.record_path.exists():
            return None
        return json.loads(self.record_path.read_text())

    def wait_for_record(self, process: subprocess.Popen, seconds: float = 30.0) -> dict:
        give_up = time.monotonic() + seconds
        while (seen := self.record()) is None:
            assert process.poll() is None or self.record_path.exists(), "serve exited early"
            assert time.monotonic() < give_up, "the fake gunicorn was never started"
            time.sleep(0.02)
        return seen


@pytest.fixture
def fake_gunicorn(tmp_path: Path) -> FakeGunicorn:
    return FakeGunicorn(tmp_path / "fake-gunicorn")
