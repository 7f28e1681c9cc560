"""A graph's nodes as columns checked in bulk: ids, kinds (an op with one set of attrs), inputs.

The checks that need no order (duplicate ids, unknown ops, arity, attrs, unknown references) run
over whole columns, each distinct op and attrs checked once. When any of them fails, the
per-node checks run in listing order to raise exactly the error the first faulty node gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import NoReturn

import numpy as np

from engine.errors import Arity, DuplicateId, EngineError, GraphError, UnknownNode, UnknownOp
from engine.graph import Node, NodeTable, node_table
from engine.ops import OPS, Op, checked_attrs
from engine.ragged import Ragged

# An op's arity bound when it has none (n-ary ops).
NO_MAX = np.iinfo(np.intp).max


@dataclass(frozen=True, slots=True)
class Columns:
    """The nodes in listing order: `kinds[i]` is node i's row in `table` (its op and canonical
    attrs, shared by every node of that kind); `ins` holds listing positions."""

    ids: list[str]
    index: dict[str, int]
    kinds: np.ndarray
    table: tuple[tuple[Op, dict], ...]
    ins: Ragged


def source_kinds(table: Sequence[tuple[Op, dict]]) -> np.ndarray:
    """Which kinds of a kind table are sources."""
    return np.array([op.is_source for op, _ in table], dtype=bool)


def node_columns(nodes: Sequence[Node]) -> Columns:
    """The checked columns of `nodes`; raise the GraphError the per-node checks give."""
    table = node_table(nodes)
    ids = table.ids
    index = dict(zip(ids, range(len(ids)), strict=True))
    if len(index) != len(ids):
        raise_first_fault(table)
    kinds, kind_rows = _kinds(table)
    input_ids, lengths = table.edges()
    if not _arities_fit(lengths, kinds, kind_rows):
        raise_first_fault(table)
    try:
        flat = np.array(lookup(index, input_ids), dtype=np.intp)
    except KeyError:
        raise_first_fault(table)
    return Columns(ids, index, kinds, kind_rows, Ragged.from_lengths(lengths, flat))


def lookup(mapping: dict, keys: list) -> tuple | list:
    """`mapping[key]` for every key, in one C-level call (twice as fast as a loop)."""
    if len(keys) < 2:  # itemgetter gives a single item bare, and needs one at least
        return [mapping[key] for key in keys]
    return itemgetter(*keys)(mapping)


def read_kinds(table: NodeTable) -> list[tuple[Op | None, dict | EngineError]]:
    """Each kind's op (None for an unknown one) and its attrs as the engine reads them
    (`checked_attrs` of the kind's first node), or the EngineError that reading raised.
    Worked out once per table: compile and the canonical form both read every kind so."""
    if table._read_kinds is None:
        ops, attrs, ids = table.ops, table.attrs, table.ids
        table._read_kinds = [_read_kind(ops[k], attrs[k], ids[k]) for k in table.kinds()[1]]
    return table._read_kinds


def _read_kind(op_name: str, attrs: dict, node: str) -> tuple[Op | None, dict | EngineError]:
    op = OPS.get(op_name)
    if op is None:
        return None, UnknownOp(f"unknown op '{op_name}'", node)
    try:
        return op, checked_attrs(op, attrs, node)
    except EngineError as error:
        return op, error


def _kinds(table: NodeTable) -> tuple[np.ndarray, tuple[tuple[Op, dict], ...]]:
    """Each node's kind, and each kind's op and canonical attrs (checked once per kind).

    Nodes are grouped by `NodeTable.kinds`, which tells apart attrs that == calls equal; kinds
    whose canonical attrs read alike are then merged.
    """
    given, _ = table.kinds()
    # a node of each kind stands for all: any fault sends the checks back to listing order
    kind_table: dict[tuple, int] = {}
    rows: list[tuple[Op, dict]] = []
    merged: list[int] = []
    for op, read in read_kinds(table):
        if isinstance(read, GraphError):
            raise_first_fault(table)
        if isinstance(read, EngineError):
            raise read
        canonical = (op.name, repr(read))
        if canonical not in kind_table:  # equal attrs written differently share one kind
            kind_table[canonical] = len(rows)
            rows.append((op, read))
        merged.append(kind_table[canonical])
    return np.array(merged, dtype=np.intp)[given], tuple(rows)


def _arities_fit(lengths: np.ndarray, kinds: np.ndarray, table) -> bool:
    low = np.array([op.min_arity for op, _ in table], dtype=np.intp)
    high = np.array([NO_MAX if op.max_arity is None else op.max_arity for op, _ in table],
                    dtype=np.intp)
    return bool(np.all((lengths >= low[kinds]) & (lengths <= high[kinds])))


# ---------------------------------------------------------------- the per-node checks


def raise_first_fault(nodes: Sequence[Node]) -> NoReturn:
    """Raise the error of the first faulty node, the checks in their documented order:
    duplicate ids, then per node (unknown op, arity, attrs), then unknown references."""
    seen: set[str] = set()
    for node in nodes:
        if node.id in seen:
            raise DuplicateId(f"node id '{node.id}' is used more than once", node.id)
        seen.add(node.id)
    for node in nodes:
        check_node(node)
    for node in nodes:
        for name in node.inputs:
            if name not in seen:
                raise UnknownNode(f"node '{node.id}' takes unknown node '{name}'", node.id)
    raise AssertionError("the bulk checks found a fault the per-node checks do not")


def check_node(node: Node) -> tuple[Op, dict]:
    """One node's op row and canonical attrs; raise UnknownOp, Arity or BadAttr naming it."""
    op = OPS.get(node.op)
    if op is None:
        raise UnknownOp(f"unknown op '{node.op}'", node.id)
    n = len(node.inputs)
    low, high = op.arity
    if n < low or (high is not None and n > high):
        raise Arity(f"op '{op.name}' takes {op.arity_text} inputs, got {n}", node.id)
    return op, checked_attrs(op, node.attrs, node.id)
