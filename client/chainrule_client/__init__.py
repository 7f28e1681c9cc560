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

from chainrule_client import exceptions, functions, results
from chainrule_client import nn as nn  # the submodule, as cr.nn
from chainrule_client.client import VERSION as __version__
from chainrule_client.client import AsyncClient, Client
from chainrule_client.exceptions import *  # noqa: F403 - the whole tree, as listed there
from chainrule_client.expr import Node, const, input
from chainrule_client.functions import *  # noqa: F403 - the gate-building functions
from chainrule_client.graphs import from_graph, to_graph
from chainrule_client.results import *  # noqa: F403 - the result types

# each module's own __all__ says which of its names the package exports
__all__ = [
    "AsyncClient",
    "Client",
    "Node",
    "__version__",
    "const",
    "from_graph",
    "input",
    "to_graph",
    *exceptions.__all__,
    *functions.__all__,
    *results.__all__,
]
