"""Request loading: every field's error (code and path), the kinds, defaults, and unknown ops."""

from __future__ import annotations

import numpy as np
import pytest
from marshmallow import ValidationError

from engine import Graph, Node, UnknownOp
from schemas import REQUEST_KINDS, Request, load_request
from schemas.requests import REQUEST_SCHEMAS
from tests.schemas.wire_cases import circuit_request

INVALID_BOOLEAN = ["Not a valid boolean."]
MISSING = ["Missing data for required field."]
UNKNOWN = ["Unknown field."]
NOT_STRING = ["Not a valid string."]
NOT_LIST = ["Not a valid list."]


def errors_of(kind: str, data: object) -> dict:
    with pytest.raises(ValidationError) as caught:
        load_request(kind, data)
    return caught.value.messages


def node_errors(node_fields: dict, index: int = 3) -> dict:
    """Errors from replacing fields of the circuit's node `index` (q, the add)."""
    data = circuit_request()
    data["graph"]["nodes"][index].update(node_fields)
    return errors_of("gradients", data)["graph"]["nodes"][index]


def test_the_contract_example_loads_into_engine_objects():
    request = load_request("gradients", circuit_request(seed=2, wrt=["x", "y"]))
    assert isinstance(request, Request) and isinstance(request.graph, Graph)
    x, y, z, q, f = request.graph.nodes
    assert x == Node("x", "input", (), {}, x.value) and x.value.shape == () and x.value == -2.0
    assert q == Node("q", "add", ("x", "y"), {}, None)
    assert f.inputs == ("q", "z") and request.graph.output == "f"
    assert request.seed == 2.0 and request.wrt == ["x", "y"]


def test_defaults_of_every_kind():
    for kind in REQUEST_KINDS:
        if kind in ("jacobian", "optimize"):  # wrt is required there; params etc. here
            continue
        request = load_request(kind, circuit_request())
        assert request.inputs == {} and request.seed is None and request.wrt is None
        assert request.encoding == "json" and request.cache is True
        assert request.allow_nonfinite is False
        assert request.eps == 1e-5 and request.check is None and request.format == "svg"


def test_kind_specific_fields():
    request = load_request("gradcheck", circuit_request(eps=1e-3, check=["x"]))
    assert request.eps == 1e-3 and request.check == ["x"]
    assert load_request("diagram", circuit_request(format="png")).format == "png"
    assert errors_of("evaluate", circuit_request(seed=1.0)) == {"seed": UNKNOWN}
    assert errors_of("gradients", circuit_request(eps=1e-3)) == {"eps": UNKNOWN}
    assert errors_of("gradients", circuit_request(format="svg")) == {"format": UNKNOWN}
    assert errors_of("evaluate", circuit_request(check=["x"])) == {"check": UNKNOWN}


def test_each_kind_takes_the_gradients_request_plus_its_own_fields():
    """The contract: evaluate is gradients without seed; gradcheck and diagram are the
    gradients request plus eps/check and format. A batch (with reduce where there is a
    backward pass to reduce) is taken by gradients, evaluate and jacobian (section 5)."""
    gradients = {"graph", "inputs", "allow_nonfinite", "seed", "wrt", "encoding", "cache"}
    batched = {"batch", "reduce"}
    assert {kind: set(schema.fields) for kind, schema in REQUEST_SCHEMAS.items()} == {
        "gradients": gradients | batched,
        "evaluate": gradients - {"seed"} | {"batch"},
        "gradcheck": gradients | {"eps", "check"},
        "diagram": gradients | {"format"},
        "jacobian": gradients - {"seed"} | {"batch"},
        "optimize": gradients - {"seed", "wrt"} | {
            "batch", "batch_size", "shuffle_seed", "params", "goal", "optimizer", "lr_schedule",
            "steps", "stop", "record_every"},
    }


