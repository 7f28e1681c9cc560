"""A request's way through the server, without Flask: load -> bind -> hash -> plan -> run.

The views (service/api/views.py) and the command line (service/cli.py) both call these
functions; what differs between them (limits, the plan cache, the deadline, how stages are
timed) comes in as arguments, never from a request context.

    loaded = load("gradients", data, limits)          # schema load, bind sources, hash
    loaded = load_registered("gradients", data, registered, limits)   # the same, graph by id
    plan = plan_of(loaded, context)                   # through the plan cache
    result = run(loaded, plan, context, forward_only=False)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import (
    Graph,
    Plan,
    RunResult,
    TooLarge,
    UnknownNode,
    bind_sources,
    check_finite,
    check_seed,
    input_ids,
    node_table,
)
from schemas import CanonicalGraph, Request, canonical_graph, load_request, request_hash
from service.graphs import RegisteredGraph, source_nodes
from service.known_structures import KnownStructures, Recalled, structure_of
from service.plans import PlanCache
from service.skeletons import Skeleton

# Times a named stage: `with timer("load"): ...` (the views pass the request's StageTimer).
Timer = Callable[[str], AbstractContextManager]


def untimed(stage: str) -> AbstractContextManager:
    """A Timer that records nothing."""
    return nullcontext()


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """What one request may ask for; None: no limit (the command line runs local files)."""

    max_nodes: int | None = None
    max_elements: int | None = None
    max_gradcheck_elements: int | None = None
    diagram_max_nodes: int | None = None
    diagram_timeout_seconds: float = 10.0
    max_optimize_steps: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RequestLimits:
        return cls(
            max_nodes=config["MAX_NODES"],
            max_elements=config["MAX_ELEMENTS"],
            max_gradcheck_elements=config["MAX_GRADCHECK_ELEMENTS"],
            diagram_max_nodes=config["DIAGRAM_MAX_NODES"],
            diagram_timeout_seconds=config["DIAGRAM_TIMEOUT_SECONDS"],
            max_optimize_steps=config["MAX_OPTIMIZE_STEPS"],
        )


@dataclass(frozen=True, slots=True)
class Loaded:
    """A request through schema load, source binding and hashing."""

    kind: str
    request: Request
    sources: dict[str, np.ndarray]
    graph: CanonicalGraph
    hash: str


def _ignore_plan_lookup(cached: bool) -> None:
    return None


@dataclass(slots=True)
class ComputeContext:
    """What computing a loaded request may use.

    `deadline` is a time.monotonic() value (None: none); `engine_stage` times the stages spent
    in the engine (compile, run) and `timer` the others (dump, render); `on_plan_lookup` hears
    whether each plan came from the cache; `on_record` hears each trajectory entry of an
    optimisation as it is recorded (the event stream).
    """

    plans: PlanCache
    limits: RequestLimits
    deadline: float | None = None
    timer: Timer = untimed
    engine_stage: Timer = untimed
    on_plan_lookup: Callable[[bool], None] = field(default=_ignore_plan_lookup)
    on_record: Callable[[dict], None] | None = None


def load(
    kind: str,
    data: object,
    limits: RequestLimits,
    timer: Timer = untimed,
    structures: KnownStructures | None = None,
    skeleton: Skeleton | None = None,
) -> Loaded:
    """A parsed body of endpoint `kind`, loaded, bound and hashed.

    With `structures`, a graph whose structure is held is not loaded again, only its values
    (service/known_structures.py); a structure is held from its second load, and the body's
    `skeleton` is remembered with it then.
    Raises TooLarge, marshmallow's ValidationError, or the engine's error naming the node.
    """
    if limits.max_nodes is not None:
        reject_oversized_graph(data, limits.max_nodes)
    with timer("load"):
        held = structures is not None and structures.may_hold(data)
        structure = structure_of(data) if held else None
        known = structures.recall(structure, limits.max_elements) if structure else None
        request = _request_of(kind, data, known, limits)
        sources = source_nodes(request.graph) if known is None else known.sources
    canonical = None if known is None else known.canonical
    loaded = _bound_and_hashed(kind, request, sources, canonical, timer)
    if structures is not None and known is None:
        structure = structures.remember(data, structure, request.graph, loaded.graph)
    if structure is not None and skeleton is not None:
        structures.remember_body(skeleton, structure, data)
    return loaded


def recall_body(
    kind: str,
    skeleton: Skeleton,
    limits: RequestLimits,
    timer: Timer,
    structures: KnownStructures,
) -> Loaded | None:
    """The body of `skeleton` sent to endpoint `kind`, loaded, bound and hashed without being
    parsed, when its skeleton is known (service/skeletons.py); else None, and the body takes
    the whole way. Raises as `load` does for the same body."""
    if not structures.knows_body(skeleton):
        return None
    with timer("load"):
        recalled = structures.recall_body(skeleton, limits.max_elements)
        if recalled is None:
            return None
        known, rest = recalled
        request = load_request(kind, rest, max_elements=limits.max_elements, graph=known.graph)
    return _bound_and_hashed(kind, request, known.sources, known.canonical, timer)


def _request_of(kind: str, data: object, known: Recalled | None, limits: RequestLimits) -> Request:
    """The request of a parsed body: loaded whole, or (a known structure) its body without
    `graph` against the known graph holding this body's values."""
    if known is None:
        return load_request(kind, data, max_elements=limits.max_elements)
    rest = {key: value for key, value in data.items() if key != "graph"}
    return load_request(kind, rest, max_elements=limits.max_elements, graph=known.graph)


