"""What the service's answers become: `Result` (gradients, evaluate), `GradcheckResult`,
`JacobianResult` and `OptimizeResult`. Each looks nodes up by the node of the expression that
was sent or by id."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np

from chainrule_client.expr import Node

__all__ = [  # what the package exports; Tensor is an alias for annotations
    "Check",
    "GradcheckResult",
    "JacobianResult",
    "OptimizeResult",
    "Params",
    "Result",
    "Step",
]

Tensor = float | np.ndarray
V = TypeVar("V")


def known_id(node: Node | str, ids: Mapping[Node, str]) -> str | None:
    """The id a node (of the expression sent, or named) or an id string stands for; None for
    an unnamed node that is not part of the expression."""
    if isinstance(node, str):
        return node
    if isinstance(node, Node):
        return ids.get(node, node.id)
    raise TypeError(f"expected a Node or a node id, got {type(node).__name__}")


def _key(node: Node | str, ids: Mapping[Node, str]) -> str:
    key = known_id(node, ids)
    if key is None:
        raise KeyError("this unnamed node is not part of the request's expression")
    return key


def _entry(table: Mapping[str, V], node: Node | str, ids: Mapping[Node, str], missing: str) -> V:
    """The table's entry for a node; else a KeyError saying `missing` of the node's id."""
    key = _key(node, ids)
    try:
        return table[key]
    except KeyError:
        raise KeyError(missing.format(key)) from None


@dataclass(frozen=True, eq=False)
class Result:
    """One /v1/gradients or /v1/evaluate answer.

    `values` and `grads` map node ids (in the response's topological order) to floats for
    scalars and float64 arrays otherwise; `grads` is empty for evaluate results. `grad(x)` and
    `node_value(x)` take a node of the expression that was sent, or an id.
    """

    output: str
    value: Tensor
    values: dict[str, Tensor]
    grads: dict[str, Tensor]
    hash: str
    cached: bool
    kind: Literal["gradients", "evaluate"] = "gradients"
    request_id: str | None = None
    ids: Mapping[Node, str] = field(default_factory=dict, repr=False)

    def grad(self, node: Node | str) -> Tensor:
        """d(seed . output)/d(node)."""
        if self.kind == "evaluate":
            key = _key(node, self.ids)
            raise KeyError(f"an evaluate result has no gradients (asked for {key!r})")
        return _entry(self.grads, node, self.ids, "no gradient reported for node {!r} (see wrt)")

    def node_value(self, node: Node | str) -> Tensor:
        """The forward value of one node."""
        return _entry(self.values, node, self.ids, "no value reported for node {!r} (see wrt)")

    def __repr__(self) -> str:
        value = self.value if isinstance(self.value, float) else f"<array {self.value.shape}>"
        return (
            f"Result(output={self.output!r}, value={value}, nodes={len(self.values)}, "
            f"cached={self.cached}, hash={self.hash[:12]!r}...)"
        )


@dataclass(frozen=True)
class Check:
    """The gradient check of one input: `analytic`/`numeric` are None for large tensors;
    `details` says why a verdict is poor when the service can tell (an input at a kink, such
    as relu at 0: `details["reason"]` and `details["kinks"]`), else None."""

    max_rel_error: float
    verdict: Literal["good", "ok", "suspect", "wrong"]
    analytic: Tensor | None = None
    numeric: Tensor | None = None
    details: Mapping[str, object] | None = None


@dataclass(frozen=True, eq=False)
class GradcheckResult:
    """One /v1/gradcheck answer: a `Check` per checked input, and whether none was wrong."""

    checks: dict[str, Check]
    passed: bool
    hash: str
    cached: bool = False
    request_id: str | None = None
    ids: Mapping[Node, str] = field(default_factory=dict, repr=False)

    def __getitem__(self, node: Node | str) -> Check:
        return _entry(self.checks, node, self.ids, "input {!r} was not checked")


@dataclass(frozen=True, eq=False)
class JacobianResult:
    """One /v1/jacobian answer: per node in `wrt`, the full Jacobian of the output.

    `jacobian(x)` has the shape output.shape + x.shape (with a batch, a leading B axis first).
    """

    output: str
    value: Tensor
    jacobians: dict[str, Tensor]
    hash: str
    cached: bool
    request_id: str | None = None
    ids: Mapping[Node, str] = field(default_factory=dict, repr=False)

    def jacobian(self, node: Node | str) -> Tensor:
        """d(output)/d(node), every output element against every node element."""
        missing = "no Jacobian reported for node {!r} (see wrt)"
        return _entry(self.jacobians, node, self.ids, missing)


@dataclass(frozen=True)
class Step:
    """One recorded step of an optimisation: the output after `step` updates, and the L2 norm
    of d(output)/d(params) there."""

    step: int
    value: Tensor
    grad_norm: float


class Params(Mapping[str, Tensor]):
    """The final values of the optimised params, by id or by node; pass it as `inputs=` to
    evaluate the expression at them."""

    def __init__(self, values: Mapping[str, Tensor], ids: Mapping[Node, str]) -> None:
        self._values = dict(values)
        self._ids = ids

    def __getitem__(self, node: Node | str) -> Tensor:  # type: ignore[override]
        return _entry(self._values, node, self._ids, "{!r} is not one of the optimised params")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"


@dataclass(frozen=True, eq=False)
class OptimizeResult:
    """One /v1/optimize answer.

    `stopped` says why the run ended: "steps", "grad_norm", "value", "deadline" or
    "nonfinite"; `steps` is the number of updates done; `trajectory` the recorded steps.
    """

    params: Params
    value: Tensor
    steps: int
    stopped: str
    trajectory: list[Step]
    hash: str
    cached: bool
    request_id: str | None = None
