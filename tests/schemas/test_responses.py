"""Response bodies: the contract's shapes, spellings, encodings, the cached flag and errors."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings

from engine import GradCheck, RunResult, bind_sources, compile_plan, gradcheck, run_graph
from schemas import (
    dump_evaluate,
    dump_gradcheck,
    dump_result,
    error_body,
    load_request,
    mark_cached,
)
from schemas.responses import (
    CACHED_FALSE_SUFFIX,
    ErrorSchema,
    EvaluateResponseSchema,
    GradcheckResponseSchema,
    GradientsResponseSchema,
)
from schemas.tensors import decode_tensor
from tests.schemas.wire_cases import circuit_request, float_arrays

HASH = "ab" * 32


def circuit_result(**fields) -> RunResult:
    request = load_request("gradients", circuit_request(**fields))
    return run_graph(request.graph, request.inputs, seed=request.seed, wrt=request.wrt)


def test_gradients_body_is_the_contract_example():
    body = dump_result(circuit_result(), hash=HASH, encoding="json")
    assert orjson.loads(body) == {
        "hash": HASH,
        "output": "f",
        "value": -12.0,
        "nodes": {
            "x": {"value": -2.0, "grad": -4.0},
            "y": {"value": 5.0, "grad": -4.0},
            "z": {"value": -4.0, "grad": 3.0},
            "q": {"value": 3.0, "grad": -4.0},
            "f": {"value": -12.0, "grad": 1.0},
        },
        "cached": False,
    }
    assert body.endswith(CACHED_FALSE_SUFFIX)
    GradientsResponseSchema().load(orjson.loads(body))


def test_nodes_are_written_in_the_results_topological_order():
    result = circuit_result()
    nodes = orjson.loads(dump_result(result, hash=HASH, encoding="json"))["nodes"]
    assert list(nodes) == result.order
    assert list(nodes).index("q") < list(nodes).index("f")


def test_evaluate_body_has_values_alone():
    request = load_request("evaluate", circuit_request(wrt=["q"]))
    result = run_graph(request.graph, request.inputs, wrt=request.wrt, forward_only=True)
    body = dump_evaluate(result, hash=HASH, encoding="json")
    assert orjson.loads(body) == {"hash": HASH, "output": "f", "value": -12.0,
                                  "nodes": {"q": {"value": 3.0}}, "cached": False}
    EvaluateResponseSchema().load(orjson.loads(body))


def tensor_result(**fields) -> RunResult:
    data = {"graph": {"nodes": [
        {"id": "m", "op": "input", "value": [[1.0, -0.0], [0.0, 4.0]]},
        {"id": "l", "op": "log", "inputs": ["m"]},
        {"id": "s", "op": "sum", "inputs": ["l"]},
    ], "output": "s"}, **fields}
    request = load_request("gradients", data)
    return run_graph(request.graph, request.inputs)


def test_nonfinite_results_are_spelled_and_finite_ones_are_numbers():
    body = orjson.loads(dump_result(tensor_result(), hash=HASH, encoding="json"))
    assert body["value"] == "-Infinity"
    assert body["nodes"]["l"]["value"] == [[0.0, "-Infinity"], ["-Infinity", math.log(4.0)]]
    assert body["nodes"]["l"]["grad"] == [[1.0, 1.0], [1.0, 1.0]]
    assert body["nodes"]["m"]["grad"] == [[1.0, "-Infinity"], ["Infinity", 0.25]]
    GradientsResponseSchema().load(body)


def test_b64_encoding_writes_arrays_as_float64_objects_and_scalars_as_numbers():
    result = tensor_result()
    plain = orjson.loads(dump_result(result, hash=HASH, encoding="json"))
    encoded = orjson.loads(dump_result(result, hash=HASH, encoding="b64"))
    assert encoded["value"] == "-Infinity"
    grad = encoded["nodes"]["m"]["grad"]
    assert grad["dtype"] == "float64" and grad["shape"] == [2, 2]
    for name in ("m", "l"):
        for part in ("value", "grad"):
            np.testing.assert_array_equal(
                decode_tensor(encoded["nodes"][name][part]),
                decode_tensor(plain["nodes"][name][part]),
            )
    GradientsResponseSchema().load(encoded)


def test_scalar_results_spell_only_their_nonfinite_values():
    values = [1.0, math.inf, -2.5, math.nan, -math.inf]
    result = RunResult(output="e", value=-math.inf, order=list("abcde"), value_list=values,
                       grad_list=[0.0, 1.0, math.nan, 2.0, 3.0])
    body = orjson.loads(dump_result(result, hash=HASH, encoding="json"))
    assert [node["value"] for node in body["nodes"].values()] == [
        1.0, "Infinity", -2.5, "NaN", "-Infinity"]
    assert [node["grad"] for node in body["nodes"].values()] == [0.0, 1.0, "NaN", 2.0, 3.0]
    assert body["value"] == "-Infinity"
    assert values[1] == math.inf  # the result itself is left alone


def test_large_results_are_written_by_numpy():
    values = np.linspace(-1, 1, 200_000).reshape(400, 500)
    result = RunResult(output="v", value=values, order=["v"], value_list=[values],
                       grad_list=[np.ones_like(values)])
    body = orjson.loads(dump_result(result, hash=HASH, encoding="json"))
    assert np.array_equal(np.array(body["value"]), values)
    assert np.array_equal(np.array(body["nodes"]["v"]["grad"]), np.ones((400, 500)))


@settings(max_examples=30, deadline=None)
@given(float_arrays())
def test_both_encodings_describe_identical_numbers(array):
    result = RunResult(output="v", value=array, order=["v"], value_list=[array],
                       grad_list=[array])
    plain = orjson.loads(dump_result(result, hash=HASH, encoding="json"))
    encoded = orjson.loads(dump_result(result, hash=HASH, encoding="b64"))
    for body in (plain, encoded):
        back = decode_tensor(body["value"])
        assert back.shape == array.shape and back.tobytes() == array.tobytes()


# ---------------------------------------------------------------- gradcheck


def test_gradcheck_body_lists_small_tensors_and_sorts_checks():
    data = circuit_request(inputs={"x": [1.0, 2.0]})
    request = load_request("gradcheck", data)
    sources = bind_sources(request.graph, request.inputs)
    plan = compile_plan(request.graph, {name: v.shape for name, v in sources.items()})
    checks = gradcheck(plan, sources, check=["z", "x"])
    body = orjson.loads(dump_gradcheck(checks, hash=HASH))
    assert list(body) == ["hash", "checks", "passed", "cached"]
    assert list(body["checks"]) == ["x", "z"]
    assert body["passed"] is True and body["cached"] is False
    x = body["checks"]["x"]
    assert x["verdict"] == "good" and x["analytic"] == [-4.0, -4.0]
    assert np.allclose(x["numeric"], [-4.0, -4.0])
    assert type(body["checks"]["z"]["analytic"]) is float
    GradcheckResponseSchema().load(body)


def circuit_checks(**inputs) -> dict[str, GradCheck]:
    request = load_request("gradcheck", circuit_request(inputs=inputs))
    sources = bind_sources(request.graph, request.inputs)
    plan = compile_plan(request.graph, {name: v.shape for name, v in sources.items()})
    return gradcheck(plan, sources)


def test_gradcheck_b64_encoding_writes_tensors_as_objects_and_scalars_as_numbers():
    checks = circuit_checks(x=[1.0, 2.0], y=[[3.0], [4.0]])
    plain = orjson.loads(dump_gradcheck(checks, hash=HASH, encoding="json"))
    encoded = orjson.loads(dump_gradcheck(checks, hash=HASH, encoding="b64"))
    x = encoded["checks"]["x"]
    assert x["analytic"]["dtype"] == "float64" and x["analytic"]["shape"] == [2]
    assert encoded["checks"]["y"]["numeric"]["shape"] == [2, 1]
    assert type(encoded["checks"]["z"]["analytic"]) is float
    for name in ("x", "y", "z"):
        for part in ("analytic", "numeric"):
            back = decode_tensor(encoded["checks"][name][part])
            assert back.tobytes() == decode_tensor(plain["checks"][name][part]).tobytes()
            assert back.tobytes() == np.asarray(getattr(checks[name], part)).tobytes()
        assert encoded["checks"][name]["max_rel_error"] == plain["checks"][name]["max_rel_error"]
    GradcheckResponseSchema().load(encoded)


def test_gradcheck_leaves_out_big_tensors_and_fails_on_wrong():
    big = GradCheck(0.5, "wrong", np.zeros(65), np.ones(65))
    small = GradCheck(math.nan, "wrong", np.zeros(64), np.full(64, math.nan))
    body = orjson.loads(dump_gradcheck({"b": big, "a": small}, hash=HASH))
    assert body["passed"] is False
    assert "analytic" not in body["checks"]["b"] and "numeric" not in body["checks"]["b"]
    assert body["checks"]["a"]["max_rel_error"] == "NaN"
    assert body["checks"]["a"]["numeric"] == ["NaN"] * 64
    GradcheckResponseSchema().load(body)


# ---------------------------------------------------------------- cached flag and errors


def test_mark_cached_flips_only_the_flag():
    fresh = dump_result(circuit_result(), hash=HASH, encoding="json")
    cached = mark_cached(fresh)
    assert cached.endswith(b',"cached":true}')
    assert cached[: -len(b"true}")] == fresh[: -len(b"false}")]
    assert orjson.loads(cached) == {**orjson.loads(fresh), "cached": True}


def test_mark_cached_refuses_other_bodies():
    with pytest.raises(ValueError, match="not a result body"):
        mark_cached(b'{"cached":true}')


def test_error_body_shape():
    body = orjson.loads(error_body("unknown_op", "unknown op 'plus'", node="q"))
    assert body == {"error": {"code": "unknown_op", "message": "unknown op 'plus'", "node": "q",
                              "details": None}}
    ErrorSchema().load(body)


def test_error_body_writes_marshmallow_messages_with_index_keys():
    details = {"graph": {"nodes": {3: {"id": ["Missing data for required field."]}}}}
    body = orjson.loads(error_body("validation_error", "invalid", details=details))
    assert body["error"]["details"] == {
        "graph": {"nodes": {"3": {"id": ["Missing data for required field."]}}}
    }
    assert body["error"]["node"] is None
    ErrorSchema().load(body)