def test_a_batch_and_its_faults_name_the_inputs():
    request = load_request("gradients", circuit_request(batch={"x": [1, 2]}, reduce="mean"))
    assert request.batch["x"].tolist() == [1.0, 2.0] and request.reduce == "mean"
    assert load_request("gradients", circuit_request()).reduce == "none"
    assert errors_of("gradients", circuit_request(batch={"x": [1, 2]}, inputs={"x": 1})) == {
        "batch": {"x": ["input 'x' is both in batch and in inputs; it is batched or shared, "
                        "not both"]}}
    assert errors_of("gradients", circuit_request(batch={"x": [1, 2], "y": [1]})) == {
        "batch": {"y": ["every batch array needs the same leading length B; got 'x' 2, "
                        "'y' 1"]}}
    assert errors_of("gradients", circuit_request(batch={"x": 3})) == {
        "batch": {"x": ["'x' needs a leading batch axis: one entry per point"]}}
    assert errors_of("gradients", circuit_request(batch={"x": []})) == {
        "batch": {"x": ["'x' holds no points; a batch needs at least one"]}}
    assert errors_of("gradients", circuit_request(batch={})) == {
        "batch": ["a batch names one or more inputs"]}
    assert errors_of("gradients", circuit_request(batch={"x": [1]}, reduce="max")) == {
        "reduce": ["Must be one of: none, sum, mean."]}
    assert errors_of("gradcheck", circuit_request(batch={"x": [1]})) == {"batch": UNKNOWN}
    assert errors_of("evaluate", circuit_request(batch={"x": [1]}, reduce="sum")) == {
        "reduce": UNKNOWN}


def test_jacobian_needs_wrt_and_takes_no_seed():
    assert load_request("jacobian", circuit_request(wrt=["x"])).wrt == ["x"]
    assert errors_of("jacobian", circuit_request()) == {
        "wrt": ["Missing data for required field."]}
    assert "wrt" in errors_of("jacobian", circuit_request(wrt=[]))
    assert errors_of("jacobian", circuit_request(wrt=["x"], seed=1.0)) == {"seed": UNKNOWN}


def test_gradcheck_takes_an_encoding_and_the_gradients_fields():
    assert load_request("gradcheck", circuit_request(encoding="b64")).encoding == "b64"
    assert errors_of("gradcheck", circuit_request(encoding="hex")) == {
        "encoding": ["Must be one of: json, b64."]
    }
    assert load_request("gradcheck", circuit_request(wrt=["x"], cache=False)).wrt == ["x"]


def test_diagram_takes_the_gradients_fields():
    request = load_request("diagram", circuit_request(seed=2.0, wrt=["x"], allow_nonfinite=True,
                                                      encoding="json", cache=False))
    assert request.seed == 2.0 and request.wrt == ["x"] and request.allow_nonfinite
    assert errors_of("diagram", circuit_request(format="gif")) == {
        "format": ["Must be one of: svg, dot, png."]}


def test_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown request kind"):
        load_request("integrate", circuit_request())


# ---------------------------------------------------------------- top-level fields


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"colour": "red"}, {"colour": UNKNOWN}),
        ({"inputs": [1]}, {"inputs": ["Not a valid mapping type."]}),
        ({"inputs": {"x": True}}, {"inputs": {"x": {"value": [
            'a boolean is not a tensor: expected a number, a rectangular nested list of '
            'numbers, or {"dtype", "shape", "b64"}']}}}),
        ({"inputs": None}, {"inputs": ["Field may not be null."]}),
        ({"seed": None}, {"seed": ["Field may not be null: a tensor is required."]}),
        ({"seed": "one"}, {"seed": [
            'a string other than NaN, Infinity or -Infinity is not a tensor: expected a number, '
            'a rectangular nested list of numbers, or {"dtype", "shape", "b64"}']}),
        ({"wrt": "x"}, {"wrt": NOT_LIST}),
        ({"wrt": [1]}, {"wrt": {0: NOT_STRING}}),
        ({"wrt": None}, {"wrt": ["Field may not be null."]}),
        ({"encoding": "base64"}, {"encoding": ["Must be one of: json, b64."]}),
        ({"cache": "false"}, {"cache": INVALID_BOOLEAN}),
        ({"cache": 0}, {"cache": INVALID_BOOLEAN}),
        ({"allow_nonfinite": 1}, {"allow_nonfinite": INVALID_BOOLEAN}),
    ],
)
def test_top_level_field_errors(fields, expected):
    assert errors_of("gradients", circuit_request(**fields)) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"eps": 0}, {"eps": ["Must be greater than 0."]}),
        ({"eps": -1e-5}, {"eps": ["Must be greater than 0."]}),
        ({"eps": "1e-5"}, {"eps": ["Not a valid number."]}),
        ({"eps": True}, {"eps": ["Not a valid number."]}),
        ({"eps": float("inf")}, {"eps": [
            "Special numeric values (nan or infinity) are not permitted."]}),
        ({"check": ["x", 2]}, {"check": {1: NOT_STRING}}),
    ],
)
def test_gradcheck_field_errors(fields, expected):
    assert errors_of("gradcheck", circuit_request(**fields)) == expected


