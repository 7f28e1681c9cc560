"""Configuration: defaults, the environment, overrides, and refusals of unusable values."""

from __future__ import annotations

import pytest

from service import create_app
from service.config import SETTINGS, ConfigError, load_config
from service.observe.metrics import MultiprocessSetupError


def test_defaults_without_environment():
    config = load_config(environ={})
    assert config["REDIS_URL"] is None
    assert config["MAX_BODY_BYTES"] == 33554432
    assert config["COMPUTE_DEADLINE_SECONDS"] == 10
    assert config["REDIS_TIMEOUT_SECONDS"] == 0.05
    assert 3 <= config["WEB_CONCURRENCY"] <= 12
    assert set(SETTINGS) <= set(config)


def test_environment_values_are_typed():
    config = load_config(
        environ={"MAX_NODES": "50", "REDIS_TIMEOUT_SECONDS": "0.2", "LOG_LEVEL": "debug",
                 "REDIS_URL": "redis://127.0.0.1:1/0", "WEB_CONCURRENCY": "3"}
    )
    assert config["MAX_NODES"] == 50 and config["REDIS_TIMEOUT_SECONDS"] == 0.2
    assert config["LOG_LEVEL"] == "DEBUG" and config["WEB_CONCURRENCY"] == 3
    assert config["REDIS_URL"] == "redis://127.0.0.1:1/0"


def test_an_empty_redis_url_means_no_redis():
    assert load_config(environ={"REDIS_URL": ""})["REDIS_URL"] is None


def test_overrides_win_over_the_environment():
    assert load_config({"MAX_NODES": 7}, environ={"MAX_NODES": "50"})["MAX_NODES"] == 7


@pytest.mark.parametrize(
    "name, text",
    [("MAX_NODES", "many"), ("MAX_NODES", "0"), ("COMPUTE_DEADLINE_SECONDS", "-1"),
     ("LOG_LEVEL", "LOUD")],
)
def test_unusable_values_are_refused_by_name(name, text):
    with pytest.raises(ConfigError, match=name):
        load_config(environ={name: text})


def test_the_factory_applies_the_body_limit_to_flask():
    app = create_app({"MAX_BODY_BYTES": 1234, "REDIS_URL": None, "PROMETHEUS_MULTIPROC_DIR": None})
    assert app.config["MAX_CONTENT_LENGTH"] == 1234


def test_multiprocess_metrics_need_the_environment_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(MultiprocessSetupError):
        create_app({"REDIS_URL": None, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
