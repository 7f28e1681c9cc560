"""The OpenAPI document: valid OpenAPI 3, every contract endpoint, generated from the schemas
and the service's table of request kinds."""

from __future__ import annotations

import orjson
import pytest
from openapi_spec_validator import validate

from engine import OPS
from schemas import build_spec
from schemas.error_codes import GRAPH_FAULT_CODES
from schemas.requests import REQUEST_SCHEMAS
from service.kinds import openapi_endpoints


@pytest.fixture(scope="module")
def spec() -> dict:
    return build_spec(openapi_endpoints())


def test_document_validates_as_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_document_is_plain_json(spec):
    assert orjson.loads(orjson.dumps(spec)) == spec


def test_every_contract_endpoint_is_described(spec):
    operations = {(path, method) for path, item in spec["paths"].items() for method in item
                  if method != "parameters"}
    assert {
        ("/v1/gradients", "post"), ("/v1/evaluate", "post"), ("/v1/gradcheck", "post"),
        ("/v1/diagram", "post"), ("/v1/jacobian", "post"), ("/v1/results/{hash}", "get"),
        ("/v1/ops", "get"),
        ("/healthz", "get"), ("/readyz", "get"), ("/metrics", "get"), ("/openapi.json", "get"),
    } <= operations


@pytest.mark.parametrize(
    ("path", "request_schema", "response_schema"),
    [
        ("/v1/gradients", "GradientsRequest", "GradientsResponse"),
        ("/v1/evaluate", "EvaluateRequest", "EvaluateResponse"),
        ("/v1/gradcheck", "GradcheckRequest", "GradcheckResponse"),
        ("/v1/jacobian", "JacobianRequest", "JacobianResponse"),
    ],
)
def test_compute_endpoints_name_their_schemas_and_errors(spec, path, request_schema,
                                                         response_schema):
    post = spec["paths"][path]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{request_schema}"}
    ok = post["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{response_schema}"
    }
    assert {"ETag", "X-Cache", "X-Request-ID"} <= set(ok["headers"])
    assert {"400", "413", "415", "422", "500", "504"} <= set(post["responses"])


def test_error_responses_carry_the_error_schema(spec):
    for response in spec["components"]["responses"].values():
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
    error = spec["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"code", "message", "node", "details"}


def test_request_schemas_are_the_validating_schemas(spec):
    names = {"gradients": "GradientsRequest", "evaluate": "EvaluateRequest",
             "gradcheck": "GradcheckRequest", "diagram": "DiagramRequest",
             "jacobian": "JacobianRequest", "optimize": "OptimizeRequest"}
    for kind, schema in REQUEST_SCHEMAS.items():
        described = spec["components"]["schemas"][names[kind]]
        assert set(described["properties"]) == set(schema.fields)
        assert described["additionalProperties"] is False
        required = {"optimize": ["graph", "optimizer", "params", "steps"],
                    "jacobian": ["graph", "wrt"]}
        assert described["required"] == required.get(kind, ["graph"])


def test_op_names_come_from_the_engine_catalog(spec):
    node = spec["components"]["schemas"]["Node"]
    assert node["properties"]["op"]["enum"] == list(OPS)
    assert node["properties"]["id"]["maxLength"] == 128
    assert node["properties"]["value"] == {
        "description": "an input's default value, or a const's value (required on const; "
        "other ops take none)",
        "allOf": [{"$ref": "#/components/schemas/Tensor"}],
    }


def test_tensor_component_lists_the_three_forms(spec):
    tensor = spec["components"]["schemas"]["Tensor"]
    assert {"type": "number"} in tensor["oneOf"]
    assert {"$ref": "#/components/schemas/EncodedTensor"} in tensor["oneOf"]
    encoded = spec["components"]["schemas"]["EncodedTensor"]
    assert encoded["required"] == ["dtype", "shape", "b64"]


def test_validation_error_is_described_as_field_errors_not_a_graph_fault(spec):
    assert "validation_error" not in GRAPH_FAULT_CODES
    assert {"unknown_op", "cycle", "missing_input", "nonfinite_input"} <= set(GRAPH_FAULT_CODES)
    text = spec["components"]["responses"]["Unprocessable"]["description"]
    assert f"{', '.join(GRAPH_FAULT_CODES)} (422, graph faults" in text
    assert "validation_error (422, fields wrong per the request schema" in text


def test_diagram_answers_503_when_graphviz_cannot_draw(spec):
    responses = spec["paths"]["/v1/diagram"]["post"]["responses"]
    assert responses["503"] == {"$ref": "#/components/responses/DiagramUnavailable"}
    unavailable = spec["components"]["responses"]["DiagramUnavailable"]
    assert "diagram_unavailable" in unavailable["description"]
    assert "503" not in spec["paths"]["/v1/gradients"]["post"]["responses"]


def test_readyz_answers_503_not_ready(spec):
    not_ready = spec["paths"]["/readyz"]["get"]["responses"]["503"]
    assert not_ready["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "not_ready" in not_ready["description"]


def test_graphs_as_resources_are_described_for_every_kind(spec):
    paths = spec["paths"]
    register = paths["/v1/graphs"]["post"]
    assert {"200", "201", "413", "422"} <= set(register["responses"])
    assert register["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GraphSummary"
    }
    assert "example" in register["requestBody"]["content"]["application/json"]
    assert "404" in paths["/v1/graphs/{id}"]["get"]["responses"]
    for kind, schema in REQUEST_SCHEMAS.items():
        post = paths[f"/v1/graphs/{{id}}/{kind}"]["post"]
        body = post["requestBody"]["content"]["application/json"]
        component = f"Registered{kind.capitalize()}Request"
        assert body["schema"] == {"$ref": f"#/components/schemas/{component}"}
        described = spec["components"]["schemas"][component]
        assert set(described["properties"]) == set(schema.fields) - {"graph"}
        assert "404" in post["responses"]
        assert post["responses"]["200"] == paths[f"/v1/{kind}"]["post"]["responses"]["200"]
