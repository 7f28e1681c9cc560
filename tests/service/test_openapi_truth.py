"""The OpenAPI document says what the server does (issue 15): exclusive bounds, a results
schema a body matches once, value rules on nodes, examples the server really answers, the
package version, PNG as binary, and links from each result to where it is stored."""

from __future__ import annotations

import jsonschema
import pytest

from schemas import examples
from schemas.catalog import package_version
from schemas.openapi import GET_RESULT
from service import create_app

JSON = "application/json"


@pytest.fixture(scope="module")
def app():
    return create_app({"TESTING": True})


@pytest.fixture(scope="module")
def spec(app) -> dict:
    return app.test_client().get("/openapi.json").get_json()


def _validator(spec: dict, schema: dict) -> jsonschema.Draft4Validator:
    """A validator for `schema` with the document's components reachable by $ref."""
    return jsonschema.Draft4Validator({**schema, "components": spec["components"]})


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def test_gradcheck_eps_excludes_zero_as_the_server_does(spec, app):
    eps = spec["components"]["schemas"]["GradcheckRequest"]["properties"]["eps"]
    assert eps["minimum"] == 0 and eps["exclusiveMinimum"] is True
    graph = {"nodes": [{"id": "x", "op": "input", "value": 1}], "output": "x"}
    response = app.test_client().post("/v1/gradcheck", json={"graph": graph, "eps": 0})
    assert response.status_code == 422


def test_a_stored_result_matches_the_results_schema(spec, app):
    # an evaluate body that reports no node matches both response schemas: anyOf, not oneOf
    schema = spec["paths"]["/v1/results/{hash}"]["get"]["responses"]["200"]["content"][JSON]
    assert "anyOf" in schema["schema"] and "oneOf" not in schema["schema"]
    client = app.test_client()
    graph = {"nodes": [{"id": "x", "op": "input", "value": 1}], "output": "x"}
    posted = client.post("/v1/evaluate", json={"graph": graph, "wrt": []}).get_json()
    assert posted["nodes"] == {}
    stored = client.get(f"/v1/results/{posted['hash']}").get_json()
    _validator(spec, schema["schema"]).validate(stored)


@pytest.mark.parametrize("node, valid", [
    ({"id": "c", "op": "const"}, False),
    ({"id": "c", "op": "const", "value": 1}, True),
    ({"id": "x", "op": "input"}, True),
    ({"id": "g", "op": "neg", "inputs": ["x"], "value": 1}, False),
    ({"id": "g", "op": "neg", "inputs": ["x"]}, True),
])
def test_node_value_rules_are_in_the_schema(spec, node, valid):
    validator = _validator(spec, {"$ref": "#/components/schemas/Node"})
    assert validator.is_valid(node) is valid


@pytest.mark.parametrize("value, valid", [
    ([1, [2]], False), ([[1], 2], False), ([[1, 2], [3, 4]], True), ([1.5, "NaN"], True),
])
def test_lists_that_mix_numbers_and_lists_are_outside_the_schema(spec, value, valid):
    validator = _validator(spec, {"$ref": "#/components/schemas/Tensor"})
    assert validator.is_valid(value) is valid


def test_every_operation_has_request_and_response_examples(spec):
    for path, method, operation in _operations(spec):
        if "requestBody" in operation:
            assert operation["requestBody"]["content"][JSON].get("example"), (path, method)
        ok = operation["responses"].get("200")
        content = ok.get("content", {}) if ok else {}
        assert any("example" in media for media in content.values()), (path, method)


def test_the_examples_are_what_the_server_answers(spec, app):
    client = app.test_client()
    registered = client.post("/v1/graphs", json={"graph": examples.EXAMPLE_GRAPH})
    assert registered.get_json() == examples.GRAPH_SUMMARY_EXAMPLE
    graph = client.get(f"/v1/graphs/{examples.GRAPH_ID}").get_json()
    assert graph == examples.GRAPH_RESOURCE_EXAMPLE
    for path, method, operation in _operations(spec):
        if method != "post" or path == "/v1/graphs":
            continue
        request = operation["requestBody"]["content"][JSON]["example"]
        response = client.post(path.replace("{id}", examples.GRAPH_ID), json=request)
        assert response.status_code == 200, (path, response.data)
        content = operation["responses"]["200"]["content"]
        if JSON in content:
            answer = response.get_json()  # a registered graph's request hits the inline one
            assert {**answer, "cached": False} == content[JSON]["example"], path
        else:
            assert response.get_data(as_text=True).startswith("digraph circuit {")
    stored = spec["paths"]["/v1/results/{hash}"]["get"]["responses"]["200"]["content"][JSON]
    example = stored["example"]
    assert client.get(f"/v1/results/{example['hash']}").get_json() == example


