"""A client that is not ours: generated from the app's /openapi.json by openapi-python-client,
it drives the real app over real HTTP on loopback, and its models parse every answer.

The generator runs once for the module, with --fail-on-warning: a construct it cannot read
in the document fails here. Its client is built with raise_on_unexpected_status, so a status
the document does not list for an operation fails too, and each answer is checked through
the fields of the model the document names for it, errors included.
"""

from __future__ import annotations

import base64
import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import httpx
import numpy as np
import pytest

from service import create_app
from service.kinds import openapi_endpoints
from tests import circuits
from tests.loopback import served_on_loopback

PACKAGE = "chainrule_api"
CIRCUIT = circuits.CIRCUIT
AT = {"x": -2, "y": 5, "z": -4}
# README's batch: p = w x x with w = 2 at x = 1, 2, 3
BATCH_GRAPH = {"nodes": [{"id": "x", "op": "input"}, {"id": "w", "op": "input", "value": 2},
                         {"id": "p", "op": "mul", "inputs": ["w", "x", "x"]}], "output": "p"}
# README's optimisation: f = (a + b) c at 5, -3, -2
SEEDS_GRAPH = {"nodes": [
    {"id": "a", "op": "input", "value": 5}, {"id": "b", "op": "input", "value": -3},
    {"id": "c", "op": "input", "value": -2},
    {"id": "s", "op": "add", "inputs": ["a", "b"]},
    {"id": "f", "op": "mul", "inputs": ["s", "c"]}], "output": "f"}
LOG_GRAPH = {"nodes": [{"id": "x", "op": "input"}, {"id": "f", "op": "log", "inputs": ["x"]}],
             "output": "f"}
MAX_ELEMENTS = 1000
FIXED_OPERATIONS = {"getResult": "results", "listOps": "catalog", "liveness": "probes",
                    "readiness": "probes", "metrics": "probes", "playground": "pages",
                    "documentation": "pages", "openapiDocument": "pages",
                    "registerGraph": "graphs", "getGraph": "graphs"}


def _snake(operation_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


@pytest.fixture(scope="module")
def make_server(tmp_path_factory) -> Iterator:
    """make_server(config): a served app over an embedded store of its own; its URL."""
    servers = []

    def make(config: dict | None = None) -> str:
        app = create_app({"TESTING": True, "REDIS_URL": None, "PROMETHEUS_MULTIPROC_DIR": None,
                          "CACHE_DIR": str(tmp_path_factory.mktemp("genclient-cache")),
                          **(config or {})})
        served = served_on_loopback(app)
        servers.append((app, served))
        return served.__enter__()

    yield make
    for app, served in servers:
        served.__exit__(None, None, None)
        app.extensions["chainrule"].close()


@pytest.fixture(scope="module")
def url(make_server) -> str:
    return make_server({"MAX_ELEMENTS": MAX_ELEMENTS})


@pytest.fixture(scope="module")
def document(url) -> dict:
    return httpx.get(f"{url}/openapi.json").json()


@pytest.fixture(scope="module")
def api(url, tmp_path_factory) -> Iterator[ModuleType]:
    """The package openapi-python-client generates from the served document, imported."""
    work = tmp_path_factory.mktemp("genclient")
    config = work / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter runs on the generated code
    generated = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--url",
         f"{url}/openapi.json", "--output-path", str(work / PACKAGE), "--meta", "none",
         "--config", str(config), "--fail-on-warning"],
        capture_output=True, text=True, timeout=120,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def call(api: ModuleType, tag: str, operation: str) -> ModuleType:
    return importlib.import_module(f"{api.__name__}.api.{tag}.{operation}")


@pytest.fixture(scope="module")
def models(api) -> ModuleType:
    return importlib.import_module(f"{api.__name__}.models")


@pytest.fixture(scope="module")
def client(api, url):
    return api.Client(base_url=url, raise_on_unexpected_status=True)


def test_every_operation_is_a_call_in_the_module_of_its_tag(api, document):
    expected = dict(FIXED_OPERATIONS)
    for endpoint in openapi_endpoints():
        expected[endpoint.kind] = "compute"
        expected[f"{endpoint.kind}OnGraph"] = "graphs"
    named = {operation["operationId"]: operation["tags"]
             for item in document["paths"].values()
             for method, operation in item.items() if method != "parameters"}
    assert named == {operation_id: [tag] for operation_id, tag in expected.items()}
    for operation_id, tag in expected.items():
        assert callable(call(api, tag, _snake(operation_id)).sync_detailed), operation_id


