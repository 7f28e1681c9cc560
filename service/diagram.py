"""Circuit diagrams drawn as the backprop notes draw them, rendered with Graphviz.

Inputs sit on the left as plain labels, gates are boxes showing their op symbol, and every
wire carries its forward value above it (green) and, below it (red), the gradient that flows
back along that wire: where a value fans out, each wire shows its own share (the engine's
`edge_gradients`) and the node shows the total, the sum of the shares. The output's wire ends
on the right with the output value over the seed, in an arrow; a node no wire leaves (an input
nothing reads, a gate that does not reach the output) ends in the same kind of wire, without
the arrow, carrying its value over its gradient (0). `circuit_dot` builds the DOT text
(deterministic: the same nodes give the same text) and `render_circuit` turns it into SVG or
PNG with Graphviz's `dot`, under a timeout.
"""

from __future__ import annotations

import html
import re
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import graphviz

from engine import OPS, DeadlineExceeded, Plan, RunResult
from engine.edges import edge_gradients
from service.summaries import format_number, summarize

__all__ = [
    "DiagramError",
    "DiagramTimeout",
    "FORMATS",
    "MEDIA_TYPES",
    "circuit_dot",
    "circuit_nodes",
    "draw_circuit",
    "format_number",
    "render_circuit",
    "summarize",
]

VALUE_COLOR = "#2a9d3a"
GRAD_COLOR = "#c8352b"
WIRE_COLOR = "#4a4a4a"
ID_COLOR = "#7a7a7a"
FONT = "Helvetica,Arial,sans-serif"

FORMATS = ("svg", "dot", "png")
DOT_COMMAND = "dot"
# Sharper than Graphviz's 96 dpi default; set on the command line so the DOT text stays the same.
PNG_FLAGS = ("-Gdpi=144",)
MEDIA_TYPES = {"svg": "image/svg+xml", "dot": "text/vnd.graphviz", "png": "image/png"}


class DiagramError(RuntimeError):
    """Graphviz could not render the circuit (missing `dot`, or it failed).

    The service answers 503 diagram_unavailable: the fault is the server's, not the request's.
    """


class DiagramTimeout(DeadlineExceeded):
    """Rendering took longer than its timeout; the `dot` process has been killed.

    A DeadlineExceeded, so the service's one error handler answers 504 deadline_exceeded.
    """

    def __init__(self, timeout: float):
        super().__init__(f"rendering the diagram took longer than {timeout:g} s")
        self.timeout = timeout


# ---------------------------------------------------------------- DOT

# What a label cannot carry or would not show: control characters (XML refuses most C0 ones,
# and `dot` with them), DEL, C1, lone surrogates and U+FFFE/U+FFFF.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _escape_unprintable(char: re.Match[str]) -> str:
    code = ord(char.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _label_text(text: str) -> str:
    """`text` for an HTML label: markup escaped, unprintable characters shown as `\\x01`."""
    return html.escape(_UNPRINTABLE.sub(_escape_unprintable, text))


def _field(node: Any, name: str, default: Any = None) -> Any:
    if isinstance(node, Mapping):
        return node.get(name, default)
    return getattr(node, name, default)


def gate_label_text(op: str, symbol: str, attrs: Mapping[str, Any] | None) -> str:
    """The gate's text as its row in the op table gives it (e.g. the notes' `+1` and `*-1`)."""
    row = OPS.get(op)
    if row is None:
        return symbol or op
    return row.label_text(attrs or {}, format_number)


def _font(text: str, color: str | None = None, size: int | None = None) -> str:
    attrs = (f' COLOR="{color}"' if color else "") + (f' POINT-SIZE="{size}"' if size else "")
    return f"<FONT{attrs}>{text}</FONT>" if attrs else text


def _wire_label(value: Any, grad: Any, has_grad: bool) -> str:
    """A two-row table whose dividing rule is the wire itself: value above, gradient below."""
    # an empty <FONT></FONT> is a Graphviz syntax error: an unreported number is a space
    value_text = _label_text(summarize(value)) if value is not None else " "
    value_cell = (
        f'<TD SIDES="B" BORDER="1" COLOR="{WIRE_COLOR}" CELLPADDING="1">'
        f"{_font(value_text, VALUE_COLOR)}</TD>"
    )
    grad_text = _label_text(summarize(grad)) if has_grad else " "
    grad_cell = f'<TD CELLPADDING="1">{_font(grad_text, GRAD_COLOR)}</TD>'
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">'
        f"<TR>{value_cell}</TR><TR>{grad_cell}</TR></TABLE>>"
    )


