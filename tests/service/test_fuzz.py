"""A time-bounded schemathesis campaign against the app in-process (WSGI), part of `make test`.

Three phases, each derandomized (the same cases every run) and bounded by a count of examples:
- the raw generator: bodies as the OpenAPI document describes them, valid and invalid, against
  every operation;
- wired graphs: a hook rewires each generated graph into a valid DAG (ids unique, inputs naming
  earlier nodes, arities and required attrs right, sources with values), so that the engine,
  not only the schema, sees the generated values;
- the stateful phase: the document's links lead from a POST's result to GET /v1/results/{hash}.
Every response must be no 5xx and conform to the document (status, content type, headers and
body schema); invalid bodies must be refused with a 4xx.
"""

from __future__ import annotations

import base64
import math

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine import OPS
from service import create_app

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Wiring repairs what the negative generator broke, so only the raw phase asks for refusals.
CHECKS = [*CONFORMANCE, negative_data_rejection]

# Values for the attrs an op cannot do without, so that wired graphs reach the engine.
REQUIRED_ATTR_VALUES = {"number": 1.5, "int": 0, "bool": False, "axis": None, "axes": None,
                        "shape": [-1], "number_or_null": None, "int_or_null": None,
                        "int_list": [0], "indices": 0, "slices": [[None, None]]}

app = create_app({"TESTING": True, "DIAGRAM_MAX_NODES": 40, "COMPUTE_DEADLINE_SECONDS": 5.0})
# A body that is both malformed and over a limit may be refused as too large before the schema
# finds the fault: 413 is a refusal too.
CONFIG = {
    "seed": 15,
    "checks": {"negative_data_rejection": {
        "expected-statuses": [400, 404, 405, 413, 415, 422]}},
}
schema = schemathesis.openapi.from_wsgi(
    "/openapi.json", app, config=schemathesis.Config.from_dict(CONFIG))
# Wired graphs start from valid bodies: the engine is what they are for.
valid_bodies = schemathesis.openapi.from_wsgi("/openapi.json", app, config=schemathesis.Config
                                              .from_dict({**CONFIG, "generation": {
                                                  "mode": "positive"}}))

CAMPAIGN = settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


def wire_graph(context, body):
    """A generated body with its graph rewired into a valid DAG, its values kept."""
    if not isinstance(body, dict) or not isinstance(body.get("graph"), dict):
        return body
    nodes = [node for node in body["graph"].get("nodes", []) if isinstance(node, dict)]
    if not nodes:
        nodes = [{"op": "input", "value": 1.0}]
    wired = []
    for i, node in enumerate(nodes):
        wired.append(_wired_node(node, i, [n["id"] for n in wired]))
    body = {**body, "graph": {"nodes": wired, "output": wired[-1]["id"]}}
    ids = {node["id"] for node in wired}
    for key in ("wrt", "check"):
        if isinstance(body.get(key), list):
            body[key] = [name for name in body[key] if name in ids] or None
            if body[key] is None:
                del body[key]
    if isinstance(body.get("inputs"), dict):
        variables = [n["id"] for n in wired if n["op"] == "input"]
        body["inputs"] = {name: _fitted(value) for name, value
                          in zip(variables, body["inputs"].values(), strict=False)}
    if "seed" in body:
        body["seed"] = _fitted(body["seed"])
    return body


def _wired_node(node: dict, i: int, earlier: list[str]) -> dict:
    op = OPS.get(node.get("op")) or OPS["input"]
    if op.is_source or not earlier:
        value = _fitted(node.get("value", 1.0))
        return {"id": f"n{i}", "op": "const" if op.is_source and not op.is_variable else "input",
                "value": value}
    low, high = op.arity
    asked = node.get("inputs")
    asked = len(asked) if isinstance(asked, list) else 0
    count = max(low, asked) if high is None else min(max(low, asked), high)
    inputs = [earlier[(i + k) % len(earlier)] for k in range(count)]
    attrs = {a.name: _required_value(a) for a in op.attrs if a.required}
    return {"id": f"n{i}", "op": op.name, "inputs": inputs, "attrs": attrs}


def _required_value(attr):
    """A value of the attr's kind; a kind this table does not know gets none (a 422 then)."""
    if attr.kind == "choice":
        return attr.choices[0]
    return REQUIRED_ATTR_VALUES.get(attr.kind)


def _fitted(value):
    """An encoded tensor whose bytes fit its dtype and shape, when that is few bytes (a shape
    with a zero and huge dimensions included): the engine then sees the generated shape."""
    if not isinstance(value, dict) or value.get("dtype") not in ("float64", "float32"):
        return value
    shape = value.get("shape")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        return value
    size = math.prod(shape) * (8 if value["dtype"] == "float64" else 4)
    if size > 4096:
        return value
    return {**value, "b64": base64.b64encode(bytes(size)).decode()}


@pytest.mark.timeout(120)
@schema.parametrize()
@CAMPAIGN
def test_raw_generated_requests(case):
    case.call_and_validate(checks=CHECKS)


@pytest.mark.timeout(120)
@valid_bodies.hooks.apply(wire_graph, name="map_body")
@valid_bodies.include(method="POST").parametrize()
@settings(CAMPAIGN, max_examples=40)
def test_wired_graphs(case):
    case.call_and_validate(checks=CONFORMANCE)


# (method, path template, status) of every call the stateful phase made
STATEFUL_CALLS: list[tuple[str, str, int]] = []


# The stateful phase walks the links from wired, valid requests: most POSTs answer 200 and
# lead on to GET /v1/results/{hash}.
linked = schemathesis.openapi.from_wsgi("/openapi.json", app, config=schemathesis.Config
                                        .from_dict({**CONFIG, "generation": {
                                            "mode": "positive"}}))
linked.hooks.register_hook_with_name(wire_graph, "map_body")


class ResultLinks(linked.as_state_machine()):
    """POST a computation, then follow its link to GET /v1/results/{hash}."""

    def validate_response(self, response, case, **kwargs):
        STATEFUL_CALLS.append((case.method, case.path, response.status_code))
        case.validate_response(response, checks=CONFORMANCE)


TestResultLinks = ResultLinks.TestCase
TestResultLinks.settings = settings(
    max_examples=10, stateful_step_count=5, derandomize=True, database=None, deadline=None,
    suppress_health_check=list(HealthCheck),
)


def test_the_stateful_phase_followed_the_links_to_stored_results():
    """Runs after TestResultLinks (file order): the links led to results that were found."""
    assert ("GET", "/v1/results/{hash}", 200) in STATEFUL_CALLS