def test_gradients_parse_into_the_response_model_and_read_back_by_hash(api, models, client):
    body = models.GradientsRequest.from_dict({"graph": CIRCUIT, "inputs": AT})
    answer = call(api, "compute", "gradients").sync_detailed(
        client=client, body=body, x_request_id="genclient-1")
    assert answer.status_code == 200 and answer.headers["X-Cache"] == "miss"
    assert answer.headers["X-Request-ID"] == "genclient-1"
    result = answer.parsed
    assert isinstance(result, models.GradientsResponse)
    assert (result.output, result.value, result.cached) == ("f", -12.0, False)
    grads = {node: result.nodes[node].grad for node in ("x", "y", "z", "q", "f")}
    assert grads == {"x": -4.0, "y": -4.0, "z": 3.0, "q": -4.0, "f": 1.0}
    assert result.nodes["q"].value == 3.0
    stored = call(api, "results", "get_result").sync_detailed(result.hash_, client=client)
    assert isinstance(stored.parsed, models.GradientsResponse)
    assert stored.parsed.cached is True and stored.parsed.nodes["x"].grad == -4.0
    held = call(api, "results", "get_result").sync_detailed(
        result.hash_, client=client, if_none_match=f'"{result.hash_}"')
    assert held.status_code == 304 and held.parsed is None


def test_a_batch_with_reduce_parses_per_point_and_shared_gradients(api, models, client):
    body = models.GradientsRequest.from_dict(
        {"graph": BATCH_GRAPH, "batch": {"x": [1, 2, 3]}, "reduce": "sum"})
    assert body.reduce == models.Reduce.SUM and isinstance(body.batch, models.Batch)
    result = call(api, "compute", "gradients").sync(client=client, body=body)
    assert result.nodes["x"].grad == [4.0, 8.0, 12.0]
    assert result.nodes["w"].grad == 14.0
    assert result.value == [2.0, 8.0, 18.0]


def test_b64_tensors_parse_as_encoded_tensors(api, models, client):
    body = models.EvaluateRequest.from_dict(
        {"graph": CIRCUIT, "inputs": {**AT, "x": [1, 2]}, "encoding": "b64"})
    result = call(api, "compute", "evaluate").sync(client=client, body=body)
    assert isinstance(result, models.EvaluateResponse)
    value = result.nodes["f"].value
    assert isinstance(value, models.EncodedTensor)
    assert value.dtype == models.EncodedTensorDtype.FLOAT64 and value.shape == [2]
    assert np.frombuffer(base64.b64decode(value.b64), "<f8").tolist() == [-24.0, -28.0]
    assert result.nodes["y"].value == 5.0  # a 0-d tensor stays a number


def test_non_finite_values_parse_as_the_named_enum(api, models, client):
    body = models.GradientsRequest.from_dict(
        {"graph": LOG_GRAPH, "inputs": {"x": "Infinity"}, "allow_nonfinite": True})
    result = call(api, "compute", "gradients").sync(client=client, body=body)
    assert result.nodes["x"].value == models.NonFiniteNumber.INFINITY
    assert result.value == models.NonFiniteNumber.INFINITY and result.nodes["x"].grad == 0.0
    body = models.EvaluateRequest.from_dict({"graph": LOG_GRAPH, "inputs": {"x": 0}})
    result = call(api, "compute", "evaluate").sync(client=client, body=body)
    assert result.value == models.NonFiniteNumber.NEGATIVE_INFINITY


def test_jacobian_and_gradcheck_parse(api, models, client):
    body = models.JacobianRequest.from_dict({"graph": CIRCUIT, "inputs": AT, "wrt": ["x", "q"]})
    result = call(api, "compute", "jacobian").sync(client=client, body=body)
    assert isinstance(result, models.JacobianResponse)
    assert result.jacobian.to_dict() == {"x": -4.0, "q": -4.0}
    body = models.GradcheckRequest.from_dict({"graph": CIRCUIT, "inputs": AT})
    result = call(api, "compute", "gradcheck").sync(client=client, body=body)
    assert set(result.checks.additional_properties) == {"x", "y", "z"}
    check = result.checks["z"]
    assert check.verdict == models.CheckVerdict.GOOD and check.max_rel_error < 1e-7
    assert check.analytic == 3.0


