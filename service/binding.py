"""The one bind step for a loaded request, shared by the API and the command line.

Binding gives every input and const node its effective value (the request's `inputs` over the
node's own) and refuses non-finite numbers in them and in the seed unless the request allows
them: the same checks, with the same messages, whichever way a graph comes in.
"""

from __future__ import annotations

import numpy as np

from engine import bind_sources, check_finite
from schemas import Request


def bind_request(request: Request) -> dict[str, np.ndarray]:
    """The sources of `request`'s graph (MissingInput, UnknownNode, NonfiniteInput)."""
    sources = bind_sources(request.graph, request.inputs, allow_nonfinite=request.allow_nonfinite)
    if request.seed is not None and not request.allow_nonfinite:
        check_finite(request.seed, request.graph.output, "the seed")
    return sources
