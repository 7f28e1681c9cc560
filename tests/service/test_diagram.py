"""Circuit diagrams: the DOT text, its rendering, and the /v1/diagram and /v1/gradcheck endpoints.

The unit tests drive service.diagram with real engine runs; the endpoint tests go through the
Flask test client, and the gradcheck ones inject a deliberately broken op to see `wrong`.
"""

from __future__ import annotations

import dataclasses
import os
import random
import stat
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import engine.ops
from engine import DeadlineExceeded, Graph, Node, bind_sources, compile_plan
from service import diagram
from service.diagram import (
    DiagramError,
    DiagramTimeout,
    circuit_dot,
    circuit_nodes,
    format_number,
    render_circuit,
    summarize,
)

SVG_NS = "{http://www.w3.org/2000/svg}"

# The notes' sigmoid neuron, gate by gate: f = 1 / (1 + exp(-(w0 x0 + w1 x1 + w2))).
SIGMOID_NEURON: list[dict[str, Any]] = [
    {"id": "w0", "op": "input", "value": 2.0},
    {"id": "x0", "op": "input", "value": -1.0},
    {"id": "w1", "op": "input", "value": -3.0},
    {"id": "x1", "op": "input", "value": -2.0},
    {"id": "w2", "op": "input", "value": -3.0},
    {"id": "w0x0", "op": "mul", "inputs": ["w0", "x0"]},
    {"id": "w1x1", "op": "mul", "inputs": ["w1", "x1"]},
    {"id": "dot", "op": "add", "inputs": ["w0x0", "w1x1"]},
    {"id": "z", "op": "add", "inputs": ["dot", "w2"]},
    {"id": "negz", "op": "scale", "inputs": ["z"], "attrs": {"a": -1}},
    {"id": "expz", "op": "exp", "inputs": ["negz"]},
    {"id": "den", "op": "add_const", "inputs": ["expz"], "attrs": {"c": 1}},
    {"id": "f", "op": "inv", "inputs": ["den"]},
]

ADD_MUL: list[dict[str, Any]] = [
    {"id": "x", "op": "input", "value": -2},
    {"id": "y", "op": "input", "value": 5},
    {"id": "z", "op": "input", "value": -4},
    {"id": "q", "op": "add", "inputs": ["x", "y"]},
    {"id": "f", "op": "mul", "inputs": ["q", "z"]},
]


def make_graph(spec: list[dict[str, Any]], output: str) -> Graph:
    return Graph(
        tuple(
            Node(
                item["id"],
                item["op"],
                tuple(item.get("inputs", ())),
                dict(item.get("attrs", {})),
                None if "value" not in item else np.asarray(item["value"], dtype=np.float64),
            )
            for item in spec
        ),
        output,
    )


def drawn_nodes(spec: list[dict[str, Any]], output: str, *, forward_only: bool = False) -> list:
    graph = make_graph(spec, output)
    sources = bind_sources(graph)
    plan = compile_plan(graph, {name: np.shape(value) for name, value in sources.items()})
    return circuit_nodes(plan, plan.run(sources, forward_only=forward_only))


def svg_texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return [el.text for el in root.iter(f"{SVG_NS}text") if el.text]


def chain(length: int) -> list[dict[str, Any]]:
    spec: list[dict[str, Any]] = [{"id": "n0", "op": "input", "value": 0.5}]
    for i in range(1, length):
        spec.append({"id": f"n{i}", "op": "add", "inputs": [f"n{i - 1}", f"n{max(0, i - 2)}"]})
    return spec


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (0.19661193324148185, "0.197"),
        (-12.0, "-12"),
        (0.7310585786300049, "0.731"),
        (123456.0, "1.23e+05"),
        (1e-10, "1e-10"),
        (-0.0, "0"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
    ],
)
def test_numbers_get_three_significant_digits(x: float, text: str) -> None:
    assert format_number(x) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (2.5, "2.5"),
        (np.array(-1.5), "-1.5"),
        (np.array([[-1.2, 3.4, 0.0, 1.0]] * 3), "[3×4] -1.2…3.4"),
        (np.zeros((2, 3)), "[2×3] 0"),
        (np.array([1.0, np.nan, -2.0]), "[3] -2…1 nan"),
        (np.array([np.nan, np.nan]), "[2] nan"),
        (np.array([1.0, np.inf]), "[2] 1…inf"),
        (np.zeros((0, 3)), "[0×3] empty"),
    ],
)
def test_tensors_are_summarised_by_shape_and_range(value: Any, text: str) -> None:
    assert summarize(value) == text


