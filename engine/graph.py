"""The graph as the engine receives it: plain, already-decoded nodes and limits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Node:
    """One gate or source. `value` is a float64 array (sources only), or None."""

    id: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict = field(default_factory=dict)
    value: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[Node, ...]
    output: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits checked before anything is allocated; None means unlimited."""

    max_nodes: int | None = None
    max_elements: int | None = None
    max_total_elements: int | None = None


NO_LIMITS = Limits()
