"""The /docs page: the OpenAPI document rendered as plain HTML on the server.

No script and no CDN (deployments are often offline): the document's description (markdown,
with the one Errors section), each path and method with its summary, request body, responses
and examples, the op catalog as a table, then every schema as a table of its properties,
linked by $ref.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import partial
from html import escape
from typing import Any

from service.site.markdown import blocks, inline

# An enum longer than this is not listed inline (the op names: the catalog lists them).
ENUM_LISTED = 12

HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options")

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
code, .path { font-family: ui-monospace, monospace; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.5rem; }
.operation { border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; margin: 1rem 0; }
.method { display: inline-block; min-width: 4rem; font-weight: bold; text-transform: uppercase; }
.get { color: #1d6fb8; } .post { color: #2a8a3a; } .delete { color: #b8321d; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #eee;
         vertical-align: top; }
.required { color: #b8321d; font-size: .8rem; }
nav li { list-style: none; }
.links { float: right; font-size: .9rem; margin-top: .6rem; }
pre.example { background: #f6f6f3; border: 1px solid #e4e2dc; border-radius: 6px;
              padding: .5rem .7rem; font-size: .8rem; overflow-x: auto; max-height: 22rem; }
details > summary { cursor: pointer; color: #555; font-size: .9rem; }
@media (max-width: 40rem) {
  /* a phone: a wide table scrolls inside its own box, never the page; a shadow shows the side
     with more to see (the white covers scroll with the table and hide it at the edge) */
  table { display: block; overflow-x: auto;
    background:
      linear-gradient(to right, #fff 50%, #fff0) left / 28px 100% no-repeat local,
      linear-gradient(to left, #fff 50%, #fff0) right / 28px 100% no-repeat local,
      radial-gradient(farthest-side at 0 50%, #23262b47, #0000) left / 14px 100% no-repeat,
      radial-gradient(farthest-side at 100% 50%, #23262b47, #0000) right / 14px 100% no-repeat,
      #fff; }
  /* a sentence keeps a readable measure: the table scrolls rather than stack it a word a line */
  td.prose, td:last-child { min-width: 11rem; }
  body { margin-top: 1rem; }
  .links { float: none; margin: 0; }
}
"""


def render_docs_page(spec: dict[str, Any], ops: Sequence[Mapping[str, Any]] = ()) -> str:
    """A self-contained HTML page describing `spec` (an OpenAPI 3 document as a dict) and the
    op catalog `ops` (as GET /v1/ops lists it)."""
    info = spec.get("info", {})
    title = f"{info.get('title', 'API')} {info.get('version', '')}".strip()
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # without it a phone lays the page out 980 px wide and shrinks it to unreadable
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="static/favicon.svg" type="image/svg+xml">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        '<p class="links"><a href="./">Playground</a> · <a href="openapi.json">openapi.json</a>'
        "</p>",
        f"<h1>{escape(title)}</h1>",
    ]
    if info.get("description"):
        parts.append(blocks(info["description"]))
    operations = list(_operations(spec.get("paths", {})))
    parts.append("<nav><h2>Endpoints</h2><ul>")
    for path, method, _ in operations:
        parts.append(
            f'<li><a href="#{_anchor(method, path)}"><span class="method {method}">{method}</span>'
            f' <span class="path">{escape(path)}</span></a></li>'
        )
    if ops:
        parts.append('<li><a href="#ops">The op catalog</a></li>')
    parts.append("</ul></nav>")
    for path, method, operation in operations:
        parts.append(_render_operation(spec, path, method, operation))
    if ops:
        parts.append(_render_ops(ops))
    schemas = spec.get("components", {}).get("schemas", {})
    if schemas:
        parts.append("<h2>Schemas</h2>")
        for name, schema in sorted(schemas.items()):
            parts.append(_render_schema(name, schema))
    parts.append("</body></html>")
    return "\n".join(parts)


def _render_ops(ops: Sequence[Mapping[str, Any]]) -> str:
    parts = ['<h2 id="ops">The op catalog</h2>',
             "<p>What a node's <code>op</code> may be (GET <code>/v1/ops</code> lists the same "
             "table as JSON).</p>",
             "<table><tr><th>op</th><th>inputs</th><th>attrs</th><th>what it computes</th></tr>"]
    for op in ops:
        attrs = "; ".join(_attr_text(attr) for attr in op.get("attrs", ()))
        parts.append(
            f"<tr><td><code>{escape(str(op['name']))}</code></td>"
            f"<td>{escape(str(op.get('arity', '')))}</td><td>{attrs}</td>"
            f'<td class="prose">{inline(str(op.get("description", "")))}</td></tr>'
        )
    parts.append("</table>")
    return "\n".join(parts)


def _attr_text(attr: Mapping[str, Any]) -> str:
    text = f"<code>{escape(str(attr['name']))}</code> ({escape(str(attr.get('type', '')))}"
    if attr.get("required"):
        return text + ")"
    return text + f", default <code>{escape(json.dumps(attr.get('default')))}</code>)"