def test_document_version_is_the_package_version(spec, app):
    assert spec["info"]["version"] == package_version()
    assert package_version()[0].isdigit()
    page = app.test_client().get("/docs").get_data(as_text=True)
    assert f"chainrule {package_version()}" in page


def test_png_is_binary(spec):
    content = spec["paths"]["/v1/diagram"]["post"]["responses"]["200"]["content"]
    assert content["image/png"]["schema"] == {"type": "string", "format": "binary"}


def test_every_cached_result_links_to_where_it_is_stored(spec):
    get_result = spec["paths"]["/v1/results/{hash}"]["get"]
    assert get_result["operationId"] == GET_RESULT
    assert "304" in get_result["responses"]
    for path in ("/v1/gradients", "/v1/evaluate", "/v1/gradcheck"):
        links = spec["paths"][path]["post"]["responses"]["200"]["links"]
        assert links["GetResult"] == {
            "operationId": GET_RESULT, "parameters": {"hash": "$response.body#/hash"},
            "description": links["GetResult"]["description"]}


BATCH_GRAPH = {"nodes": [{"id": "x", "op": "input"}, {"id": "f", "op": "sin", "inputs": ["x"]}],
               "output": "f"}


@pytest.mark.parametrize("batch, valid", [
    ({}, False),                      # "a batch names one or more inputs"
    ({"x": 1.0}, False),              # no leading batch axis
    ({"x": []}, False),               # no points
    ({"x": {"dtype": "float64", "shape": [], "b64": "AAAAAAAA8D8="}}, False),
    ({"x": [1.0, 2.0]}, True),
    ({"x": {"dtype": "float64", "shape": [1], "b64": "AAAAAAAA8D8="}}, True),
])
def test_the_document_refuses_the_batches_the_server_refuses(spec, app, batch, valid):
    for kind in ("gradients", "evaluate", "jacobian"):
        request = spec["components"]["schemas"][f"{kind.capitalize()}Request"]
        body = {"graph": BATCH_GRAPH, "batch": batch, **({"wrt": ["x"]} if kind == "jacobian"
                                                           else {})}
        assert _validator(spec, request).is_valid(body) is valid
        response = app.test_client().post(f"/v1/{kind}", json=body)
        assert response.status_code == (200 if valid else 422)


def test_an_empty_batch_is_bounded_in_keys_not_in_string_length(spec):
    batch = spec["components"]["schemas"]["OptimizeRequest"]["properties"]["batch"]
    assert batch["minProperties"] == 1 and "minLength" not in batch


@pytest.mark.parametrize("path", ["/v1/diagram", "/v1/graphs/{id}/diagram",
                                  "/v1/gradients", "/v1/graphs/{id}/optimize"])
def test_the_documented_headers_are_the_ones_answered(spec, app, path):
    documented = set(spec["paths"][path]["post"]["responses"]["200"]["headers"])
    client = app.test_client()
    graph = {"nodes": [{"id": "x", "op": "input", "value": 1.0},
                       {"id": "f", "op": "sin", "inputs": ["x"]}], "output": "f"}
    body = {"format": "dot"} if path.endswith("diagram") else {}
    if path.endswith("optimize"):
        body = {"params": ["x"], "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 1}
    if "{id}" in path:
        path = path.replace("{id}", client.post("/v1/graphs", json={"graph": graph})
                            .get_json()["id"])
    else:
        body["graph"] = graph
    answered = client.post(path, json=body).headers
    for header in ("ETag", "X-Cache", "X-Request-ID"):
        assert (header in documented) is (header in answered), header