def circuit_dot(nodes: Sequence[Any], output: str) -> str:
    """The DOT text of the circuit.

    `nodes` (topological order) are dicts or objects with id, op, symbol, inputs, value and
    grad (None for a forward-only drawing), and optionally attrs; values are floats or arrays.
    """
    dot = graphviz.Digraph(
        "circuit",
        graph_attr={
            "rankdir": "LR",
            "nodesep": "0.18",
            "ranksep": "0.12",
            "ordering": "in",
            "fontname": FONT,
            "bgcolor": "white",
            "pad": "0.2",
        },
        node_attr={"fontname": FONT, "fontsize": "13", "color": WIRE_COLOR, "penwidth": "1.2"},
        edge_attr={"color": WIRE_COLOR, "arrowsize": "0.6", "penwidth": "1.1", "dir": "none"},
    )
    names: dict[str, str] = {}
    by_id: dict[str, Any] = {}
    sources: list[str] = []
    wires_out = _wires_out(nodes, output)
    forks = {node_id for node_id, count in wires_out.items() if count > 1}
    for index, node in enumerate(nodes):
        node_id = str(_field(node, "id"))
        names[node_id] = f"n{index}"
        by_id[node_id] = node
        op = str(_field(node, "op"))
        label = _label_text(node_id)
        # where wires fan out, each shows its share: the node itself shows the total
        total = _total_text(node) if node_id in forks else ""
        row = OPS.get(op)
        if row is not None and row.is_source:
            sources.append(names[node_id])
            # a variable's id in black, a constant's greyed
            text = label if row.is_variable else _font(label, ID_COLOR)
            dot.node(names[node_id], label=f"<{text}{total}>", shape="plaintext", width="0",
                     height="0", margin="0.03")
        else:
            symbol = gate_label_text(op, str(_field(node, "symbol") or ""), _field(node, "attrs"))
            dot.node(
                names[node_id],
                label=f"<{_label_text(symbol)}<BR/>{_font(label, ID_COLOR, 8)}{total}>",
                shape="box",
                style="rounded",
                width="0.45",
                height="0.45",
                margin="0.08,0.03",
            )

    wires = 0

    def wire(tail: str, head: str, source: Any, grad: Any, arrow: bool = True) -> None:
        nonlocal wires
        name = f"w{wires}"
        wires += 1
        dot.node(name, label=_wire_label(_field(source, "value"), grad, grad is not None),
                 shape="plain")
        dot.edge(tail, name, headport="w")
        dot.edge(name, head, tailport="e", dir="forward" if arrow else "none")

    def loose_end(node_id: str, arrow: bool) -> None:
        """A wire out of `node_id` to nowhere, so its value and total gradient are drawn."""
        end = "end" if node_id == output else f"end_{names[node_id]}"
        dot.node(end, label="", shape="point", style="invis", width="0.01")
        wire(names[node_id], end, by_id[node_id], _field(by_id[node_id], "grad"), arrow)

    for node in nodes:
        head = names[str(_field(node, "id"))]
        inputs = _field(node, "inputs") or ()
        shares = _field(node, "input_grads")
        for position, input_id in enumerate(inputs):
            if str(input_id) not in by_id:
                raise ValueError(f"node {_field(node, 'id')!r} takes {input_id!r}, not given")
            source = by_id[str(input_id)]
            grad = shares[position] if shares is not None else _field(source, "grad")
            wire(names[str(input_id)], head, source, grad)
    if output in by_id:
        loose_end(output, arrow=True)
    # an input nothing reads or a gate off the path to the output would otherwise show no value
    for node_id in by_id:
        if node_id not in wires_out:
            loose_end(node_id, arrow=False)
    if sources:
        with dot.subgraph(name="inputs", graph_attr={"rank": "min"}) as column:
            for name in sources:
                column.node(name)
    return dot.source


def _wires_out(nodes: Sequence[Any], output: str) -> dict[str, int]:
    """How many wires leave each node that some wire leaves (the output's own counts)."""
    wires_out: dict[str, int] = {output: 1}
    for node in nodes:
        for input_id in _field(node, "inputs") or ():
            wires_out[str(input_id)] = wires_out.get(str(input_id), 0) + 1
    return wires_out


def _total_text(node: Any) -> str:
    """A node's total gradient, in red under its label ("" for a forward-only drawing)."""
    grad = _field(node, "grad")
    if grad is None:
        return ""
    return "<BR/>" + _font(f"Σ {_label_text(summarize(grad))}", GRAD_COLOR, 9)


def circuit_nodes(plan: Plan, result: RunResult) -> list[dict[str, Any]]:
    """The nodes `circuit_dot` draws, from a compiled plan and a run of it.

    `result` reports every node (a diagram draws every wire). With gradients, each node also
    carries `input_grads`: the share of the gradient flowing back along each of its input
    wires, in input order.
    """
    grads = result.grads
    shares = edge_gradients(plan, result) if grads is not None else {}
    return [
        {
            "id": node_id,
            "op": op.name,
            "symbol": op.symbol,
            "attrs": attrs,
            "inputs": node.inputs,
            "value": result.values.get(node_id),
            "grad": None if grads is None else grads.get(node_id),
            "input_grads": None if grads is None else [
                shares[(node_id, position)] for position in range(len(node.inputs))],
        }
        for node_id, node, op, attrs in zip(plan.ids, plan.nodes, plan.ops, plan.attrs, strict=True)
    ]


# ---------------------------------------------------------------- rendering

def render_circuit(dot: str, fmt: str, timeout: float) -> bytes:
    """Render DOT text as `fmt` ("svg", "png", or "dot" for the text itself).

    Runs Graphviz's `dot` in a child process that is killed when `timeout` seconds pass
    (DiagramTimeout); the graphviz package's own pipe() has no timeout.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown diagram format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "dot":
        return dot.encode("utf-8")
    try:
        # run() kills and reaps the child itself when the timeout expires.
        done = subprocess.run(
            [DOT_COMMAND, f"-T{fmt}", *(PNG_FLAGS if fmt == "png" else ())],
            input=dot.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DiagramTimeout(timeout) from None
    except OSError as error:
        raise DiagramError(f"cannot run Graphviz's dot: {error}") from error
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        raise DiagramError(f"dot exited with status {done.returncode}: {message}")
    return done.stdout


def draw_circuit(plan: Plan, result: RunResult, fmt: str, timeout: float) -> bytes:
    """A run of `plan` drawn as its circuit and rendered as `fmt` (see `render_circuit`)."""
    return render_circuit(circuit_dot(circuit_nodes(plan, result), result.output), fmt, timeout)