# ---------------------------------------------------------------- DOT


def test_dot_draws_the_circuit_left_to_right() -> None:
    dot = circuit_dot(drawn_nodes(ADD_MUL, "f"), "f")
    assert "rankdir=LR" in dot
    assert diagram.VALUE_COLOR in dot and diagram.GRAD_COLOR in dot
    # Every input sits in the leftmost rank.
    assert "rank=min" in dot
    # Four input wires plus the output's wire.
    assert dot.count('SIDES="B"') == 5


def test_dot_is_stable_for_the_same_request() -> None:
    first = circuit_dot(drawn_nodes(SIGMOID_NEURON, "f"), "f")
    assert circuit_dot(drawn_nodes(SIGMOID_NEURON, "f"), "f") == first
    # Listing order is not part of a graph's meaning, so it does not change the drawing.
    shuffled = list(SIGMOID_NEURON)
    random.Random(7).shuffle(shuffled)
    assert circuit_dot(drawn_nodes(shuffled, "f"), "f") == first


def test_nodes_may_be_objects_or_dicts() -> None:
    nodes = drawn_nodes(ADD_MUL, "f")
    as_objects = [type("N", (), dict(node))() for node in nodes]
    assert circuit_dot(as_objects, "f") == circuit_dot(nodes, "f")


def test_gates_show_their_symbols_and_constants() -> None:
    dot = circuit_dot(drawn_nodes(SIGMOID_NEURON, "f"), "f")
    texts = set(svg_texts(render_circuit(dot, "svg", timeout=20)))
    assert {"*", "+", "*-1", "exp", "+1", "1/x"} <= texts
    spec = [
        {"id": "x", "op": "input", "value": 3.0},
        {"id": "s", "op": "sigmoid", "inputs": ["x"]},
        {"id": "p", "op": "pow", "inputs": ["s"], "attrs": {"exponent": 2}},
        {"id": "m", "op": "max", "inputs": ["p", "x"]},
        {"id": "c", "op": "add_const", "inputs": ["m"], "attrs": {"c": -2.5}},
    ]
    dot = circuit_dot(drawn_nodes(spec, "c"), "c")
    assert {"σ", "**2", "max", "-2.5"} <= set(svg_texts(render_circuit(dot, "svg", timeout=20)))


def test_ids_are_escaped_in_html_labels() -> None:
    spec = [
        {"id": '<b>&"x', "op": "input", "value": 1.0},
        {"id": "g<'s", "op": "exp", "inputs": ['<b>&"x']},
    ]
    dot = circuit_dot(drawn_nodes(spec, "g<'s"), "g<'s")
    assert "&lt;b&gt;&amp;&quot;x" in dot
    texts = svg_texts(render_circuit(dot, "svg", timeout=20))
    assert '<b>&"x' in texts and "g<'s" in texts


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_control_characters_in_ids_are_drawn_escaped(fmt: str) -> None:
    odd = ["a\x00b", "a\x01b", "tab\there", "line\nbreak", "del\x7f", "c1\x85", "nc\uffff"]
    spec = [{"id": name, "op": "input", "value": 1.0} for name in odd]
    spec.append({"id": "s", "op": "add", "inputs": odd})
    dot = circuit_dot(drawn_nodes(spec, "s"), "s")
    image = render_circuit(dot, fmt, timeout=20)
    if fmt == "svg":
        shown = {"a\\x00b", "a\\x01b", "tab\\x09here", "line\\x0abreak", "del\\x7f",
                 "c1\\x85", "nc\\uffff"}
        assert shown <= set(svg_texts(image))


def test_a_node_taking_an_undrawn_input_is_refused() -> None:
    nodes = [{"id": "a", "op": "exp", "symbol": "exp", "inputs": ["zz"], "value": 1.0}]
    with pytest.raises(ValueError, match="'zz'"):
        circuit_dot(nodes, "a")


