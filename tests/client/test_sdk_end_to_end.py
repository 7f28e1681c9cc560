"""The SDK against the real app: micrograd-style expressions, gradients checked by centred
finite differences computed through the SDK's own `evaluate`, and every error path the service
can take."""

from __future__ import annotations

import asyncio
import math
import xml.etree.ElementTree as ET

import httpx
import numpy as np
import pytest

import chainrule_client as cr
from service import create_app
from tests.client.expressions import micrograd_readme


def numeric_grads(
    sdk: cr.Client,
    output: cr.Node,
    point: dict[cr.Node, object],
    seed: object = None,
    h: float = 1e-6,
) -> dict[str, object]:
    """d(sum(seed * output))/d(input) for each input in `point`, by centred differences,
    every function value coming from POST /v1/evaluate."""
    values = {node: np.array(value, dtype=np.float64) for node, value in point.items()}
    weights = 1.0 if seed is None else np.asarray(seed, dtype=np.float64)

    def objective(inputs) -> float:
        out = sdk.evaluate(output, inputs=inputs, wrt=[]).value
        return float(np.sum(weights * out))

    grads: dict[str, object] = {}
    for node, value in values.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            up, down = value.copy(), value.copy()
            up[index] += h
            down[index] -= h
            grad[index] = (
                objective({**values, node: up}) - objective({**values, node: down})
            ) / (2 * h)
        grads[node.id] = float(grad) if grad.ndim == 0 else grad
    return grads


def assert_gradients_match(sdk, output, point, seed=None, rtol=1e-5, atol=1e-6):
    result = sdk.gradients(output, inputs=point, seed=seed)
    numeric = numeric_grads(sdk, output, point, seed)
    for node in point:
        np.testing.assert_allclose(
            result.grad(node), numeric[node.id], rtol=rtol, atol=atol, err_msg=node.id
        )
        assert np.shape(result.grad(node)) == np.shape(point[node])
    return result


# -------------------------------------------------------------------- scalar circuits


def test_the_x_plus_y_times_z_circuit(sdk):
    x, y, z = cr.input("x", -2.0), cr.input("y", 5.0), cr.input("z", -4.0)
    q = (x + y).named("q")
    f = (q * z).named("f")
    result = sdk.gradients(f)
    assert result.value == -12.0
    assert (result.grad(x), result.grad(y), result.grad(z)) == (-4.0, -4.0, 3.0)
    assert result.node_value(q) == 3.0 and result.grad("q") == -4.0
    order = list(result.values)
    assert sorted(order) == ["f", "q", "x", "y", "z"] and order[-1] == "f"
    assert order.index("q") > max(order.index("x"), order.index("y"))
    assert result.cached is False and len(result.hash) == 64


def test_micrograds_readme_expression_matches_micrograd(sdk):
    a, b = cr.input("a", -4.0), cr.input("b", 2.0)
    g = micrograd_readme(a, b)
    result = sdk.gradients(g)
    assert result.value == pytest.approx(24.7041, abs=1e-4)
    assert result.grad(a) == pytest.approx(138.8338, abs=1e-4)
    assert result.grad(b) == pytest.approx(645.5773, abs=1e-4)

    from micrograd.engine import Value

    ma, mb = Value(-4.0), Value(2.0)
    mg = micrograd_readme(ma, mb)
    mg.backward()
    assert result.value == pytest.approx(mg.data, rel=1e-12)
    assert result.grad(a) == pytest.approx(ma.grad, rel=1e-12)
    assert result.grad(b) == pytest.approx(mb.grad, rel=1e-12)
    assert_gradients_match(sdk, g, {a: -4.0, b: 2.0}, rtol=1e-6)


def test_the_sigmoid_neuron_as_gates(sdk):
    w0, x0, w1, x1, w2 = (cr.input(n) for n in ("w0", "x0", "w1", "x1", "w2"))
    f = 1.0 / (1 + (-(w0 * x0 + w1 * x1 + w2)).exp())
    point = {w0: 2.0, x0: -1.0, w1: -3.0, x1: -2.0, w2: -3.0}
    result = assert_gradients_match(sdk, f, point)
    assert result.value == pytest.approx(0.7311, abs=1e-4)
    grads = [result.grad(n) for n in (w0, x0, w1, x1, w2)]
    assert grads == pytest.approx([-0.1966, 0.3932, -0.3932, -0.5898, 0.1966], abs=1e-4)
    assert sdk.gradients((w0 * x0 + w1 * x1 + w2).sigmoid(), inputs=point).value == (
        pytest.approx(result.value, rel=1e-12)
    )


