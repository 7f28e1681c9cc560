"""The `chainrule` command line: serve the API, or run graphs, list ops and draw circuits locally.

    chainrule serve [--host H] [--port P] [--workers N]     gunicorn with service/gunicorn.conf.py
    chainrule eval GRAPH.json [--inputs JSON] [--seed JSON] [--wrt ids]
                   [--batch DATA.json [--reduce R]] [--json]
    chainrule gradcheck GRAPH.json [--inputs JSON] [--check ids] [--eps E] [--json]
    chainrule ops [--json]
    chainrule diagram GRAPH.json -o circuit.svg [--format svg|dot|png] [--seed JSON]
    chainrule optimize GRAPH.json --params a,b --steps 1000 [--optimizer adam] [--lr 0.01]
                      [--goal maximize] [--batch DATA.json [--batch-size K]] [--url URL] [--json]
    chainrule --version

`eval`, `gradcheck`, `diagram` and `optimize` need no server: they load the file through the
same pipeline and request kinds as the API (service/local.py) and run the engine in-process;
`optimize --url` sends the run to a service instead and follows its event stream. A file that
cannot be used (missing, not JSON, an invalid graph) is reported in one line on stderr naming
the node or field, with exit status 2; a gradient check that fails exits with status 1.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np

import engine
from schemas.catalog import package_version
from service.config import ConfigError, load_config
from service.gunicorn_run import gunicorn_command, run_forwarding_signals
from service.kinds import KINDS
from service.local import (
    BadInput,
    compute_file,
    ids_option,
    local_context,
    read_batch,
    request_body,
    run_file,
)
from service.remote import post_streamed
from service.summaries import TABLE, summarize

SUFFIX_FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), "-V", "--version", prog_name="chainrule",
                      message="%(prog)s %(version)s")
def main() -> None:
    """chainrule: gradients as a service."""


# -------------------------------------------------------------------- serve


@main.command()
@click.option("--host", help="Address to bind (HOST; default 127.0.0.1, loopback only).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to bind (PORT; default 8000).")
@click.option(
    "--workers", type=click.IntRange(min=1), help="gunicorn worker processes (WEB_CONCURRENCY)."
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the API under gunicorn (the embedded store in CACHE_DIR unless REDIS_URL is set).

    With several workers and no PROMETHEUS_MULTIPROC_DIR, the workers share a temporary metrics
    directory (removed on exit), so that /metrics counts every worker's requests.
    """
    env = dict(os.environ)
    for name, value in (("HOST", host), ("PORT", port), ("WEB_CONCURRENCY", workers)):
        if value is not None:
            env[name] = str(value)
    try:
        settings = load_config(environ=env)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    argv = gunicorn_command()
    sys.stdout.flush()
    sys.stderr.flush()
    if settings["PROMETHEUS_MULTIPROC_DIR"] or settings["WEB_CONCURRENCY"] == 1:
        os.execve(sys.executable, argv, env)  # gunicorn takes this process's place
    else:
        with tempfile.TemporaryDirectory(prefix="chainrule-metrics-") as metrics_dir:
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            status = run_forwarding_signals(argv, env)
        ctx.exit(status)


# -------------------------------------------------------------------- eval


GRAPH_ARGUMENT = click.argument("graph_file", metavar="GRAPH.json", type=click.Path(dir_okay=False))
INPUTS_OPTION = click.option(
    "--inputs",
    "inputs_text",
    metavar="JSON",
    help='Input values as a JSON object, e.g. \'{"x": 3}\', or @FILE to read one.',
)
SEED_OPTION = click.option(
    "--seed",
    "seed_text",
    metavar="JSON",
    help="The upstream gradient dL/d(output), the output's shape (default ones), as JSON or "
    "@FILE.",
)
WRT_OPTION = click.option(
    "--wrt",
    "wrt",
    multiple=True,
    metavar="IDS",
    help="Only report these node ids (comma-separated; may be repeated).",
)


@main.command("eval")
@GRAPH_ARGUMENT
@INPUTS_OPTION
@SEED_OPTION
@WRT_OPTION
@click.option(
    "--batch", "batch_file", metavar="DATA.json", type=click.Path(dir_okay=False),
    help='Batched inputs: a JSON object of arrays whose leading axis holds the points, e.g. '
    '{"x": [1, 2, 3]}; one vectorised pass over every point.',
)
@click.option(
    "--reduce", type=click.Choice(["none", "sum", "mean"]),
    help="With --batch: per-point gradients everywhere (none, the default), or shared nodes' "
    "summed / averaged over the points.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the API's response JSON instead.")