def test_forward_only_drawing_has_values_and_no_gradients() -> None:
    nodes = drawn_nodes(ADD_MUL, "f", forward_only=True)
    texts = svg_texts(render_circuit(circuit_dot(nodes, "f"), "svg", timeout=20))
    assert {"-2", "5", "-4", "3", "-12"} <= set(texts)
    root = ET.fromstring(render_circuit(circuit_dot(nodes, "f"), "svg", timeout=20))
    red = [el.text for el in root.iter(f"{SVG_NS}text") if el.get("fill") == diagram.GRAD_COLOR]
    assert all(not (text or "").strip() for text in red)


def test_tensor_wires_show_shape_and_range() -> None:
    spec = [
        {"id": "W", "op": "input", "value": np.arange(12.0).reshape(3, 4) - 5},
        {"id": "v", "op": "input", "value": [1.0, -1.0, 0.5, 2.0]},
        {"id": "h", "op": "matmul", "inputs": ["W", "v"]},
        {"id": "loss", "op": "sum", "inputs": ["h"]},
    ]
    dot = circuit_dot(drawn_nodes(spec, "loss"), "loss")
    assert "[3×4] -5…6" in dot
    assert "[4] -1…2" in dot
    assert "[3]" in dot


def test_nonfinite_values_are_spelled_out() -> None:
    spec = [
        {"id": "x", "op": "input", "value": 0.0},
        {"id": "l", "op": "log", "inputs": ["x"]},
    ]
    texts = svg_texts(render_circuit(circuit_dot(drawn_nodes(spec, "l"), "l"), "svg", timeout=20))
    assert "-inf" in texts and "inf" in texts


# ---------------------------------------------------------------- rendering


def test_svg_parses_and_carries_every_value_and_gradient() -> None:
    nodes = drawn_nodes(SIGMOID_NEURON, "f")
    svg = render_circuit(circuit_dot(nodes, "f"), "svg", timeout=20)
    texts = set(svg_texts(svg))
    for node in nodes:
        assert node["id"] in texts
        assert summarize(node["value"]) in texts
        assert summarize(node["grad"]) in texts
    # The notes' numbers: output 0.73; dw0 -0.2, dx0 0.39, dw1 -0.39, dx1 -0.59, dw2 0.2.
    assert {"0.731", "-0.197", "0.393", "-0.393", "-0.59", "0.197"} <= texts


def test_png_and_dot_formats() -> None:
    dot = circuit_dot(drawn_nodes(ADD_MUL, "f"), "f")
    assert render_circuit(dot, "png", timeout=20).startswith(b"\x89PNG\r\n\x1a\n")
    assert render_circuit(dot, "dot", timeout=20) == dot.encode("utf-8")
    with pytest.raises(ValueError, match="unknown diagram format"):
        render_circuit(dot, "gif", timeout=20)


def test_a_large_graph_over_a_tiny_timeout_raises() -> None:
    dot = circuit_dot(drawn_nodes(chain(300), "n299"), "n299")
    with pytest.raises(DiagramTimeout) as caught:
        render_circuit(dot, "svg", timeout=0.001)
    assert isinstance(caught.value, DeadlineExceeded)
    assert caught.value.code == "deadline_exceeded"


def test_a_hung_renderer_is_killed_at_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "pid"
    script = tmp_path / "hung-dot"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 30\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(diagram, "DOT_COMMAND", str(script))
    started = time.monotonic()
    with pytest.raises(DiagramTimeout, match="longer than 0.5 s"):
        render_circuit("digraph {}", "svg", timeout=0.5)
    assert time.monotonic() - started < 5
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_missing_or_failing_renderer_is_a_diagram_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DiagramError, match="dot exited"):
        render_circuit("digraph { this is not dot", "svg", timeout=20)
    monkeypatch.setattr(diagram, "DOT_COMMAND", str(tmp_path / "no-such-dot"))
    with pytest.raises(DiagramError, match="cannot run"):
        render_circuit("digraph {}", "svg", timeout=20)


def test_the_broken_op_fixture_doubles_exp_gradients() -> None:
    exp = engine.ops.OPS["exp"]
    scalar = dataclasses.replace(exp.scalar, vjp=_doubled(exp.scalar.vjp))
    broken = dataclasses.replace(exp, vjp=_doubled(exp.vjp), scalar=scalar)
    (grad,) = broken.vjp(1.0, np.exp(0.5), 0.5)
    assert grad == pytest.approx(2 * np.exp(0.5))


