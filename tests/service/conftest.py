"""Fixtures for the service tests: request bodies built around the notes' (x + y) z circuit."""

from __future__ import annotations

import copy

import pytest

from tests import circuits

CIRCUIT = {"graph": circuits.CIRCUIT}


@pytest.fixture
def circuit() -> dict:
    """A fresh copy of the contract's example request, free to modify."""
    return copy.deepcopy(CIRCUIT)


def chain_request(length: int, start: float = 0.5) -> dict:
    """A request whose graph is x followed by `length` tanh gates: long and cheap."""
    nodes = [{"id": "x", "op": "input", "value": start}]
    for i in range(length):
        nodes.append({"id": f"n{i}", "op": "tanh", "inputs": [nodes[-1]["id"]]})
    return {"graph": {"nodes": nodes, "output": nodes[-1]["id"]}}


@pytest.fixture
def chain():
    """chain(length, start=0.5): a request of x and `length` tanh gates in a row."""
    return chain_request


@pytest.fixture
def redis_app_config() -> dict:
    """Settings over the defaults for `app_with_redis`; parametrize it to change them."""
    return {}


@pytest.fixture
def app_with_redis(make_app, redis_server, redis_app_config):
    """An app whose result cache is the `redis_server` fixture's Redis."""
    return make_app({"REDIS_URL": redis_server.url, **redis_app_config})