def test_the_staged_function(sdk):
    x, y = cr.input("x"), cr.input("y")
    f = (x + y.sigmoid()) / (x.sigmoid() + (x + y) ** 2)
    assert_gradients_match(sdk, f, {x: 3.0, y: -4.0})


def test_max_routes_and_mul_swaps(sdk):
    x, y, z, w = cr.input("x"), cr.input("y"), cr.input("z"), cr.input("w")
    f = 2 * (x * y + cr.maximum(z, w))
    result = assert_gradients_match(sdk, f, {x: 3.0, y: -4.0, z: 2.0, w: -1.0})
    assert (result.grad(x), result.grad(y), result.grad(z), result.grad(w)) == (-8, 6, 2, 0)


def test_scalar_functions_of_the_catalog(sdk):
    x, y = cr.input("x"), cr.input("y")
    f = (
        cr.inv(x) + cr.add_const(y, 2.5) * cr.scale(x, -1.5)
        + (x * y).abs().sqrt() + x.log() - cr.minimum(x, y, 0.5) + (x - y).relu()
        + y.tanh() + x**0.5 - y**3
    )
    assert_gradients_match(sdk, f, {x: 1.7, y: -0.6})


# -------------------------------------------------------------------- tensors


def test_a_two_layer_network_with_log_softmax_loss(sdk):
    rng = np.random.default_rng(7)
    x, W1, b1, W2 = cr.input("x"), cr.input("W1"), cr.input("b1"), cr.input("W2")
    logits = W2 @ (W1 @ x + b1).tanh()
    loss = -(logits.log_softmax() * np.array([0.0, 1.0])).sum()
    point = {
        x: rng.normal(size=4),
        W1: rng.normal(size=(3, 4)),
        b1: rng.normal(size=3),
        W2: rng.normal(size=(2, 3)),
    }
    result = assert_gradients_match(sdk, loss, point)
    assert isinstance(result.value, float) and result.value > 0
    assert result.grad(W1).shape == (3, 4)


def test_reductions_and_shapes_with_a_seed(sdk):
    rng = np.random.default_rng(3)
    a, b = cr.input("a"), cr.input("b")
    m = (a.T.reshape(2, 3) * b).softmax(axis=0) + a.T.mean(axis=0, keepdims=True).sigmoid()
    out = m.transpose((1, 0)).sum(axis=1)
    point = {a: rng.normal(size=(3, 2)), b: rng.normal(size=(1, 3))}
    seed = np.array([1.0, -2.0, 0.5])
    result = assert_gradients_match(sdk, out, point, seed=seed)
    assert result.value.shape == (3,)


def test_large_arrays_go_and_come_back_as_b64(sdk):
    data = np.linspace(-1, 1, 3000).reshape(60, 50)
    x = cr.input("x", data)
    f = (x * x).sum()
    as_json = sdk.gradients(f)
    as_b64 = sdk.gradients(f, encoding="b64")
    np.testing.assert_array_equal(as_json.grad(x), 2 * data)
    np.testing.assert_array_equal(as_b64.grad(x), as_json.grad(x))
    assert as_b64.value == as_json.value == pytest.approx(float((data * data).sum()))


def test_inputs_override_defaults_and_wrt_limits_the_report(sdk):
    x, y = cr.input("x", 1.0), cr.input("y", 2.0)
    q = x * y
    f = q + 1
    result = sdk.gradients(f, inputs={x: 3.0}, wrt=[x, q])
    assert result.value == 7.0
    assert set(result.grads) == {"x", "mul_2"}
    assert result.grad(q) == 1.0 and result.grad(x) == 2.0
    with pytest.raises(KeyError, match="'y'"):
        result.grad(y)


def test_evaluate_reports_values_only(sdk):
    x = cr.input("x", np.array([1.0, 4.0]))
    result = sdk.evaluate(x.sqrt())
    np.testing.assert_array_equal(result.value, [1.0, 2.0])
    assert result.grads == {}


