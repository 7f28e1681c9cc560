"""The site blueprint: the playground page, the rendered API docs and the OpenAPI document."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import Blueprint, Response, current_app

from schemas import build_spec
from service.kinds import openapi_endpoints
from service.site.docs import render_docs_page

blueprint = Blueprint("site", __name__)


@cache
def openapi_document() -> dict:
    """The OpenAPI document, built once per process from the schemas that validate requests
    and the table of request kinds."""
    return build_spec(openapi_endpoints())


@cache
def docs_page() -> str:
    return render_docs_page(openapi_document())


@cache
def playground_page(static_folder: str) -> bytes:
    return (Path(static_folder) / "index.html").read_bytes()


@blueprint.get("/")
def playground() -> Response:
    # The page links its script and style as static/..., served by Flask's static route; the
    # page itself is read once and served from memory (no file handle left to any client).
    return Response(playground_page(current_app.static_folder), mimetype="text/html")


@blueprint.get("/openapi.json")
def openapi_json() -> dict:
    return openapi_document()


@blueprint.get("/docs")
def docs() -> Response:
    return Response(docs_page(), mimetype="text/html")
