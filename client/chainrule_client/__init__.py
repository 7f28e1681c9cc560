"""chainrule's Python SDK: build expressions like micrograd's Value and ask the service for
their values and gradients.

    import chainrule_client as cr

    x, y, z = cr.input("x", -2.0), cr.input("y", 5.0), cr.input("z", -4.0)
    with cr.Client("http://localhost:8000") as client:
        result = client.gradients((x + y) * z)
    result.value, result.grad(x)        # -12.0, -4.0

The SDK speaks the HTTP wire contract only; it shares no code with the service. Exceptions are
rooted at `ChainruleError` (tree in `chainrule_client.exceptions`).
"""

from chainrule_client import nn as nn  # the submodule, as cr.nn
from chainrule_client.client import VERSION as __version__
from chainrule_client.client import AsyncClient, Client
from chainrule_client.exceptions import (
    APIError,
    BadRequest,
    ChainruleError,
    DeadlineExceeded,
    GraphError,
    NetworkError,
    NotFound,
    ProtocolError,
    ServerError,
    Timeout,
    TooLarge,
    TransportError,
    Unavailable,
    ValidationError,
)
from chainrule_client.expr import Node, const, input
from chainrule_client.functions import (
    add_const,
    concat,
    conv2d,
    cross_entropy,
    inv,
    max_pool2d,
    maximum,
    minimum,
    scale,
    stack,
)
from chainrule_client.graphs import from_graph, to_graph
from chainrule_client.results import (
    Check,
    GradcheckResult,
    JacobianResult,
    OptimizeResult,
    Params,
    Result,
    Step,
)

__all__ = [
    "APIError",
    "AsyncClient",
    "BadRequest",
    "ChainruleError",
    "Check",
    "Client",
    "DeadlineExceeded",
    "GradcheckResult",
    "GraphError",
    "JacobianResult",
    "NetworkError",
    "Node",
    "NotFound",
    "OptimizeResult",
    "Params",
    "ProtocolError",
    "Result",
    "ServerError",
    "Step",
    "Timeout",
    "TooLarge",
    "TransportError",
    "Unavailable",
    "ValidationError",
    "__version__",
    "add_const",
    "concat",
    "const",
    "conv2d",
    "cross_entropy",
    "from_graph",
    "input",
    "inv",
    "max_pool2d",
    "maximum",
    "minimum",
    "scale",
    "stack",
    "to_graph",
]