def test_nonfinite_values_round_trip(sdk):
    x = cr.input("x", np.array([0.0, 1.0]))
    result = sdk.evaluate(x.log())
    assert result.value.tolist() == [-math.inf, 0.0]
    y = cr.input("y", math.inf)
    with pytest.raises(cr.GraphError) as caught:
        sdk.evaluate(y * 2)
    assert caught.value.code == "nonfinite_input" and caught.value.node == "y"
    assert sdk.evaluate(y * 2, allow_nonfinite=True).value == math.inf


def test_a_deep_chain_goes_end_to_end(sdk):
    x = cr.input("x", 0.0)
    node = x
    for _ in range(10_000):
        node = node + 1
    result = sdk.gradients(node, wrt=[x])
    assert result.value == 10_000.0 and result.grad(x) == 1.0


# -------------------------------------------------------------------- hashes and the cache


def test_the_same_expression_gives_the_same_hash_and_the_cache_answers(sdk):
    def build():
        a, b = cr.input("a", -4.0), cr.input("b", 2.0)
        return micrograd_readme(a, b)

    first = sdk.gradients(build())
    second = sdk.gradients(build())
    assert first.hash == second.hash
    assert second.cached is True and first.cached is False
    assert sdk.gradients(build(), cache=False).cached is False
    stored = sdk.result(first.hash)
    assert isinstance(stored, cr.Result) and stored.cached is True
    assert stored.values == first.values and stored.grads == first.grads
    assert sdk.gradients(build(), inputs={"a": -3.0}).hash != first.hash


def test_a_graph_dict_is_accepted_where_a_node_is(sdk):
    x, y = cr.input("x", 2.0), cr.input("y", 3.0)
    graph = cr.to_graph(x * y)
    assert sdk.gradients(graph).hash == sdk.gradients(x * y).hash
    assert sdk.gradients(graph, inputs={"x": 5.0}).grad("y") == 5.0


# -------------------------------------------------------------------- gradcheck and diagram


def test_gradcheck_passes_on_a_correct_graph(sdk):
    x, W = cr.input("x", np.array([0.5, -1.0])), cr.input("W", np.array([[1.0, 2.0]]))
    result = sdk.gradcheck((W @ x).tanh().sum(), check=[x, W])
    assert isinstance(result, cr.GradcheckResult)
    assert result.passed is True
    assert set(result.checks) == {"x", "W"}
    check = result[x]
    assert check.verdict in ("good", "ok") and check.max_rel_error < 1e-4
    np.testing.assert_allclose(check.analytic, check.numeric, rtol=1e-6)
    assert isinstance(sdk.result(result.hash), cr.GradcheckResult)


def test_a_check_at_a_kink_carries_the_services_reason(sdk):
    x = cr.input("x", 0.0)
    check = sdk.gradcheck(x.relu() * 3.0)[x]
    assert check.verdict == "wrong"  # the convention (0) against the average of 0 and 3
    assert "kink" in check.details["reason"]
    assert check.details["kinks"][0]["right_slope"] == pytest.approx(3.0)
    assert sdk.gradcheck(cr.input("y", 1.0).relu() * 3.0)["y"].details is None


def test_diagrams_in_each_format(sdk):
    x, y, z = cr.input("x", -2.0), cr.input("y", 5.0), cr.input("z", -4.0)
    f = (x + y) * z
    svg = sdk.diagram(f)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    text = " ".join(t for t in root.itertext())
    assert "-12" in text and "-4" in text
    assert b"digraph" in sdk.diagram(f, format="dot")
    assert sdk.diagram(f, format="png").startswith(b"\x89PNG")


# -------------------------------------------------------------------- the catalog and errors


def test_ops_lists_every_op_the_sdk_builds(sdk):
    names = {op["name"] for op in sdk.ops()}
    built = {
        "input", "const", "add", "mul", "sub", "div", "max", "min", "neg", "inv", "add_const",
        "scale", "pow", "exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu", "sum", "mean",
        "matmul", "transpose", "reshape", "softmax", "log_softmax",
    }
    assert built <= names


def test_health(sdk):
    assert sdk.health() == {"status": "ok"}


def test_a_missing_input_is_a_graph_error_naming_it(sdk):
    with pytest.raises(cr.GraphError) as caught:
        sdk.gradients(cr.input("x") * 2)
    err = caught.value
    assert (err.status, err.code, err.node) == (422, "missing_input", "x")
    assert err.request_id


