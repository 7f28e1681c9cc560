"""Expressions in the style of micrograd's Value: nodes of the contract's graph, built by
Python operators and methods.

`input("x", 2.0)` and `const(3.0)` make source nodes; operators and the methods below build
gates from the op catalog; numbers and numpy arrays on either side of an operator become `const`
nodes. Nodes are immutable and know nothing of ids until `graphs.to_graph` walks the expression.
Functions of several nodes (`maximum`, `concat`, `conv2d` ...) live in `functions`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeAlias

import numpy as np

from chainrule_client.attrs import (
    clip_attrs,
    finite,
    integer,
    integers,
    nested_integers,
    reduce_attrs,
    slice_entries,
    tensor_value,
)

__all__ = ["GraphLike", "Node", "as_node", "const", "input"]


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
        return Node("pow", (self,), {"exponent": finite(exponent, "exponent")})

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

    def sin(self) -> Node:
        return Node("sin", (self,))

    def cos(self) -> Node:
        return Node("cos", (self,))

    def log1p(self) -> Node:
        """log(1 + x), accurate near 0."""
        return Node("log1p", (self,))

    def softplus(self) -> Node:
        """log(1 + e ** x), computed by the service without overflow."""
        return Node("softplus", (self,))

    def gelu(self) -> Node:
        """GELU, tanh approximation (PyTorch's approximate="tanh")."""
        return Node("gelu", (self,))

    def leaky_relu(self, slope: float = 0.01) -> Node:
        """x where x > 0, else slope * x."""
        slope = finite(slope, "slope")
        return Node("leaky_relu", (self,), {} if slope == 0.01 else {"slope": slope})

    def clip(self, lo: float | None = None, hi: float | None = None) -> Node:
        """numpy clip; the gradient passes where lo <= x <= hi. A None bound is open."""
        return Node("clip", (self,), clip_attrs(lo, hi))

    # ---------------------------------------------------------------- reductions and shapes

    def sum(self, axis: int | Iterable[int] | None = None, keepdims: bool = False) -> Node:
        return Node("sum", (self,), reduce_attrs(axis, keepdims))

    def mean(self, axis: int | Iterable[int] | None = None, keepdims: bool = False) -> Node:
        return Node("mean", (self,), reduce_attrs(axis, keepdims))

    def amax(self, axis: int | Iterable[int] | None = None, keepdims: bool = False) -> Node:
        """Max over axes (ties split the gradient equally)."""
        return Node("amax", (self,), reduce_attrs(axis, keepdims))

    def amin(self, axis: int | Iterable[int] | None = None, keepdims: bool = False) -> Node:
        """Min over axes (ties split the gradient equally)."""
        return Node("amin", (self,), reduce_attrs(axis, keepdims))

    def logsumexp(self, axis: int | Iterable[int] | None = None, keepdims: bool = False) -> Node:
        """log(sum(exp(x))) over axes, stable."""
        return Node("logsumexp", (self,), reduce_attrs(axis, keepdims))

    def var(
        self, axis: int | Iterable[int] | None = None, keepdims: bool = False, ddof: int = 0
    ) -> Node:
        """Variance over axes, dividing by n - ddof."""
        attrs = reduce_attrs(axis, keepdims)
        if integer(ddof, "ddof") != 0:
            attrs["ddof"] = int(ddof)
        return Node("var", (self,), attrs)

    def transpose(self, *axes: int | Iterable[int] | None) -> Node:
        """Like numpy: `x.transpose()`, `x.transpose((1, 0))` or `x.transpose(1, 0)`."""
        if len(axes) == 1 and (axes[0] is None or not isinstance(axes[0], numbers.Integral)):
            axes = () if axes[0] is None else tuple(axes[0])  # type: ignore[arg-type]
        return Node("transpose", (self,), {"axes": integers(axes, "axes")} if axes else {})

    @property
    def T(self) -> Node:
        return self.transpose()

    def reshape(self, *shape: int | Iterable[int]) -> Node:
        """Like numpy: `x.reshape((2, 3))` or `x.reshape(2, 3)`."""
        if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
            shape = tuple(shape[0])  # type: ignore[arg-type]
        return Node("reshape", (self,), {"shape": integers(shape, "shape")})

    def softmax(self, axis: int = -1) -> Node:
        return Node("softmax", (self,), {} if axis == -1 else {"axis": integer(axis, "axis")})

    def log_softmax(self, axis: int = -1) -> Node:
        return Node("log_softmax", (self,), {} if axis == -1 else {"axis": integer(axis, "axis")})

    def __getitem__(self, key: object) -> Node:
        """Basic indexing as numpy's: ints and slices, one per leading axis (`slice`)."""
        return Node("slice", (self,), {"slices": slice_entries(key)})

    def __iter__(self) -> Iterator[Node]:
        # Without this, Python would iterate by x[0], x[1], ... forever: the length of an axis
        # is known only to the service.
        raise TypeError("a node is not iterable; index it (x[i]) or reshape it instead")

    def take(self, indices: object, axis: int = 0) -> Node:
        """numpy take along `axis` (an embedding lookup); repeated indices add up gradients."""
        attrs: dict[str, Any] = {"indices": nested_integers(indices, "indices")}
        if integer(axis, "axis") != 0:
            attrs["axis"] = int(axis)
        return Node("take", (self,), attrs)

    def broadcast_to(self, *shape: int | Iterable[int]) -> Node:
        """Like numpy: `x.broadcast_to((2, 3))` or `x.broadcast_to(2, 3)`."""
        if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
            shape = tuple(shape[0])  # type: ignore[arg-type]
        return Node("broadcast_to", (self,), {"shape": integers(shape, "shape")})


GraphLike: TypeAlias = Node | Mapping[str, Any]


# -------------------------------------------------------------------- constructors


def input(id: str, value: object = None) -> Node:
    """A variable named `id`, with an optional default value (a request's `inputs` override it)."""
    if not isinstance(id, str) or not id:
        raise ValueError(f"an input needs a non-empty string id, got {id!r}")
    return Node("input", value=None if value is None else tensor_value(value), id=id)


def const(value: object, id: str | None = None) -> Node:
    """A fixed value."""
    if value is None:
        raise ValueError("a const needs a value")
    return Node("const", value=tensor_value(value), id=id)


# -------------------------------------------------------------------- operands


def as_node(value: object) -> Node:
    """A node, or a number / array / graph dict made into one; TypeError for anything else."""
    node = _operand(value)
    if node is None:
        raise TypeError(f"cannot use a {type(value).__name__} as a node")
    return node


def _operand(value: object) -> Node | None:
    """The node for an operator's other side, or None when the type is not ours to handle."""
    if isinstance(value, Node):
        return value
    if isinstance(value, Mapping):
        # Imported here: graphs builds on Node, so it cannot be imported at the top.
        from chainrule_client.graphs import from_graph

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