def _doubled(vjp: Any) -> Any:
    def doubled(g: Any, out: Any, *inputs: Any, **attrs: Any) -> tuple:
        return tuple(2 * grad for grad in vjp(g, out, *inputs, **attrs))

    return doubled


# ---------------------------------------------------------------- endpoints


def request_body(spec: list[dict[str, Any]], output: str, **extra: Any) -> dict[str, Any]:
    nodes = [
        {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in item.items()}
        for item in spec
    ]
    return {"graph": {"nodes": nodes, "output": output}, **extra}


def test_diagram_endpoint_answers_svg_by_default(client: Any) -> None:
    response = client.post("/v1/diagram", json=request_body(ADD_MUL, "f"))
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    texts = set(svg_texts(response.data))
    assert {"x", "y", "z", "q", "f", "-2", "5", "-4", "3", "-12", "1"} <= texts
    assert len(response.headers["ETag"].strip('"')) == 64


def test_diagram_endpoint_svg_carries_every_value_and_gradient(client: Any) -> None:
    response = client.post("/v1/diagram", json=request_body(SIGMOID_NEURON, "f", format="svg"))
    assert response.status_code == 200
    texts = set(svg_texts(response.data))
    grads = client.post("/v1/gradients", json=request_body(SIGMOID_NEURON, "f")).get_json()
    for node_id, node in grads["nodes"].items():
        assert node_id in texts
        assert summarize(node["value"]) in texts
        assert summarize(node["grad"]) in texts


def test_diagram_endpoint_dot_is_stable(client: Any) -> None:
    body = request_body(SIGMOID_NEURON, "f", format="dot")
    first = client.post("/v1/diagram", json=body)
    assert first.status_code == 200
    assert first.mimetype == "text/vnd.graphviz"
    shuffled = dict(body, graph=dict(body["graph"], nodes=body["graph"]["nodes"][::-1]))
    again = client.post("/v1/diagram", json=shuffled)
    assert again.data == first.data
    assert first.data.decode("utf-8") == circuit_dot(drawn_nodes(SIGMOID_NEURON, "f"), "f")


def test_diagram_endpoint_png(client: Any) -> None:
    response = client.post("/v1/diagram", json=request_body(ADD_MUL, "f", format="png"))
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    assert response.data.startswith(b"\x89PNG\r\n\x1a\n")


def test_diagram_endpoint_draws_request_inputs_and_seed(client: Any) -> None:
    body = request_body(ADD_MUL, "f", inputs={"x": 1.5}, seed=2.0, format="dot")
    dot = client.post("/v1/diagram", json=body).data.decode("utf-8")
    # q = 1.5 + 5 = 6.5, f = -26, and the seed 2 is the output wire's gradient.
    assert ">6.5<" in dot and ">-26<" in dot and ">-8<" in dot


def test_diagram_endpoint_refuses_a_graph_over_the_node_limit(client: Any) -> None:
    response = client.post("/v1/diagram", json=request_body(chain(301), "n300"))
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "too_large"
    assert "301" in error["message"] and "300" in error["message"]


def test_diagram_endpoint_names_the_faulty_node(client: Any) -> None:
    spec = [*ADD_MUL[:3], {"id": "q", "op": "add", "inputs": ["x", "nope"]}, ADD_MUL[4]]
    response = client.post("/v1/diagram", json=request_body(spec, "f"))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["node"]) == ("unknown_node", "q")


def test_diagram_endpoint_rejects_an_unknown_format(client: Any) -> None:
    response = client.post("/v1/diagram", json=request_body(ADD_MUL, "f", format="gif"))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "validation_error"