@pytest.mark.parametrize(
    ("graph", "code", "node"),
    [
        ({"nodes": [{"id": "a", "op": "frobnicate"}], "output": "a"}, "unknown_op", "a"),
        ({"nodes": [{"id": "a", "op": "neg", "inputs": ["a"]}], "output": "a"}, "cycle", "a"),
        ({"nodes": [{"id": "a", "op": "neg", "inputs": ["b"]}], "output": "a"},
         "unknown_node", "a"),
        ({"nodes": [{"id": "a", "op": "const", "value": 1},
                    {"id": "b", "op": "neg", "inputs": ["a", "a"]}], "output": "b"},
         "arity", "b"),
    ],
)
def test_graph_faults_name_their_node(sdk, graph, code, node):
    with pytest.raises(cr.GraphError) as caught:
        sdk.gradients(graph)
    assert (caught.value.code, caught.value.node) == (code, node)


def test_shape_mismatch_and_bad_attr(sdk):
    a, b = cr.input("a", np.ones(3)), cr.input("b", np.ones(4))
    with pytest.raises(cr.GraphError) as caught:
        sdk.gradients((a + b).named("s"))
    assert (caught.value.code, caught.value.node) == ("shape_mismatch", "s")
    with pytest.raises(cr.GraphError) as caught:
        sdk.gradients(a.reshape(7).named("r"))
    assert caught.value.node == "r"


def test_a_schema_violation_is_a_validation_error_with_details(sdk):
    with pytest.raises(cr.ValidationError) as caught:
        sdk.gradients({"nodes": [{"id": "a", "op": "input", "value": 1}]})
    assert caught.value.code == "validation_error"
    assert caught.value.details
    assert str(caught.value).endswith("[graph.output: Missing data for required field.]")


def test_an_unknown_hash_is_not_found(sdk):
    with pytest.raises(cr.NotFound) as caught:
        sdk.result("0" * 64)
    assert caught.value.code == "not_found"


def test_too_large_is_raised():
    app = create_app({"TESTING": True, "REDIS_URL": None, "PROMETHEUS_MULTIPROC_DIR": None,
                      "MAX_ELEMENTS": 10})
    transport = httpx.WSGITransport(app=app)
    with cr.Client("http://t", transport=transport) as sdk, pytest.raises(cr.TooLarge) as caught:
        sdk.gradients(cr.input("x", np.ones(100)).sum())
    assert caught.value.status == 413 and caught.value.code == "too_large"


# -------------------------------------------------------------------- AsyncClient, for real


def test_async_client_against_a_real_server(live_url):
    x, y, z = cr.input("x", -2.0), cr.input("y", 5.0), cr.input("z", -4.0)
    f = (x + y) * z

    async def main():
        async with cr.AsyncClient(live_url) as client:
            results = await asyncio.gather(
                *(client.gradients(f, inputs={x: float(k)}) for k in range(5))
            )
            evaluated = await client.evaluate(f)
            ops = await client.ops()
            health = await client.health()
            check = await client.gradcheck(f)
            svg = await client.diagram(f)
            stored = await client.result(results[0].hash)
            with pytest.raises(cr.GraphError) as caught:
                await client.gradients(cr.input("w") * 2)
            return results, evaluated, ops, health, check, svg, stored, caught.value

    results, evaluated, ops, health, check, svg, stored, error = asyncio.run(main())
    assert [r.value for r in results] == [(k + 5.0) * -4.0 for k in range(5)]
    assert all(r.grad(z) == k + 5.0 for k, r in enumerate(results))
    assert evaluated.value == -12.0
    assert {op["name"] for op in ops} >= {"add", "mul"}
    assert health == {"status": "ok"}
    assert check.passed
    assert ET.fromstring(svg).tag.endswith("svg")
    assert stored.cached and stored.value == results[0].value
    assert (error.code, error.node) == ("missing_input", "w")


def test_async_client_reports_a_dead_server():
    async def main():
        async with cr.AsyncClient("http://127.0.0.1:9", retries=1, backoff=0.001) as client:
            await client.health()

    with pytest.raises(cr.NetworkError):
        asyncio.run(main())
