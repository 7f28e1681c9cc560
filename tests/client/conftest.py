"""SDK fixtures: a Client over the real app in-process, and the real app on a loopback port.

`sdk` runs the app through httpx.WSGITransport; `live_url` serves it from a threaded wsgiref
server on a free 127.0.0.1 port, for AsyncClient (httpx has no async WSGI transport) and for
the README example, which opens its own client from a URL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

import chainrule_client as cr


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@pytest.fixture
def sdk(app) -> Iterator[cr.Client]:
    with cr.Client("http://chainrule.test", transport=httpx.WSGITransport(app=app)) as client:
        yield client


@pytest.fixture
def live_url(app) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
