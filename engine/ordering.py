"""Topological order, levels and reachability over integer arrays.

The order is canonical, the same for every listing of one graph: the order in which a
first-in-first-out Kahn queue over the nodes sorted by id takes them. Such a queue takes the
nodes level by level (a node's level is one more than its deepest input's, sources are 0), and
a node joins it when its last input leaves it, the consumers of one node in id order. So a
level follows from the one before in a few numpy calls: gather the consumers of its nodes in
queue order, count the edges down, and keep each newly ready node at its last occurrence.

A level costs a dozen numpy calls whatever its width, so narrow levels (a chain) go node by
node in Python instead: once a level holds fewer than NARROW nodes, the rest of the queue runs
that way. Reachability (the output's ancestors, the nodes a `wrt` needs) chooses the same way.
"""

from __future__ import annotations

import numpy as np

from engine.errors import Cycle
from engine.ragged import Ragged

# Below this many nodes in a level, one Python step a node is cheaper than numpy calls a level:
# measured, a level costs about 13 us plus 0.07 us a node with numpy, 0.22 us a node in Python.
NARROW = 80


def canonical_order(
    ids: list[str], ins: Ragged, by_id: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The listing positions in topological order and their levels; raise Cycle naming a node
    on a cycle. `ins` holds listing positions; `by_id`, when given, the listing positions in
    id order."""
    rank = _id_ranks(ids, by_id)
    consumers = _consumers(ins, rank)
    pending = ins.lengths()
    frontier = np.flatnonzero(pending == 0)
    frontier = frontier[np.argsort(rank[frontier])]
    order: list[np.ndarray] = []
    levels: list[np.ndarray] = []
    while frontier.size >= NARROW:
        order.append(frontier)
        levels.append(np.full(frontier.size, len(levels), dtype=np.intp))
        frontier = _next_level(frontier, consumers, pending)
    if frontier.size:
        tail, tail_levels, pending = _node_by_node(frontier, len(levels), consumers, pending)
        order.append(np.array(tail, dtype=np.intp))
        levels.append(np.array(tail_levels, dtype=np.intp))
    placed = np.concatenate(order) if order else np.zeros(0, dtype=np.intp)
    if placed.size < len(ids):
        cycle = [ids[k] for k in _a_cycle(rank, ins, np.asarray(pending))]
        raise Cycle.through(cycle)
    return placed, np.concatenate(levels) if levels else placed


def _id_ranks(ids: list[str], by_id: list[int] | None = None) -> np.ndarray:
    """Each node's place among the ids sorted (Python's string order)."""
    if by_id is None:
        by_id = sorted(range(len(ids)), key=ids.__getitem__)
    rank = np.empty(len(ids), dtype=np.intp)
    rank[np.array(by_id, dtype=np.intp)] = np.arange(len(ids), dtype=np.intp)
    return rank


def _consumers(ins: Ragged, rank: np.ndarray) -> Ragged:
    """Each node's consumers in id order, a consumer repeated once per edge."""
    n = len(ins)
    target = np.repeat(np.arange(n, dtype=np.intp), ins.lengths())
    by_edge = np.argsort(ins.indices * n + rank[target])
    counts = np.bincount(ins.indices, minlength=n)
    return Ragged.from_lengths(counts, target[by_edge])


def _next_level(frontier: np.ndarray, consumers: Ragged, pending: np.ndarray) -> np.ndarray:
    """The next level in queue order; counts `pending` down for the edges leaving `frontier`."""
    reached = consumers.rows(frontier)
    np.subtract.at(pending, reached, 1)
    ready = reached[pending[reached] == 0]
    # a node reached twice joins the queue at its last occurrence: mark each node's last
    # position (no sort: a level of 10,000 nodes takes 50 us, not 700)
    positions = np.arange(ready.size, dtype=np.intp)
    last = np.zeros(len(pending), dtype=np.intp)
    np.maximum.at(last, ready, positions)
    return ready[last[ready] == positions]