def eval_graph(
    graph_file: str, inputs_text: str | None, seed_text: str | None, wrt: tuple[str, ...],
    batch_file: str | None, reduce: str | None, as_json: bool,
) -> None:
    """Run GRAPH.json forward and backward locally and print each node's value and gradient.

    GRAPH.json holds a graph ({"nodes": [...], "output": ...}) or a whole /v1/gradients request
    body ({"graph": ..., "inputs": ..., "seed": ...}). With --batch, batched nodes show
    (B, ...) values and gradients.
    """
    if reduce is not None and batch_file is None:
        raise click.UsageError("--reduce needs --batch")
    run = run_file(graph_file, inputs_text, wrt, batch_file, reduce, seed_text)
    if as_json:
        body = KINDS["gradients"].dump(run.result, run.loaded)
        click.echo(body.decode("utf-8"))
        return
    result = run.result
    click.echo(f"output {result.output} = {summarize(result.value, TABLE)}")
    rows = [
        (node_id, run.plan.op_of(node_id).name, summarize(result.values[node_id], TABLE),
         summarize(result.grads[node_id], TABLE) if result.grads is not None else "")
        for node_id in result.order
    ]
    click.echo(table(("node", "op", "value", "grad"), rows))


# -------------------------------------------------------------------- gradcheck


@main.command("gradcheck")
@GRAPH_ARGUMENT
@INPUTS_OPTION
@click.option(
    "--check", "check", multiple=True, metavar="IDS",
    help="Input ids to check (comma-separated; may be repeated; default every input).",
)
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), help="Finite-difference step.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's response JSON instead.")
def gradient_check(
    graph_file: str, inputs_text: str | None, check: tuple[str, ...], eps: float | None,
    as_json: bool,
) -> None:
    """Compare GRAPH.json's backward pass with centred finite differences, locally.

    Prints one row per checked input; exits with status 1 when a verdict is "wrong".
    """
    loaded, checks = compute_file(
        "gradcheck", graph_file, inputs_text, check=ids_option(check) or None, eps=eps
    )
    passed = all(result.verdict != "wrong" for result in checks.values())
    if as_json:
        click.echo(KINDS["gradcheck"].dump(checks, loaded).decode("utf-8"))
    else:
        rows = [
            (name, checks[name].verdict, f"{float(checks[name].max_rel_error):.3g}",
             summarize(checks[name].analytic, TABLE), summarize(checks[name].numeric, TABLE))
            for name in sorted(checks)
        ]
        click.echo(table(("input", "verdict", "max_rel_error", "analytic", "numeric"), rows))
        for name in sorted(checks):  # why a verdict means nothing, where the check can tell
            if checks[name].details is not None:
                click.echo(f"{name}: {checks[name].details['reason']}")
    if not passed:
        raise SystemExit(1)


# -------------------------------------------------------------------- ops


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON, as GET /v1/ops.")
def ops(as_json: bool) -> None:
    """List the op catalog: each op's inputs, attrs and what it computes."""
    catalog = engine.describe_ops()
    if as_json:
        click.echo(json.dumps({"ops": catalog}, indent=2))
        return
    # a short row per op, its attrs and description wrapped beneath, indented: the catalog
    # reads in a terminal of any width (one row of all five columns ran to 280 characters)
    rows = table(("op", "inputs", "symbol"),
                 [(op["name"], op["arity"], op["symbol"]) for op in catalog]).splitlines()
    width = min(shutil.get_terminal_size().columns, 100)
    click.echo("\n".join(rows[:2]))
    for row, op in zip(rows[2:], catalog, strict=True):
        click.echo(row)
        attrs = attrs_text(op["attrs"])
        for text in ([f"attrs: {attrs}"] if attrs else []) + [op["description"]]:
            click.echo(textwrap.fill(text, width, initial_indent="    ",
                                     subsequent_indent="      "))


