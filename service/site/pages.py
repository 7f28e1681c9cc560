"""The site blueprint: the playground page, the rendered API docs and the OpenAPI document."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import Blueprint, Response, current_app

from engine import describe_ops
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
    return render_docs_page(openapi_document(), describe_ops())


@cache
def static_bytes(static_folder: str, name: str) -> bytes:
    """A page or icon of the site, read once and served from memory."""
    return (Path(static_folder) / name).read_bytes()


@blueprint.get("/")
def playground() -> Response:
    # The page links its script and style as static/..., served by Flask's static route; the
    # page itself is read once and served from memory (no file handle left to any client).
    return Response(static_bytes(current_app.static_folder, "index.html"), mimetype="text/html")


@blueprint.get("/favicon.ico")
def favicon() -> Response:
    # browsers ask for it on pages that name no icon (the API's JSON answers, say)
    icon = static_bytes(current_app.static_folder, "favicon.svg")
    return Response(icon, mimetype="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


@blueprint.get("/openapi.json")
def openapi_json() -> dict:
    return openapi_document()


@blueprint.get("/docs")
def docs() -> Response:
    return Response(docs_page(), mimetype="text/html")
