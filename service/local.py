"""Graph files run locally by the command line, through the same pipeline as the API.

A file holds a graph (`{"nodes": [...], "output": ...}`) or a whole request body of the kind
the command runs; options such as --inputs and --wrt are merged into that body, which is then
loaded, bound, hashed, planned and run exactly as service/pipeline.py does for a view. Anything
wrong with the file is a `BadInput`: one line on stderr naming the node or field, exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import marshmallow

import engine
import schemas
from service import pipeline
from service.kinds import KINDS
from service.plans import PlanCache


class BadInput(click.ClickException):
    """A graph file or option that cannot be used: one line on stderr, exit status 2."""

    exit_code = 2

@dataclass
class LocalRun:
    """A graph file loaded through the pipeline and run by the engine."""

    loaded: pipeline.Loaded
    plan: engine.Plan
    result: engine.RunResult

def run_file(
    path: str,
    inputs_text: str | None,
    wrt: Sequence[str],
    batch_path: str | None = None,
    reduce: str | None = None,
) -> LocalRun:
    """Load and run a graph file as the API's /v1/gradients would; BadInput for anything
    wrong. `batch_path` names a JSON file of batched input values (the request's `batch`)."""
    context = local_context()
    batch = None if batch_path is None else read_batch(batch_path)
    with reported_as_bad_input(path):
        loaded = load_file("gradients", path, inputs_text, wrt=ids_option(wrt) or None,
                           batch=batch, reduce=reduce)
        plan = pipeline.plan_of(loaded, context)
        result = pipeline.run(loaded, plan, context, forward_only=False)
    return LocalRun(loaded, plan, result)


def compute_file(
    kind: str, path: str, inputs_text: str | None,
    context: pipeline.ComputeContext | None = None, **fields: object,
) -> tuple:
    """(the loaded request, the answer of `kind`'s compute) for a graph file, `fields` (None:
    left out) merged into its body; BadInput for anything wrong."""
    with reported_as_bad_input(path):
        loaded = load_file(kind, path, inputs_text, **fields)
        return loaded, KINDS[kind].compute(loaded, context or local_context())


def load_file(kind: str, path: str, inputs_text: str | None, **fields: object) -> pipeline.Loaded:
    """A graph file loaded as a request of `kind` (raises the pipeline's errors)."""
    body = request_body(path, inputs_text, fields)
    return pipeline.load(kind, body, pipeline.RequestLimits())


@contextmanager
def reported_as_bad_input(path: str) -> Iterator[None]:
    """Field errors and graph faults as one BadInput line naming the file."""
    try:
        yield
    except marshmallow.ValidationError as error:
        raise BadInput(f"{path}: {first_field_error(error.messages)}") from None
    except engine.EngineError as error:
        where = f"node '{error.node}': " if error.node is not None else ""
        raise BadInput(f"{path}: {where}{error.message} ({error.code})") from None


def ids_option(values: Sequence[str]) -> list[str]:
    """Node ids from a repeatable, comma-separated option."""
    return [name.strip() for item in values for name in item.split(",") if name.strip()]


def local_context() -> pipeline.ComputeContext:
    """A local run's context: the engine's default limits, no deadline, a one-plan cache."""
    plans = PlanCache(size=1, max_nodes=sys.maxsize, limits=engine.Limits())
    return pipeline.ComputeContext(plans=plans, limits=pipeline.RequestLimits())


def request_body(
    path: str, inputs_text: str | None, fields: Mapping[str, object]
) -> dict[str, Any]:
    """The request body a graph file and the command's options describe."""
    data = read_json(path, path)
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a JSON object (a graph or a request body)")
    body = dict(data) if "graph" in data else {"graph": data}
    if inputs_text is not None:
        if inputs_text.startswith("@"):
            inputs = read_json(inputs_text[1:], f"--inputs {inputs_text}")
        else:
            inputs = parse_json_text(inputs_text.encode("utf-8"), "--inputs")
        if not isinstance(inputs, dict):
            raise BadInput('--inputs: expected a JSON object of input values, e.g. {"x": 3}')
        given = body.get("inputs")
        body["inputs"] = {**(given if isinstance(given, dict) else {}), **inputs}
    body.update({name: value for name, value in fields.items() if value is not None})
    return body


def read_batch(path: str) -> dict:
    """A --batch file: a JSON object from input ids to arrays with a leading batch axis."""
    batch = read_json(path, f"--batch {path}")
    if not isinstance(batch, dict):
        raise BadInput(f'--batch {path}: expected a JSON object of batched inputs, e.g. '
                       '{"x": [1, 2, 3]}')
    return batch


def read_json(path: str, label: str) -> object:
    try:
        raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{label}: no such file") from None
    except OSError as error:
        raise BadInput(f"{label}: cannot read: {error.strerror or error}") from None
    return parse_json_text(raw, label)


def parse_json_text(raw: bytes, label: str) -> object:
    try:
        return schemas.parse_json(raw)
    except schemas.BadJson as error:
        detail = " ".join(str(error).split()).removeprefix("the body is not valid JSON: ")
        raise BadInput(f"{label}: not valid JSON: {detail}") from None


def first_field_error(messages: object) -> str:
    """The first of marshmallow's nested field errors as `field.path: message`, one line."""
    problems = list(field_errors(messages))
    if not problems:
        return "invalid request"
    path, message = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{path or 'body'}: {message}{more}"


def field_errors(messages: object) -> Iterable[tuple[str, str]]:
    stack: list[tuple[str, object]] = [("", messages)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in reversed(list(item.items())):
                stack.append((f"{path}.{key}" if path else str(key), value))
        elif isinstance(item, list) and item and all(isinstance(m, str) for m in item):
            yield path, " ".join(" ".join(item).split())
        elif isinstance(item, list):
            for value in reversed(item):
                stack.append((path, value))
        else:
            yield path, " ".join(str(item).split())
