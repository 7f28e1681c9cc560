"""The HTTP endpoints: the /v1 API (views.py), registered graphs (graphs.py) and the operational
probes (probes.py).

Views stay thin: read the body, run it through service/pipeline.py, consult the store, answer.
"""

from service.api.graphs import blueprint as graphs_blueprint
from service.api.probes import blueprint as probes_blueprint
from service.api.views import blueprint as api_blueprint

__all__ = ["api_blueprint", "graphs_blueprint", "probes_blueprint"]
