"""The JSON log format shared by the app's loggers and gunicorn's."""

from __future__ import annotations

import logging
import sys

import orjson
from flask import g

from service.observe.jsonlog import JsonLogFormatter


def record(**extra) -> logging.LogRecord:
    line = logging.LogRecord("chainrule.test", logging.WARNING, __file__, 1, "hello %s", ("you",),
                             None)
    line.__dict__.update(extra)
    return line


def test_a_record_is_one_json_line_with_its_extras():
    text = JsonLogFormatter().format(record(status=200, path="/v1/ops"))
    assert "\n" not in text
    entry = orjson.loads(text)
    assert entry["message"] == "hello you" and entry["level"] == "WARNING"
    assert entry["logger"] == "chainrule.test" and isinstance(entry["pid"], int)
    assert entry["status"] == 200 and entry["path"] == "/v1/ops"
    assert entry["time"].endswith("Z") and "T" in entry["time"]


def test_inside_a_request_the_line_carries_its_request_id(app):
    with app.test_request_context("/"):
        g.request_id = "req-7"
        assert orjson.loads(JsonLogFormatter().format(record()))["request_id"] == "req-7"
        explicit = JsonLogFormatter().format(record(request_id="given"))
        assert orjson.loads(explicit)["request_id"] == "given"


def test_outside_a_request_there_is_no_request_id():
    assert "request_id" not in orjson.loads(JsonLogFormatter().format(record()))


def test_an_exception_is_logged_with_its_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        line = record()
        line.exc_info = sys.exc_info()
    entry = orjson.loads(JsonLogFormatter().format(line))
    assert "Traceback" in entry["exception"] and "boom" in entry["exception"]
