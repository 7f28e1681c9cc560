"""No input, however malformed, produces a 500: arbitrary JSON in every place of a request."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KINDS = ["gradients", "evaluate", "gradcheck", "diagram"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "x", "NaN", "Infinity", "-Infinity", "input", "add", "mul"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "op", "inputs", "value", "attrs", "x", "b64",
                                       "dtype", "shape", "axis"]), children, max_size=4),
    max_leaves=12,
)

op_names = st.sampled_from(
    ["input", "const", "add", "mul", "sub", "div", "max", "min", "neg", "inv", "add_const",
     "scale", "pow", "exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu", "sum", "mean",
     "matmul", "transpose", "reshape", "softmax", "log_softmax", "nope"]
)
attr_values = st.one_of(
    st.integers(-3, 3), st.lists(st.integers(-3, 5), max_size=3), st.booleans(), st.none(),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=3),
)
small_tensors = st.one_of(
    st.floats(-3, 3), st.lists(st.floats(-3, 3), min_size=1, max_size=4),
    st.lists(st.lists(st.floats(-3, 3), min_size=2, max_size=2), min_size=1, max_size=3),
)


@st.composite
def plausible_graphs(draw) -> dict:
    """Graphs that are almost right: real ops, wrong arities, attrs, shapes, references."""
    count = draw(st.integers(1, 6))
    ids = [f"n{i}" for i in range(count)]
    nodes = []
    for i, node_id in enumerate(ids):
        op = draw(op_names)
        node: dict = {"id": node_id, "op": op}
        if op in ("input", "const"):
            if draw(st.booleans()) or op == "const":
                node["value"] = draw(small_tensors)
        else:
            pool = ids[:i] or ids
            node["inputs"] = draw(st.lists(st.sampled_from(pool + ["ghost"]), max_size=3))
            if draw(st.booleans()):
                node["attrs"] = draw(st.dictionaries(
                    st.sampled_from(["c", "a", "exponent", "axis", "keepdims", "axes", "shape"]),
                    attr_values, max_size=2))
        nodes.append(node)
    return {"graph": {"nodes": nodes, "output": draw(st.sampled_from(ids))}}


FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(body=json_values)
def test_arbitrary_json_is_never_a_server_error(client, kind, body):
    # The standard library writes integers of any size, which the service must read safely.
    response = client.post(f"/v1/{kind}", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code in (400, 413, 422), response.data


@pytest.mark.parametrize("kind", KINDS)
@FAST
@given(request=plausible_graphs(), seed=st.none() | small_tensors,
       wrt=st.none() | st.lists(st.sampled_from(["n0", "n1", "zz"]), max_size=2))
def test_almost_right_graphs_are_answered_or_refused_never_500(client, kind, request, seed, wrt):
    if seed is not None:
        request["seed"] = seed
    if wrt is not None:
        request["wrt"] = wrt
    response = client.post(f"/v1/{kind}", json=request)
    assert response.status_code in (200, 413, 422), response.data
    if response.status_code != 200:
        error = response.get_json()["error"]
        assert error["code"] and error["message"]


@pytest.mark.parametrize("depth", [300, 1015])  # past orjson's writing depth; near its reading
@pytest.mark.parametrize("attr, open_, close", [
    ("axis", "[", "]"), ("indices", "[", "]"), ("axis", '{"a":', "}")])
@pytest.mark.parametrize("path", ["/v1/evaluate", "/v1/graphs"])
def test_attrs_nested_as_deep_as_json_reads_are_refused_not_500(client, path, depth, attr,
                                                                 open_, close):
    op = "take" if attr == "indices" else "sum"
    deep = open_ * depth + "0" + close * depth
    body = ('{"graph": {"nodes": [{"id": "x", "op": "input", "value": [1.0, 2.0]}, {"id": "s", '
            f'"op": "{op}", "inputs": ["x"], "attrs": {{"{attr}": {deep}}}}}], "output": "s"}}}}')
    response = client.post(path, data=body, content_type="application/json")
    error = response.get_json()["error"]
    assert (response.status_code, error["code"], error["node"]) == (422, "bad_attr", "s")