def test_optimize_parses_params_trajectory_and_why_it_stopped(api, models, client):
    body = models.OptimizeRequest.from_dict({
        "graph": SEEDS_GRAPH, "params": ["a", "b", "c"], "goal": "maximize",
        "optimizer": {"name": "sgd", "lr": 0.01}, "steps": 1})
    assert body.goal == models.OptimizeRequestGoal.MAXIMIZE
    result = call(api, "compute", "optimize").sync(client=client, body=body)
    assert isinstance(result, models.OptimizeResponse)
    assert result.params.to_dict() == pytest.approx({"a": 4.98, "b": -3.02, "c": -1.98})
    assert result.stopped == models.OptimizeResponseStopped.STEPS
    assert result.value == pytest.approx(-3.8808)
    first = result.trajectory[0]
    assert (first.step, first.value) == (0, -4.0)
    assert first.grad_norm == pytest.approx(3.4641016151377544)
    # built field by field, the model writes every default the document states: the
    # server's own defaults, so the request is the same one, under the same hash
    built = models.OptimizeRequest(
        graph=models.Graph.from_dict(SEEDS_GRAPH), params=["a", "b", "c"],
        goal=models.OptimizeRequestGoal.MAXIMIZE, steps=1,
        optimizer=models.Optimizer(name=models.OptimizerName.SGD, lr=0.01))
    assert {"encoding", "cache", "record_every"} <= set(built.to_dict())
    assert call(api, "compute", "optimize").sync(client=client, body=built).hash_ == result.hash_


def test_diagrams_come_back_as_the_format_asked(api, models, client):
    diagram = call(api, "compute", "diagram")
    body = models.DiagramRequest.from_dict({"graph": CIRCUIT, "inputs": AT, "format": "dot"})
    assert body.format_ == models.DiagramFormat.DOT
    assert diagram.sync(client=client, body=body).startswith("digraph circuit {")
    # one parsed type per response: a PNG is read as the raw bytes of the response
    png = models.DiagramRequest.from_dict({"graph": CIRCUIT, "inputs": AT, "format": "png"})
    answer = diagram.sync_detailed(client=client, body=png)
    assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_registered_graph_answers_as_the_inline_one(api, models, client):
    register = call(api, "graphs", "register_graph")
    body = models.RegisterGraphRequest.from_dict({"graph": SEEDS_GRAPH})
    first = register.sync_detailed(client=client, body=body)
    again = register.sync_detailed(client=client, body=body)
    assert (first.status_code, again.status_code) == (201, 200)
    summary = first.parsed
    assert isinstance(summary, models.GraphSummary) and again.parsed.id == summary.id
    assert (summary.nodes, summary.output) == (5, "f")
    assert summary.inputs.to_dict() == {"a": [], "b": [], "c": []}
    resource = call(api, "graphs", "get_graph").sync(summary.id, client=client)
    assert isinstance(resource, models.GraphResource)
    assert [node.id for node in resource.graph.nodes] == ["a", "b", "c", "f", "s"]
    assert resource.graph.nodes[3].op == models.NodeOp.MUL
    request = {"params": ["a", "b", "c"], "goal": "maximize",
               "optimizer": {"name": "sgd", "lr": 0.01}, "steps": 1}
    on_graph = call(api, "graphs", "optimize_on_graph").sync(
        summary.id, client=client, body=models.RegisteredOptimizeRequest.from_dict(request))
    inline = call(api, "compute", "optimize").sync(
        client=client, body=models.OptimizeRequest.from_dict({"graph": SEEDS_GRAPH, **request}))
    assert on_graph.hash_ == inline.hash_ and on_graph.value == inline.value
    # inline and registered requests share their parts' types
    values = models.RegisteredGradientsRequest.from_dict({"inputs": {"a": 1}, "encoding": "json"})
    assert isinstance(values.inputs, models.Inputs) and values.encoding == models.Encoding.JSON
    gradients = call(api, "graphs", "gradients_on_graph").sync(
        summary.id, client=client, body=values)
    assert gradients.nodes["s"].grad == -2.0 and gradients.nodes["a"].value == 1.0


def test_catalog_and_probes_parse(api, models, client):
    catalog = call(api, "catalog", "list_ops").sync(client=client)
    ops = {op.name: op for op in catalog.ops}
    assert ops["mul"].min_inputs == 2 and ops["mul"].symbol == "*"
    assert "axis" in {attr.name for attr in ops["sum"].attrs}
    assert call(api, "probes", "liveness").sync(client=client).status == "ok"
    ready = call(api, "probes", "readiness").sync(client=client)
    assert (ready.status, ready.cache) == ("ready", "embedded")
    assert "chainrule_http_requests_total" in call(api, "probes", "metrics").sync(client=client)


