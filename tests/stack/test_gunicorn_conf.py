"""service/gunicorn.conf.py's hooks, run as gunicorn's master runs them."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from tests.stack.gunicorn_settings import gunicorn_settings


def _started(environment: dict[str, str], caplog) -> list[str]:
    conf = gunicorn_settings(environment)
    log = logging.getLogger("test.gunicorn.master")
    with caplog.at_level(logging.WARNING, logger=log.name):
        conf["on_starting"](SimpleNamespace(log=log))
    return [record.getMessage() for record in caplog.records]


def test_several_workers_without_a_metrics_directory_are_told_at_start(caplog):
    [warning] = _started({"WEB_CONCURRENCY": "3"}, caplog)
    assert "PROMETHEUS_MULTIPROC_DIR is unset" in warning and "3 workers" in warning
    assert "chainrule serve" in warning


@pytest.mark.parametrize("environment", [{"WEB_CONCURRENCY": "1"}, {"WEB_CONCURRENCY": "3"}])
def test_one_worker_or_a_shared_directory_starts_quietly(environment, tmp_path, caplog):
    if environment["WEB_CONCURRENCY"] != "1":
        environment = {**environment, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    assert _started(environment, caplog) == []
    if "PROMETHEUS_MULTIPROC_DIR" in environment:
        assert (tmp_path / "metrics").is_dir()
