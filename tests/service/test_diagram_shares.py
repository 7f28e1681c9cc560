"""Diagrams show each wire's own share of the gradient, the node's total at forks, and every
wire whatever `wrt` asks (issue 15)."""

from __future__ import annotations

import re

STAGED = {"nodes": [
    {"id": "x", "op": "input", "value": 3}, {"id": "y", "op": "input", "value": -4},
    {"id": "sigy", "op": "sigmoid", "inputs": ["y"]},
    {"id": "num", "op": "add", "inputs": ["x", "sigy"]},
    {"id": "sigx", "op": "sigmoid", "inputs": ["x"]},
    {"id": "xpy", "op": "add", "inputs": ["x", "y"]},
    {"id": "xpysqr", "op": "pow", "inputs": ["xpy"], "attrs": {"exponent": 2}},
    {"id": "den", "op": "add", "inputs": ["sigx", "xpysqr"]},
    {"id": "invden", "op": "inv", "inputs": ["den"]},
    {"id": "f", "op": "mul", "inputs": ["num", "invden"]},
], "output": "f"}

WIRE = re.compile(r'(n\d+) -> (w\d+) \[headport=w\]\n\t(w\d+) -> (n\d+|end)')
GRAD = re.compile(r'(w\d+) \[label=<.*?<FONT COLOR="#c8352b">([^<]*)</FONT>')


def _dot(client, body: dict) -> str:
    response = client.post("/v1/diagram", json={"format": "dot", **body})
    assert response.status_code == 200, response.data
    return response.get_data(as_text=True)


def _wire_grads(dot: str) -> dict[tuple[str, str], list[str]]:
    """The gradient text on each wire, by (tail node name, head node name)."""
    grads = dict(GRAD.findall(dot))
    wires: dict[tuple[str, str], list[str]] = {}
    for tail, wire, _, head in WIRE.findall(dot):
        wires.setdefault((tail, head), []).append(grads[wire])
    return wires


def _node_names(dot: str) -> dict[str, str]:
    """DOT node name -> graph node id: a gate's id is its small grey line, a source's its text."""
    names = {}
    for name, label in re.findall(r'\t(n\d+) \[label=<(.*?)> ', dot):
        gate_id = re.search(r'POINT-SIZE="8">([^<]+)<', label)
        names[name] = gate_id.group(1) if gate_id else re.sub(r"<[^>]+>", "", label.split(
            "<BR/>")[0])
    return names


def test_each_wire_from_x_shows_its_own_share(client):
    dot = _dot(client, {"graph": STAGED})
    wires = _wire_grads(dot)
    names = _node_names(dot)
    by_id = {v: k for k, v in names.items()}
    from_x = {names[head]: grads for (tail, head), grads in wires.items() if tail == by_id["x"]}
    assert from_x == {"num": ["0.512"], "sigx": ["-0.0358"], "xpy": ["1.58"]}


def test_a_fork_shows_its_total_on_the_node(client):
    dot = _dot(client, {"graph": STAGED})
    assert "Σ 2.06" in dot and "Σ 1.59" in dot  # x and y fan out
    assert dot.count("Σ") == 2


def test_wrt_still_draws_every_wire(client):
    full = _dot(client, {"graph": STAGED})
    asked = _dot(client, {"graph": STAGED, "wrt": ["x"]})
    assert asked == full


def test_the_same_input_twice_draws_two_shares(client):
    graph = {"nodes": [{"id": "x", "op": "input", "value": 3},
                       {"id": "f", "op": "mul", "inputs": ["x", "x"]}], "output": "f"}
    wires = _wire_grads(_dot(client, {"graph": graph}))
    assert wires[("n0", "n1")] == ["3", "3"]


def test_wrt_naming_no_node_is_refused_as_on_gradients(client):
    response = client.post("/v1/diagram", json={"graph": STAGED, "wrt": ["nope"]})
    assert response.status_code == 422
    assert response.get_json()["error"]["node"] == "nope"
