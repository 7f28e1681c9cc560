"""Expressions in the style of micrograd's Value, serialised to the contract's graph JSON.

`input("x", 2.0)` and `const(3.0)` make source nodes; Python operators and the methods below
build gates from the op catalog; numbers and numpy arrays on either side of an operator become
`const` nodes. Nodes are immutable and know nothing of ids until `to_graph` walks the
expression: named nodes keep their names, the rest are called after their op and their position
in the topological order, so the same expression always gives the same JSON (and the same hash).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from chainrule_client.tensors import B64_THRESHOLD, as_array, decode_tensor, encode_tensor

__all__ = [
    "GraphLike",
    "Node",
    "add_const",
    "const",
    "from_graph",
    "input",
    "inv",
    "maximum",
    "minimum",
    "scale",
    "to_graph",
]


class Node:
    """One node of an expression: an op, its input nodes, its attrs, and a value for sources."""

    __slots__ = ("op", "inputs", "attrs", "value", "id")

    # Makes numpy hand `array + node`, `array @ node` etc. over to the reflected Node methods
    # instead of broadcasting the node as an object element.
    __array_ufunc__ = None

    op: str
    inputs: tuple[Node, ...]
    attrs: dict[str, Any]
    value: float | np.ndarray | None
    id: str | None

    def __init__(
        self,
        op: str,
        inputs: Iterable[Node] = (),
        attrs: Mapping[str, Any] | None = None,
        value: float | np.ndarray | None = None,
        id: str | None = None,
    ) -> None:
        if id is not None and (not isinstance(id, str) or not id):
            raise ValueError(f"a node id must be a non-empty string, got {id!r}")
        self.op = op
        self.inputs = tuple(inputs)
        self.attrs = dict(attrs or {})
        self.value = value
        self.id = id

    def named(self, id: str) -> Node:
        """This node under an explicit id (a new node; expressions are immutable)."""
        return Node(self.op, self.inputs, self.attrs, self.value, id)

    def __repr__(self) -> str:
        if self.op in ("input", "const"):
            if isinstance(self.value, np.ndarray):
                value = f"<array of shape {self.value.shape}>"
            else:
                value = repr(self.value)
            name = "" if self.id is None else f"{self.id!r}, "
            return f"{self.op}({name}{value})"
        name = "" if self.id is None else f" {self.id!r}"
        return f"<Node {self.op}{name} of {len(self.inputs)} inputs>"

    # ---------------------------------------------------------------- binary operators

    def __add__(self, other: object) -> Node:
        return _binary("add", self, other)

    def __radd__(self, other: object) -> Node:
        return _binary("add", other, self)

    def __sub__(self, other: object) -> Node:
        return _binary("sub", self, other)

    def __rsub__(self, other: object) -> Node:
        return _binary("sub", other, self)

    def __mul__(self, other: object) -> Node:
        return _binary("mul", self, other)

    def __rmul__(self, other: object) -> Node:
        return _binary("mul", other, self)

    def __truediv__(self, other: object) -> Node:
        return _binary("div", self, other)

    def __rtruediv__(self, other: object) -> Node:
        return _binary("div", other, self)

    def __matmul__(self, other: object) -> Node:
        return _binary("matmul", self, other)

    def __rmatmul__(self, other: object) -> Node:
        return _binary("matmul", other, self)

    def __pow__(self, exponent: object) -> Node:
        if isinstance(exponent, np.ndarray) and exponent.ndim == 0:
            exponent = exponent.item()
        if isinstance(exponent, bool) or not isinstance(exponent, numbers.Real):
            raise TypeError(
                f"node ** {type(exponent).__name__}: the exponent must be a number, because the "
                "op catalog's pow takes its exponent as an attr; for a tensor or node exponent y "
                "write (y * x.log()).exp()"
            )
        return Node("pow", (self,), {"exponent": _finite(exponent, "exponent")})

    def __rpow__(self, base: object) -> Node:
        raise TypeError(
            f"{type(base).__name__} ** node: the exponent must be a number, because the op "
            "catalog's pow takes its exponent as an attr; for b ** x with b > 0 write "
            "(x * math.log(b)).exp()"
        )

    # ---------------------------------------------------------------- unary operators

    def __neg__(self) -> Node:
        return Node("neg", (self,))

    def __pos__(self) -> Node:
        return self

    def __abs__(self) -> Node:
        return Node("abs", (self,))

    # ---------------------------------------------------------------- elementwise methods

    def exp(self) -> Node:
        return Node("exp", (self,))

    def log(self) -> Node:
        return Node("log", (self,))

    def sqrt(self) -> Node:
        return Node("sqrt", (self,))

    def abs(self) -> Node:
        return Node("abs", (self,))

    def sigmoid(self) -> Node:
        return Node("sigmoid", (self,))

    def tanh(self) -> Node:
        return Node("tanh", (self,))

    def relu(self) -> Node:
        return Node("relu", (self,))

    # ---------------------------------------------------------------- reductions and shapes

    def sum(self, axis: int | Iterable[int] | None = None, keepdims: bool = False) -> Node:
        return Node("sum", (self,), _reduce_attrs(axis, keepdims))

    def mean(self, axis: int | Iterable[int] | None = None, keepdims: bool = False) -> Node:
        return Node("mean", (self,), _reduce_attrs(axis, keepdims))

    def transpose(self, *axes: int | Iterable[int] | None) -> Node:
        """Like numpy: `x.transpose()`, `x.transpose((1, 0))` or `x.transpose(1, 0)`."""
        if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], numbers.Integral)):
            axes = () if axes[0] is None else tuple(axes[0])  # type: ignore[arg-type]
        return Node("transpose", (self,), {"axes": _ints(axes, "axes")} if axes else {})

    @property
    def T(self) -> Node:
        return self.transpose()

    def reshape(self, *shape: int | Iterable[int]) -> Node:
        """Like numpy: `x.reshape((2, 3))` or `x.reshape(2, 3)`."""
        if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
            shape = tuple(shape[0])  # type: ignore[arg-type]
        return Node("reshape", (self,), {"shape": _ints(shape, "shape")})

    def softmax(self, axis: int = -1) -> Node:
        return Node("softmax", (self,), {} if axis == -1 else {"axis": _int(axis, "axis")})

    def log_softmax(self, axis: int = -1) -> Node:
        return Node("log_softmax", (self,), {} if axis == -1 else {"axis": _int(axis, "axis")})


GraphLike: TypeAlias = Node | Mapping[str, Any]


# -------------------------------------------------------------------- constructors


def input(id: str, value: object = None) -> Node:
    """A variable named `id`, with an optional default value (a request's `inputs` override it)."""
    if not isinstance(id, str) or not id:
        raise ValueError(f"an input needs a non-empty string id, got {id!r}")
    return Node("input", value=None if value is None else _tensor(value), id=id)


def const(value: object, id: str | None = None) -> Node:
    """A fixed value."""
    if value is None:
        raise ValueError("a const needs a value")
    return Node("const", value=_tensor(value), id=id)


def maximum(*xs: object) -> Node:
    """Elementwise max of two or more operands (ties split the gradient equally)."""
    return Node("max", _operands(xs, "maximum"))


def minimum(*xs: object) -> Node:
    """Elementwise min of two or more operands (ties split the gradient equally)."""
    return Node("min", _operands(xs, "minimum"))


def inv(x: object) -> Node:
    """1 / x."""
    return Node("inv", (_as_node(x),))


def add_const(x: object, c: float) -> Node:
    """c + x with c carried as an attr rather than a const node."""
    return Node("add_const", (_as_node(x),), {"c": _finite(c, "c")})


def scale(x: object, a: float) -> Node:
    """a * x with a carried as an attr rather than a const node."""
    return Node("scale", (_as_node(x),), {"a": _finite(a, "a")})


# -------------------------------------------------------------------- serialisation


@dataclass(frozen=True)
class Serialised:
    """A graph dict with the ids `to_graph` gave each node of the expression."""

    graph: dict[str, Any]
    ids: Mapping[Node, str]


def to_graph(output: GraphLike, *, b64_threshold: int = B64_THRESHOLD) -> dict[str, Any]:
    """The contract's graph dict for the expression ending in `output` (or a graph dict)."""
    return serialise(output, b64_threshold=b64_threshold).graph


def serialise(output: GraphLike, *, b64_threshold: int = B64_THRESHOLD) -> Serialised:
    """Walk the expression (explicit stack: chains can be far deeper than Python's recursion)."""
    if isinstance(output, Mapping):
        return Serialised(_graph_dict(output, b64_threshold), {})
    if not isinstance(output, Node):
        raise TypeError(f"expected a Node or a graph dict, got {type(output).__name__}")
    order = topological_order(output)
    ids = _assign_ids(order)
    nodes = []
    seen: set[str] = set()
    for node in order:
        node_id = ids[node]
        if node_id in seen:  # a second object for an already-listed input of the same name
            continue
        seen.add(node_id)
        entry: dict[str, Any] = {"id": node_id, "op": node.op}
        if node.inputs:
            entry["inputs"] = [ids[x] for x in node.inputs]
        if node.attrs:
            entry["attrs"] = dict(node.attrs)
        if node.value is not None:
            entry["value"] = encode_tensor(node.value, b64_threshold=b64_threshold)
        nodes.append(entry)
    return Serialised({"nodes": nodes, "output": ids[output]}, ids)


def topological_order(output: Node) -> list[Node]:
    """Every node `output` depends on, inputs before users, in argument order."""
    order: list[Node] = []
    seen = {output}
    stack: list[tuple[Node, int]] = [(output, 0)]
    while stack:
        node, index = stack.pop()
        if index < len(node.inputs):
            stack.append((node, index + 1))
            child = node.inputs[index]
            if child not in seen:
                seen.add(child)
                stack.append((child, 0))
        else:
            order.append(node)
    return order


def _assign_ids(order: list[Node]) -> dict[Node, str]:
    named: dict[str, Node] = {}
    for node in order:
        if node.id is None:
            continue
        other = named.setdefault(node.id, node)
        if other is not node and not _same_source(other, node):
            raise ValueError(
                f"two different nodes are named {node.id!r}; give one of them another id"
            )
    used = set(named)
    ids: dict[Node, str] = {}
    for position, node in enumerate(order):
        if node.id is not None:
            ids[node] = node.id
            continue
        candidate = f"{node.op}_{position}"
        while candidate in used:
            candidate += "_"
        used.add(candidate)
        ids[node] = candidate
    return ids


def _same_source(a: Node, b: Node) -> bool:
    """Two `input` objects declaring the same variable alike may share its id."""
    if a.op != "input" or b.op != "input":
        return False
    if a.value is None or b.value is None:
        return a.value is None and b.value is None
    return bool(np.shape(a.value) == np.shape(b.value) and np.array_equal(a.value, b.value))


def _graph_dict(graph: Mapping[str, Any], b64_threshold: int) -> dict[str, Any]:
    """A user's graph dict, passed on as given except numpy values made JSON-ready."""
    nodes = graph.get("nodes")
    if not isinstance(nodes, list | tuple):
        raise ValueError("a graph dict needs a 'nodes' list")
    out_nodes = []
    for entry in nodes:
        if isinstance(entry, Mapping) and isinstance(entry.get("value"), np.ndarray | np.generic):
            entry = {**entry, "value": encode_tensor(entry["value"], b64_threshold=b64_threshold)}
        out_nodes.append(entry)
    return {**graph, "nodes": out_nodes}


def from_graph(graph: Mapping[str, Any]) -> Node:
    """The expression a graph dict describes, ending at its output; ValueError if malformed."""
    nodes = graph.get("nodes")
    output = graph.get("output")
    if not isinstance(nodes, list | tuple) or not isinstance(output, str):
        raise ValueError("a graph dict needs a 'nodes' list and an 'output' id")
    entries: dict[str, Mapping[str, Any]] = {}
    for entry in nodes:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
            raise ValueError(f"every graph node needs a string 'id', got {entry!r}")
        if entry["id"] in entries:
            raise ValueError(f"duplicate node id {entry['id']!r}")
        entries[entry["id"]] = entry
    if output not in entries:
        raise ValueError(f"the graph's output {output!r} is not one of its nodes")

    built: dict[str, Node] = {}
    on_path: set[str] = {output}
    stack: list[tuple[str, int]] = [(output, 0)]
    while stack:
        node_id, index = stack.pop()
        entry = entries[node_id]
        inputs = entry.get("inputs") or []
        if not isinstance(inputs, list | tuple) or not all(isinstance(x, str) for x in inputs):
            raise ValueError(f"node {node_id!r}: 'inputs' must be a list of ids")
        if index < len(inputs):
            stack.append((node_id, index + 1))
            child = inputs[index]
            if child not in entries:
                raise ValueError(f"node {node_id!r} names unknown input {child!r}")
            if child in on_path:
                raise ValueError(f"node {child!r} is part of a cycle")
            if child not in built:
                on_path.add(child)
                stack.append((child, 0))
            continue
        value = entry.get("value")
        built[node_id] = Node(
            str(entry.get("op")),
            [built[x] for x in inputs],
            entry.get("attrs"),
            None if value is None else _tensor(decode_tensor(value)),
            node_id,
        )
        on_path.discard(node_id)
    return built[output]


# -------------------------------------------------------------------- helpers


def _as_node(value: object) -> Node:
    node = _operand(value)
    if node is None:
        raise TypeError(f"cannot use a {type(value).__name__} as a node")
    return node


def _operand(value: object) -> Node | None:
    """The node for an operator's other side, or None when the type is not ours to handle."""
    if isinstance(value, Node):
        return value
    if isinstance(value, Mapping):
        return from_graph(value)
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, numbers.Real | np.ndarray | list | tuple):
        return const(value)
    return None


def _binary(op: str, left: object, right: object) -> Any:
    a, b = _operand(left), _operand(right)
    if a is None or b is None:
        return NotImplemented
    return Node(op, (a, b))


def _operands(xs: tuple[object, ...], name: str) -> tuple[Node, ...]:
    if len(xs) < 2:
        raise TypeError(f"{name}() takes two or more operands, got {len(xs)}")
    return tuple(_as_node(x) for x in xs)


def _tensor(value: object) -> float | np.ndarray:
    if isinstance(value, float):
        return float(value)
    array = as_array(value)
    return float(array) if array.ndim == 0 else array


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _ints(values: Iterable[object], name: str) -> list[int]:
    return [_int(v, name) for v in values]


def _reduce_attrs(axis: int | Iterable[int] | None, keepdims: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if axis is not None:
        attrs["axis"] = (
            _int(axis, "axis") if isinstance(axis, numbers.Integral) else _ints(axis, "axis")
        )
    if not isinstance(keepdims, bool):
        raise TypeError(f"keepdims must be a bool, got {keepdims!r}")
    if keepdims:
        attrs["keepdims"] = True
    return attrs