def _node_by_node(
    frontier: np.ndarray, level: int, consumers: Ragged, pending: np.ndarray
) -> tuple[list[int], list[int], list[int]]:
    """Kahn's queue one node at a time from `frontier` on: the order, levels and what is left
    pending (non-zero on and after cycles)."""
    ptr = consumers.indptr.tolist()
    targets = consumers.indices.tolist()
    left = pending.tolist()
    queue = frontier.tolist()
    levels = [level] * len(queue)
    for k, below in zip(queue, levels, strict=False):  # both lists grow while walked
        for c in targets[ptr[k] : ptr[k + 1]]:
            left[c] -= 1
            if not left[c]:
                queue.append(c)
                levels.append(below + 1)
    return queue, levels, left


def _a_cycle(rank: np.ndarray, ins: Ragged, pending: np.ndarray) -> list[int]:
    """From the first unfinished node by id, walk back through each node's first unfinished
    input until a node repeats: the walk from there is a cycle. Its positions come in the
    direction values flow (each feeds the next, the last feeds the first), from that node."""
    stuck = np.flatnonzero(pending)
    current = int(stuck[np.argmin(rank[stuck])])
    walk: list[int] = []
    seen: dict[int, int] = {}
    while current not in seen:
        seen[current] = len(walk)
        walk.append(current)
        current = next(j for j in ins[current] if pending[j])
    loop = walk[seen[current]:]  # each takes the next as an input
    return [loop[0], *reversed(loop[1:])]


def reaching(ins: Ragged, levels: np.ndarray, target: int) -> np.ndarray:
    """Which nodes have a path to `target` (the target included), over topological positions."""
    n = len(ins)
    sinks = np.bincount(ins.indices, minlength=n) == 0
    if sinks[target] and np.count_nonzero(sinks) == 1:  # every path ends at the target
        return np.ones(n, dtype=bool)
    depth = int(levels[target])
    if n >= NARROW * (depth + 1):
        return _reaching_by_level(ins, levels, target)
    return _reaching_by_node(ins, target)


def _reaching_by_level(ins: Ragged, levels: np.ndarray, target: int) -> np.ndarray:
    reach = np.zeros(len(ins), dtype=bool)
    reach[target] = True
    bounds = np.searchsorted(levels, np.arange(int(levels[target]) + 2))
    for level in range(int(levels[target]), 0, -1):
        start, end = bounds[level], bounds[level + 1]
        rows = np.flatnonzero(reach[start:end]) + start
        if rows.size:
            reach[ins.rows(rows)] = True
    return reach


def _reaching_by_node(ins: Ragged, target: int) -> np.ndarray:
    ptr = ins.indptr.tolist()
    flat = ins.indices.tolist()
    reach = [False] * len(ins)
    reach[target] = True
    for i in range(target, -1, -1):
        if reach[i]:
            for j in flat[ptr[i] : ptr[i + 1]]:
                reach[j] = True
    return np.array(reach, dtype=bool)


def reached_from(ins: Ragged, levels: np.ndarray, marked: np.ndarray) -> np.ndarray:
    """Which nodes have a path from a `marked` node (those included), over topological
    positions."""
    reach = marked.copy()
    depth = int(levels[-1]) if len(levels) else 0
    if len(ins) >= NARROW * (depth + 1):
        ptr = ins.indptr
        bounds = np.searchsorted(levels, np.arange(depth + 2))
        for level in range(1, depth + 1):  # every node past level 0 has an input
            start, end = bounds[level], bounds[level + 1]
            if start < end:
                inputs = reach[ins.indices[ptr[start] : ptr[end]]]
                reach[start:end] |= np.logical_or.reduceat(inputs, ptr[start:end] - ptr[start])
        return reach
    ptr = ins.indptr.tolist()
    flat = ins.indices.tolist()
    found = reach.tolist()
    for i in range(len(found)):
        if not found[i] and any(found[j] for j in flat[ptr[i] : ptr[i + 1]]):
            found[i] = True
    return np.array(found, dtype=bool)