def _operations(paths: dict[str, Any]):
    for path, item in paths.items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def _anchor(method: str, path: str) -> str:
    slug = "".join(ch if ch.isalnum() else "-" for ch in path).strip("-")
    return escape(f"{method}-{slug}")


def _resolve(spec: dict[str, Any], item: Any) -> Any:
    """Follow a local "$ref" ("#/components/responses/NotFound") to what it names."""
    while isinstance(item, dict) and str(item.get("$ref", "")).startswith("#/"):
        target: Any = spec
        for part in item["$ref"][2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        item = target
    return item


def _render_operation(
    spec: dict[str, Any], path: str, method: str, operation: dict[str, Any]
) -> str:
    parts = [
        f'<section class="operation" id="{_anchor(method, path)}">',
        f'<h3><span class="method {method}">{method}</span> <span class="path">{escape(path)}'
        "</span></h3>",
    ]
    for key in ("summary", "description"):
        if operation.get(key):
            parts.append(f"<p>{inline(str(operation[key]))}</p>")
    parameters = operation.get("parameters") or []
    if parameters:
        parts.append("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th></tr>")
        for parameter in map(partial(_resolve, spec), parameters):
            parts.append(
                f"<tr><td><code>{escape(str(parameter.get('name', '')))}</code></td>"
                f"<td>{escape(str(parameter.get('in', '')))}</td>"
                f"<td>{_type_text(parameter.get('schema', {}))}</td></tr>"
            )
        parts.append("</table>")
    body = operation.get("requestBody")
    if body:
        parts.append("<h4>Request body</h4>" + _content_text(body.get("content", {})))
        parts.append(_examples_text(body.get("content", {}), "Example request"))
    responses = operation.get("responses") or {}
    if responses:
        parts.append("<h4>Responses</h4><table><tr><th>status</th><th>meaning</th><th>body</th></tr>")
        for status, response in sorted(responses.items()):
            response = _resolve(spec, response)
            parts.append(
                f"<tr><td>{escape(str(status))}</td>"
                f'<td class="prose">{inline(str(response.get("description", "")))}</td>'
                f"<td>{_content_text(response.get('content', {}))}</td></tr>"
            )
        parts.append("</table>")
        ok = _resolve(spec, responses.get("200", {}))
        parts.append(_examples_text(ok.get("content", {}), "Example response"))
    parts.append("</section>")
    return "\n".join(parts)


def _content_text(content: dict[str, Any]) -> str:
    return "<br>".join(
        f"<code>{escape(media_type)}</code> {_type_text(media.get('schema', {}))}"
        for media_type, media in content.items()
    )


def _examples_text(content: dict[str, Any], label: str) -> str:
    """A collapsible example per media type that has one."""
    parts = []
    for media_type, media in content.items():
        if "example" not in media:
            continue
        example = media["example"]
        text = example if isinstance(example, str) else json.dumps(example, indent=2)
        parts.append(
            f"<details><summary>{escape(label)} (<code>{escape(media_type)}</code>)</summary>"
            f'<pre class="example">{escape(text)}</pre></details>'
        )
    return "".join(parts)


def _render_schema(name: str, schema: dict[str, Any]) -> str:
    parts = [f'<section id="schema-{escape(name)}"><h3><code>{escape(name)}</code></h3>']
    if schema.get("description"):
        parts.append(f"<p>{inline(str(schema['description']))}</p>")
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    if properties:
        parts.append("<table><tr><th>field</th><th>type</th><th>description</th></tr>")
        for field, field_schema in properties.items():
            flag = ' <span class="required">required</span>' if field in required else ""
            parts.append(
                f"<tr><td><code>{escape(field)}</code>{flag}</td>"
                f"<td>{_type_text(field_schema)}</td>"
                f'<td class="prose">{inline(str(field_schema.get("description", "")))}</td></tr>'
            )
        parts.append("</table>")
    else:
        parts.append(f"<p>{_type_text(schema)}</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _type_text(schema: dict[str, Any]) -> str:
    """A one-line description of a schema: its type, $ref link, items, choices, enum."""
    if not isinstance(schema, dict):
        return ""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}"><code>{escape(name)}</code></a>'
    for combinator, joiner in (("oneOf", " | "), ("anyOf", " | "), ("allOf", " & ")):
        if combinator in schema:
            return joiner.join(_type_text(choice) for choice in schema[combinator])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " | ".join(str(k) for k in kind)
    text = escape(str(kind))
    if kind == "array" and "items" in schema:
        text = f"array of {_type_text(schema['items'])}"
    elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        text = f"object of {_type_text(schema['additionalProperties'])}"
    if "enum" in schema and len(schema["enum"]) > ENUM_LISTED:
        text += f' (one of {len(schema["enum"])}: see <a href="#ops">the op catalog</a>)'
    elif "enum" in schema:
        text += " (" + ", ".join(f"<code>{escape(str(v))}</code>" for v in schema["enum"]) + ")"
    if "default" in schema:
        text += f", default <code>{escape(json.dumps(schema['default']))}</code>"
    return text