def attrs_text(attrs: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for attr in attrs:
        if attr["required"]:
            parts.append(f"{attr['name']} ({attr['type']})")
        else:
            parts.append(f"{attr['name']}={json.dumps(attr['default'])}")
    return ", ".join(parts)


# -------------------------------------------------------------------- diagram


@main.command()
@GRAPH_ARGUMENT
@click.option(
    "-o", "--output", "output_path", required=True, metavar="FILE",
    help="Where to write the image ('-' for stdout).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["svg", "dot", "png"]),
    help="Image format (default: from the output file's suffix: .svg, .png, .dot or .gv; "
    "svg for stdout or a file without one).",
)
@INPUTS_OPTION
@SEED_OPTION
@click.option("--timeout", default=10.0, show_default=True, help="Seconds allowed for Graphviz.")
def diagram(
    graph_file: str,
    output_path: str,
    fmt: str | None,
    inputs_text: str | None,
    seed_text: str | None,
    timeout: float,
) -> None:
    """Draw GRAPH.json's circuit with forward values (green) and gradients (red), locally.

    Every wire is drawn with its own share of the gradient, so the command takes no --wrt.
    """
    from service import diagram as circuit  # Graphviz and the service package only here

    fmt = image_format(output_path, fmt)
    run = run_file(graph_file, inputs_text, (), seed_text=seed_text)
    try:
        image = circuit.draw_circuit(run.plan, run.result, fmt, timeout)
    except (circuit.DiagramError, circuit.DiagramTimeout) as error:
        raise click.ClickException(str(error)) from None
    if output_path == "-":
        click.echo(image, nl=False)
        return
    try:
        Path(output_path).write_bytes(image)
    except OSError as error:
        raise BadInput(f"{output_path}: cannot write: {error.strerror or error}") from None
    click.echo(f"wrote {output_path} ({fmt}, {len(run.plan.ids)} nodes)", err=True)


def image_format(output_path: str, fmt: str | None) -> str:
    """The format to write: --format, else the file's suffix. Without --format, a suffix that
    names no format we write (out.jpg) is refused rather than written with the wrong bytes; so
    is a --format that another known suffix contradicts."""
    suffix = Path(output_path).suffix.lower() if output_path != "-" else ""
    known = ", ".join(SUFFIX_FORMATS)
    if fmt is None and suffix and suffix not in SUFFIX_FORMATS:
        raise click.UsageError(
            f"cannot tell a diagram format from '{suffix}': name the file with one of {known}, "
            "or give --format"
        )
    implied = SUFFIX_FORMATS.get(suffix)
    if fmt is not None and implied is not None and implied != fmt:
        raise click.UsageError(f"--format {fmt} does not match the file suffix '{suffix}'")
    return fmt or implied or "svg"


# -------------------------------------------------------------------- optimize


@main.command("optimize")
@GRAPH_ARGUMENT
@click.option("--params", "params", multiple=True, metavar="IDS",
              help="Input ids to optimise (comma-separated; may be repeated).")
@click.option("--steps", type=click.IntRange(min=1), help="Updates to run (default 100).")
@click.option("--optimizer", "optimizer_name", type=click.Choice(["sgd", "adam"]),
              help="The update rule (default adam).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Learning rate (default 0.01).")
@click.option("--goal", type=click.Choice(["minimize", "maximize"]), help="Default minimize.")
@click.option("--record-every", type=click.IntRange(min=1), help="Trajectory entry spacing.")
@INPUTS_OPTION
@click.option("--batch", "batch_file", metavar="DATA.json", type=click.Path(dir_okay=False),
              help="A data set of batched inputs: each step minimises the mean over its points.")
@click.option("--batch-size", type=click.IntRange(min=1), help="With --batch: mini-batches.")
@click.option("--url", metavar="URL", help="Run on this chainrule service instead of locally.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's response JSON instead.")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: when stderr is a terminal).")
def optimize_graph(
    graph_file: str, inputs_text: str | None, url: str | None, as_json: bool,
    progress: bool | None, **options: Any,
) -> None:
    """Run SGD or Adam on GRAPH.json's input nodes (--params) for --steps updates.

    GRAPH.json holds a graph or a whole /v1/optimize request body; the options override its
    fields. Prints the final params and value, and why the run stopped.
    """
    from tqdm import tqdm

    body = optimize_body(graph_file, inputs_text, **options)
    with tqdm(total=body["steps"], unit="step", disable=_no_bar(progress)) as bar:
        def on_step(entry: dict) -> None:
            bar.update(entry["step"] - bar.n)
            bar.set_postfix(value=f"{float(entry['value']):.6g}", refresh=False)

        answer = (post_streamed(url, "optimize", body, on_step) if url
                  else local_optimize(graph_file, body, on_step))
    if as_json:
        click.echo(json.dumps(answer))
        return
    steps = answer["steps"]
    click.echo(f"stopped: {answer['stopped']} after {steps} step{'' if steps == 1 else 's'}; "
               f"value {answer['value']}")
    rows = [(name, summarize(np.asarray(value, dtype=float) if isinstance(value, list)
                             else value, TABLE)) for name, value in answer["params"].items()]
    click.echo(table(("param", "value"), rows))


def optimize_body(
    graph_file: str, inputs_text: str | None, params: tuple[str, ...], steps: int | None,
    optimizer_name: str | None, lr: float | None, goal: str | None, record_every: int | None,
    batch_file: str | None, batch_size: int | None,
) -> dict[str, Any]:
    """The /v1/optimize body of a graph file and the command's options (over the file's)."""
    body = request_body(graph_file, inputs_text, {
        "params": ids_option(params) or None, "goal": goal, "record_every": record_every,
        "batch": None if batch_file is None else read_batch(batch_file),
        "batch_size": batch_size})
    optimizer = body.get("optimizer") if isinstance(body.get("optimizer"), dict) else {}
    body["optimizer"] = {**optimizer, "name": optimizer_name or optimizer.get("name", "adam"),
                         "lr": lr or optimizer.get("lr", 0.01)}
    body["steps"] = steps or body.get("steps", 100)
    if not body.get("params"):
        raise BadInput(f"{graph_file}: name the input nodes to optimise with --params")
    if body.get("batch_size") is not None and not body.get("batch"):
        raise BadInput("--batch-size draws mini-batches from a batch: give --batch DATA.json")
    return body


def local_optimize(graph_file: str, body: dict[str, Any], on_step) -> dict[str, Any]:
    """The run in-process, through the same pipeline and kind as the API."""
    context = local_context()
    context.on_record = on_step
    loaded, result = compute_file("optimize", graph_file, None, context=context, **body)
    return json.loads(KINDS["optimize"].dump(result, loaded))


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress  # tqdm: None disables off a terminal


# -------------------------------------------------------------------- text output


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns under a header and a rule; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
        return "  ".join([*padded, str(cells[-1])]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


if __name__ == "__main__":
    main()