def test_diagram_format_must_be_known():
    assert errors_of("diagram", circuit_request(format="gif")) == {
        "format": ["Must be one of: svg, dot, png."]
    }


def test_body_must_be_an_object():
    assert errors_of("gradients", [1, 2]) == {"_schema": ["Invalid input type."]}
    assert errors_of("gradients", {}) == {"graph": MISSING}


# ---------------------------------------------------------------- graph and node fields


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ("f", {"_schema": ["Invalid input type."]}),
        ({"nodes": []}, {"output": MISSING}),
        ({"output": "f"}, {"nodes": MISSING}),
        ({"nodes": {}, "output": "f"}, {"nodes": NOT_LIST}),
        ({"nodes": [], "output": 3}, {"output": NOT_STRING}),
        ({"nodes": [], "output": "f", "name": "g"}, {"name": UNKNOWN}),
        ({"nodes": [7], "output": "f"}, {"nodes": {0: {"_schema": ["Invalid input type."]}}}),
    ],
)
def test_graph_field_errors(graph, expected):
    assert errors_of("gradients", {"graph": graph}) == {"graph": expected}


@pytest.mark.parametrize(
    ("node_fields", "expected"),
    [
        ({"id": ""}, {"id": ["Length must be between 1 and 128."]}),
        ({"id": "n" * 129}, {"id": ["Length must be between 1 and 128."]}),
        ({"id": 5}, {"id": NOT_STRING}),
        ({"id": None}, {"id": ["Field may not be null."]}),
        ({"op": ["add"]}, {"op": NOT_STRING}),
        ({"inputs": "x"}, {"inputs": NOT_LIST}),
        ({"inputs": ["x", 1]}, {"inputs": {1: NOT_STRING}}),
        ({"attrs": []}, {"attrs": ["Not a valid mapping type."]}),
        ({"weight": 1}, {"weight": UNKNOWN}),
    ],
)
def test_node_field_errors(node_fields, expected):
    assert node_errors(node_fields) == expected


def test_a_const_needs_a_value():
    data = circuit_request()
    data["graph"]["nodes"][2] = {"id": "z", "op": "const"}
    assert errors_of("gradients", data) == {
        "graph": {"nodes": {2: {"value": ["a const node needs a value"]}}}
    }
    data["graph"]["nodes"][2]["value"] = [-4.0, 1.0]
    assert load_request("gradients", data).graph.nodes[2].value.shape == (2,)


@pytest.mark.parametrize("value", [1.0, [1.0, 2.0], "NaN"])
def test_a_gate_takes_no_value(value):
    assert node_errors({"value": value}) == {"value": ["only input and const nodes take a value"]}


def test_an_input_may_leave_its_value_to_inputs():
    data = circuit_request(inputs={"x": 1.0})
    del data["graph"]["nodes"][0]["value"]
    assert load_request("gradients", data).graph.nodes[0].value is None


def test_a_value_on_an_unknown_op_is_left_to_unknown_op():
    data = {"graph": {"nodes": [{"id": "p", "op": "plus", "value": 1.0}], "output": "p"}}
    with pytest.raises(UnknownOp):
        load_request("gradients", data)


def test_other_field_errors_of_a_node_come_before_its_value_rule():
    assert node_errors({"value": 1.0, "id": ""}) == {"id": ["Length must be between 1 and 128."]}


def test_node_required_fields():
    data = circuit_request()
    del data["graph"]["nodes"][3]["id"]
    del data["graph"]["nodes"][4]["op"]
    assert errors_of("gradients", data) == {
        "graph": {"nodes": {3: {"id": MISSING}, 4: {"op": MISSING}}}
    }


def test_id_of_128_characters_is_accepted():
    data = circuit_request()
    data["graph"]["nodes"][0]["id"] = "n" * 128
    assert load_request("gradients", data).graph.nodes[0].id == "n" * 128


def test_errors_from_several_places_are_collected_together():
    data = circuit_request(cache="yes")
    data["graph"]["nodes"][0]["value"] = [1, None]
    data["graph"]["nodes"][2]["id"] = ""
    assert errors_of("gradients", data) == {
        "cache": INVALID_BOOLEAN,
        "graph": {"nodes": {
            0: {"value": ["element [1] is null, not a number"]},
            2: {"id": ["Length must be between 1 and 128."]},
        }},
    }