def load_registered(
    kind: str,
    data: object,
    registered: RegisteredGraph,
    limits: RequestLimits,
    timer: Timer = untimed,
) -> Loaded:
    """A parsed body of endpoint `kind` against a registered graph (the body without `graph`),
    loaded, bound and hashed: the same request and hash as the inline body.

    The graph was loaded, checked and put in canonical form at registration; binding reads
    only its source nodes. The request reads the held graph through a view of its own.
    """
    graph = Graph(node_table(registered.graph.nodes).view(), registered.graph.output)
    with timer("load"):
        request = load_request(kind, data, max_elements=limits.max_elements, graph=graph)
    return _bound_and_hashed(kind, request, registered.sources, registered.canonical, timer)


def _bound_and_hashed(
    kind: str,
    request: Request,
    sources: Graph,
    canonical: CanonicalGraph | None,
    timer: Timer,
) -> Loaded:
    """A loaded request with its `sources` nodes bound and its hash; `canonical` is its
    graph's canonical form when known already."""
    with timer("bind"):
        values = bind_request(request, sources)
    with timer("hash"):
        canonical = canonical or canonical_graph(request.graph)
        digest = request_hash(kind, request, values, canonical)
    return Loaded(kind, request, values, canonical, digest)


def reject_oversized_graph(data: object, max_nodes: int) -> None:
    """TooLarge when the body's graph lists more than `max_nodes` nodes."""
    # Counting the raw list first spares the schema load of a graph the engine would refuse.
    graph = data.get("graph") if isinstance(data, dict) else None
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    if isinstance(nodes, list) and len(nodes) > max_nodes:
        raise TooLarge(f"the graph has {len(nodes)} nodes; the limit is {max_nodes}")


def bind_request(request: Request, source_nodes: Graph | None = None) -> dict[str, np.ndarray]:
    """The sources of `request`'s graph (MissingInput, UnknownNode, NonfiniteInput).

    The engine's `bind_sources` gives every input and const its effective value; non-finite
    ones are refused here unless the request allows them, and `check_seed` does the same for
    the seed. A batched input's value is its batch array (leading axis B). `source_nodes` is
    the graph's source nodes alone, when the caller has them.
    """
    graph = source_nodes or request.graph
    given = request.inputs
    if request.batch:
        _check_batch_keys(request, graph)
        given = {**request.inputs, **request.batch}
    sources = bind_sources(graph, given, allow_nonfinite=True)
    if not request.allow_nonfinite:
        check_finite_sources(sources)
    check_seed(request.seed, request.graph.output, allow_nonfinite=request.allow_nonfinite)
    return sources


def check_finite_sources(sources: Mapping[str, np.ndarray]) -> None:
    """NonfiniteInput naming the first source holding NaN or infinity, as the engine's own
    per-value check would; the scalars (most sources of big graphs) checked in one pass."""
    scalars = [value for value in sources.values() if value.ndim == 0]
    finite = all(map(math.isfinite, scalars)) and all(
        np.isfinite(value).all() for value in sources.values() if value.ndim
    )
    if finite:
        return
    for name, value in sources.items():
        check_finite(value, name, f"the value of '{name}'")


def _check_batch_keys(request: Request, graph: Graph) -> None:
    variables = set(input_ids(graph.nodes))
    for name in request.batch:
        if name not in variables:
            raise UnknownNode(f"batch names '{name}', which is not an input node", name)


def plan_of(loaded: Loaded, context: ComputeContext) -> Plan:
    """The compiled plan of the loaded graph at its source shapes, through the plan cache."""
    with context.engine_stage("compile"):
        plan, cached = context.plans.plan_for(
            loaded.request.graph, loaded.sources, loaded.graph.id, loaded.request.batch.keys()
        )
    context.on_plan_lookup(cached)
    return plan


def run(
    loaded: Loaded, plan: Plan, context: ComputeContext, *, forward_only: bool,
    every_node: bool = False,
) -> RunResult:
    """One forward (and, unless `forward_only`, backward) pass of the loaded request.

    `every_node` reports every node whatever the request's `wrt` (a diagram draws them all).
    """
    request = loaded.request
    with context.engine_stage("run"):
        return plan.run(
            loaded.sources,
            seed=None if forward_only else request.seed,
            wrt=None if every_node else request.wrt,
            forward_only=forward_only,
            deadline=context.deadline,
            reduce=request.reduce,
        )