def test_diagram_endpoint_times_out_with_504(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import create_app

    script = tmp_path / "hung-dot"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(diagram, "DOT_COMMAND", str(script))
    app = create_app(
        {"REDIS_URL": None, "PROMETHEUS_MULTIPROC_DIR": None, "DIAGRAM_TIMEOUT_SECONDS": 0.5}
    )
    response = app.test_client().post("/v1/diagram", json=request_body(ADD_MUL, "f"))
    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == "deadline_exceeded"
    # its own limit named, not the compute deadline's
    assert response.get_json()["error"]["message"] == (
        "rendering the diagram took longer than 0.5 s")


def test_diagram_endpoint_draws_ids_with_control_characters(client: Any) -> None:
    spec = [
        {"id": "a\x01b", "op": "input", "value": 2.0},
        {"id": "a\x00b", "op": "input", "value": 3.0},
        {"id": "f", "op": "mul", "inputs": ["a\x01b", "a\x00b"]},
    ]
    response = client.post("/v1/diagram", json=request_body(spec, "f"))
    assert response.status_code == 200, response.data
    assert {"a\\x01b", "a\\x00b", "6"} <= set(svg_texts(response.data))


@pytest.mark.parametrize("renderer", ["missing", "failing"])
def test_diagram_endpoint_without_a_working_graphviz_is_503(
    renderer: str, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "dot"
    if renderer == "failing":
        script.write_text("#!/bin/sh\necho 'dot: out of memory' >&2\nexit 1\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(diagram, "DOT_COMMAND", str(script))
    response = client.post("/v1/diagram", json=request_body(ADD_MUL, "f"))
    assert response.status_code == 503
    error = response.get_json()["error"]
    assert error["code"] == "diagram_unavailable"
    assert "Graphviz" in error["message"] and "out of memory" not in error["message"]
    # The dot format needs no Graphviz, and the rest of the API is unaffected.
    dot = client.post("/v1/diagram", json=request_body(ADD_MUL, "f", format="dot"))
    assert dot.status_code == 200
    assert client.post("/v1/gradients", json=request_body(ADD_MUL, "f")).status_code == 200


# ---------------------------------------------------------------- gradcheck


def test_gradcheck_passes_a_correct_graph(client: Any) -> None:
    response = client.post("/v1/gradcheck", json=request_body(SIGMOID_NEURON, "f"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["passed"] is True
    assert set(body["checks"]) == {"w0", "x0", "w1", "x1", "w2"}
    assert {check["verdict"] for check in body["checks"].values()} == {"good"}
    assert body["checks"]["x0"]["analytic"] == pytest.approx(0.3932, abs=1e-4)


@pytest.fixture
def broken_exp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Swap `exp` in the op table the engine reads for one whose gradient is twice too big."""
    exp = engine.ops.OPS["exp"]
    scalar = dataclasses.replace(exp.scalar, vjp=_doubled(exp.scalar.vjp))
    broken = dataclasses.replace(exp, vjp=_doubled(exp.vjp), scalar=scalar)
    monkeypatch.setitem(engine.ops.OPS, "exp", broken)


@pytest.mark.usefixtures("broken_exp")
def test_gradcheck_calls_a_wrong_gradient_wrong(client: Any) -> None:
    response = client.post("/v1/gradcheck", json=request_body(SIGMOID_NEURON, "f"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["passed"] is False
    for check in body["checks"].values():
        assert check["verdict"] == "wrong"
        # |2a - a| / |2a|
        assert check["max_rel_error"] == pytest.approx(0.5, rel=1e-4)
        assert check["analytic"] == pytest.approx(2 * check["numeric"], rel=1e-4)


@pytest.mark.usefixtures("broken_exp")
def test_gradcheck_blames_only_inputs_behind_the_broken_op(client: Any) -> None:
    spec = [
        {"id": "a", "op": "input", "value": 0.3},
        {"id": "b", "op": "input", "value": -1.2},
        {"id": "e", "op": "exp", "inputs": ["a"]},
        {"id": "f", "op": "mul", "inputs": ["e", "b"]},
    ]
    response = client.post("/v1/gradcheck", json=request_body(spec, "f", check=["a", "b"]))
    checks = response.get_json()["checks"]
    assert (checks["a"]["verdict"], checks["b"]["verdict"]) == ("wrong", "good")


# ---------------------------------------------------------------- loose ends

# An input nothing reads (i1) and a gate off the path to the output (dd, fed by another, d).
LOOSE_ENDS: list[dict[str, Any]] = [
    {"id": "x", "op": "input", "value": 3},
    {"id": "y", "op": "input", "value": -4},
    {"id": "i1", "op": "input", "value": 7},
    {"id": "q", "op": "mul", "inputs": ["x", "y"]},
    {"id": "d", "op": "exp", "inputs": ["y"]},
    {"id": "dd", "op": "add", "inputs": ["d", "x"]},
    {"id": "f", "op": "add_const", "inputs": ["q"], "attrs": {"c": 1}},
]


def wires_leaving(svg: bytes) -> dict[str, list[tuple[str, str]]]:
    """Graph node id -> (value, gradient) written on each wire that leaves it, read off the SVG.

    Graphviz titles each drawn node with its DOT name (n3, w5) and each edge `tail->head`; a
    gate's id is its 8-point line, a source's id its first line.
    """
    root = ET.fromstring(svg)
    texts: dict[str, list[Any]] = {}
    tails: dict[str, str] = {}
    for group in root.iter(f"{SVG_NS}g"):
        title = group.findtext(f"{SVG_NS}title") or ""
        if group.get("class") == "node":
            texts[title] = list(group.iter(f"{SVG_NS}text"))
        elif group.get("class") == "edge" and "->w" in title:
            tail, wire = title.split("->")
            tails[wire.split(":")[0]] = tail
    ids = {}
    for name, items in texts.items():
        if name.startswith("n"):
            small = [el.text for el in items if el.get("font-size") == "8.00"]
            ids[name] = small[0] if small else items[0].text
    leaving: dict[str, list[tuple[str, str]]] = {}
    for wire, tail in tails.items():
        by_color = {el.get("fill"): (el.text or "").strip() for el in texts[wire]}
        leaving.setdefault(ids[tail], []).append(
            (by_color[diagram.VALUE_COLOR], by_color[diagram.GRAD_COLOR]))
    return leaving


def test_loose_ends_nodes_no_wire_leaves_show_value_and_gradient(client: Any) -> None:
    response = client.post("/v1/diagram", json=request_body(LOOSE_ENDS, "f"))
    assert response.status_code == 200
    leaving = wires_leaving(response.data)
    # i1 = 7 and dd = e**-4 + 3 = 3.02 do not reach f: their gradient is 0.
    assert leaving["i1"] == [("7", "0")]
    assert leaving["dd"] == [("3.02", "0")]
    assert leaving["d"] == [("0.0183", "0")]
    # The output's wire is as before: f = -11 over the seed.
    assert leaving["f"] == [("-11", "1")]
    grads = client.post("/v1/gradients", json=request_body(LOOSE_ENDS, "f")).get_json()
    for node_id, node in grads["nodes"].items():
        assert (summarize(node["value"]), summarize(node["grad"])) in leaving[node_id]


def test_every_node_of_a_random_graph_shows_its_value() -> None:
    rng = random.Random(3)
    spec: list[dict[str, Any]] = [
        {"id": f"i{k}", "op": "input", "value": rng.uniform(-2, 2)} for k in range(6)]
    for k in range(54):
        readable = [item["id"] for item in spec if item["id"] not in ("i1", "i2")][-12:]
        op = rng.choice(["add", "mul", "max", "exp", "sigmoid", "tanh"])
        arity = 2 if op in ("add", "mul", "max") else 1
        spec.append({"id": f"g{k}", "op": op, "inputs": rng.sample(readable, arity)})
    nodes = drawn_nodes(spec, "g53")
    leaving = wires_leaving(render_circuit(circuit_dot(nodes, "g53"), "svg", timeout=20))
    assert set(leaving) == {node["id"] for node in nodes}
    for node in nodes:
        # at a fork each wire carries its own share of the gradient: the value is on all of them
        assert {value for value, _ in leaving[node["id"]]} == {summarize(node["value"])}


@pytest.mark.parametrize("fmt", ["dot", "png"])
def test_loose_ends_are_drawn_in_every_format(client: Any, fmt: str) -> None:
    response = client.post("/v1/diagram", json=request_body(LOOSE_ENDS, "f", format=fmt))
    assert response.status_code == 200
    dot = circuit_dot(drawn_nodes(LOOSE_ENDS, "f"), "f")
    assert '<FONT COLOR="#2a9d3a">7</FONT>' in dot and ">3.02<" in dot
    if fmt == "dot":
        assert response.data == dot.encode("utf-8")
    else:
        assert response.data == render_circuit(dot, "png", timeout=20)