def test_attrs_are_loaded_as_given_for_the_engine_to_check():
    data = circuit_request()
    data["graph"]["nodes"][3]["attrs"] = {"a": [1, {"b": None}]}
    assert load_request("gradients", data).graph.nodes[3].attrs == {"a": [1, {"b": None}]}


def test_unknown_op_names_the_first_such_node():
    data = circuit_request()
    data["graph"]["nodes"][3]["op"] = "plus"
    data["graph"]["nodes"][4]["op"] = "times"
    with pytest.raises(UnknownOp) as caught:
        load_request("gradients", data)
    assert caught.value.code == "unknown_op" and caught.value.node == "q"
    assert "'plus'" in caught.value.message


def test_field_errors_come_before_unknown_ops():
    data = circuit_request(cache=2)
    data["graph"]["nodes"][3]["op"] = "plus"
    assert errors_of("gradients", data) == {"cache": INVALID_BOOLEAN}


def test_engine_checks_are_left_to_the_engine():
    # Arity, unknown references and cycles load; compile_plan reports them with the node.
    data = {"graph": {"nodes": [{"id": "a", "op": "neg", "inputs": ["a", "b"]}], "output": "c"}}
    request = load_request("gradients", data)
    assert request.graph.nodes[0].inputs == ("a", "b")


def test_inputs_decode_to_arrays():
    request = load_request("gradients", circuit_request(inputs={"x": [1, 2], "y": 3}))
    np.testing.assert_array_equal(request.inputs["x"], [1.0, 2.0])
    assert request.inputs["y"].shape == ()


def test_many_scalar_inputs_load_like_one():
    inputs = {f"x{i}": i * 0.5 for i in range(1000)}
    inputs["x7"] = 7
    request = load_request("gradients", circuit_request(inputs=inputs))
    assert list(request.inputs) == list(inputs)
    for key, value in inputs.items():
        array = request.inputs[key]
        assert array.shape == () and array.dtype == np.float64 and array == value
    mixed = load_request("gradients", circuit_request(inputs={"x": 1, "y": [2.0]}))
    assert mixed.inputs["x"].shape == () and mixed.inputs["y"].shape == (1,)


# ---------------------------------------------------------------- many encoded scalar inputs


def _b64(number: float, dtype: str = "<f8") -> str:
    import base64

    return base64.b64encode(np.asarray(number, dtype=dtype).tobytes()).decode()


def _encoded(number: float) -> dict:
    return {"dtype": "float64", "shape": [], "b64": _b64(number)}


def test_many_encoded_scalar_inputs_load_as_one_by_one():
    numbers = [0.5, -0.0, 1e-300, np.nan, np.inf, 3.0]
    inputs = {f"x{i}": _encoded(v) for i, v in enumerate(numbers)}
    many = load_request("gradients", {**circuit_request(), "inputs": inputs}).inputs
    for key, value in inputs.items():
        alone = load_request("gradients", {**circuit_request(), "inputs": {key: value}}).inputs
        assert alone[key].shape == many[key].shape == ()
        assert alone[key].tobytes() == many[key].tobytes()


@pytest.mark.parametrize("odd_one", [
    {"dtype": "float64", "shape": [], "b64": "not base64!!"},
    {"dtype": "float64", "shape": [], "b64": _b64(1.0)[:-1] + "x"},
    {"dtype": "float32", "shape": [], "b64": _b64(1.0, "<f4")},
    {"dtype": "float64", "shape": [1], "b64": _b64(1.0)},
    {"dtype": "float64", "shape": [], "b64": _b64(1.0), "extra": 1},
])
def test_an_odd_encoded_input_among_many_loads_or_fails_as_it_would_alone(odd_one):
    inputs = {"a": _encoded(1.0), "b": odd_one, "c": _encoded(2.0)}

    def outcome(value: dict) -> object:
        try:
            return load_request("gradients", {**circuit_request(), "inputs": value}).inputs["b"]
        except ValidationError as error:
            return error.messages

    together, alone = outcome(inputs), outcome({"b": odd_one})
    if isinstance(alone, dict):
        assert together == alone
    else:
        assert together.tobytes() == alone.tobytes() and together.shape == alone.shape