def _error(answer, status: int, code: str):
    assert answer.status_code == status, answer.content
    assert answer.parsed.error.code == code
    return answer.parsed.error


def test_not_found_parses_as_an_error(api, models, client):
    unknown = "0" * 64
    _error(call(api, "results", "get_result").sync_detailed(unknown, client=client),
           404, "not_found")
    error = _error(call(api, "graphs", "get_graph").sync_detailed(unknown, client=client),
                   404, "not_found")
    assert error.node is None and error.details is None


def test_a_validation_error_parses_with_its_field_details(api, models, client):
    body = models.GradientsRequest.from_dict({"graph": CIRCUIT, "inputs": AT, "seed": "abc"})
    answer = call(api, "compute", "gradients").sync_detailed(client=client, body=body)
    error = _error(answer, 422, "validation_error")
    assert list(error.details.to_dict()) == ["seed"]


def test_graph_faults_and_limits_parse_with_their_node(api, models, client):
    gradients = call(api, "compute", "gradients")
    graph = {"nodes": [{"id": "x", "op": "input"},
                       {"id": "f", "op": "sin", "inputs": ["nope"]}], "output": "f"}
    body = models.GradientsRequest.from_dict({"graph": graph, "inputs": {"x": 1}})
    assert _error(gradients.sync_detailed(client=client, body=body),
                  422, "unknown_node").node == "f"
    ring = {"nodes": [{"id": "a", "op": "sin", "inputs": ["b"]},
                      {"id": "b", "op": "cos", "inputs": ["a"]}], "output": "a"}
    answer = gradients.sync_detailed(
        client=client, body=models.GradientsRequest.from_dict({"graph": ring}))
    assert sorted(_error(answer, 422, "cycle").details["cycle"]) == ["a", "b"]
    big = {"graph": LOG_GRAPH, "inputs": {"x": [1.0] * (MAX_ELEMENTS + 1)}}
    answer = gradients.sync_detailed(client=client, body=models.GradientsRequest.from_dict(big))
    assert _error(answer, 413, "too_large").node == "x"
    # the op enum is closed, so a body with an unknown op goes by hand; its answer parses
    unknown_op = {"graph": {**graph, "nodes": [{"id": "x", "op": "input"},
                                               {"id": "f", "op": "frob", "inputs": ["x"]}]}}
    raw = client.get_httpx_client().post("/v1/gradients", json=unknown_op)
    assert raw.status_code == 422
    assert models.Error.from_dict(raw.json()).error.node == "f"


def test_keys_and_rate_limits_answer_documented_errors(api, models, make_server):
    url = make_server({"API_KEYS": "genclient-key", "RATE_LIMIT": "1/minute"})
    evaluate = call(api, "compute", "evaluate")
    body = models.EvaluateRequest.from_dict({"graph": CIRCUIT, "inputs": AT})
    anonymous = api.Client(base_url=url, raise_on_unexpected_status=True)
    _error(evaluate.sync_detailed(client=anonymous, body=body), 401, "unauthorized")
    keyed = api.AuthenticatedClient(base_url=url, token="genclient-key",
                                    raise_on_unexpected_status=True)
    assert evaluate.sync(client=keyed, body=body).value == -12.0
    limited = _error(evaluate.sync_detailed(client=keyed, body=body), 429, "rate_limited")
    assert limited.details["limit"] == "1 per 1 minute"


def test_every_stored_result_parses_as_the_model_of_its_kind(api, models, client):
    # the results schema is anyOf the response schemas: the generated parse tries each
    requests = {
        "evaluate": {"graph": CIRCUIT, "inputs": AT},
        "jacobian": {"graph": CIRCUIT, "inputs": AT, "wrt": ["x"]},
        "gradcheck": {"graph": CIRCUIT, "inputs": AT},
        "optimize": {"graph": SEEDS_GRAPH, "params": ["a"], "steps": 2,
                     "optimizer": {"name": "adam", "lr": 0.1}},
    }
    get_result = call(api, "results", "get_result")
    for kind, request in requests.items():
        body = getattr(models, f"{kind.capitalize()}Request").from_dict(request)
        posted = call(api, "compute", kind).sync(client=client, body=body)
        stored = get_result.sync(posted.hash_, client=client)
        assert type(stored) is type(posted), kind
        assert stored.cached is True
        assert {**stored.to_dict(), "cached": posted.cached} == posted.to_dict(), kind
