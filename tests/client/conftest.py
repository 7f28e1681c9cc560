"""SDK fixtures: a Client over the real app in-process, and the real app on a loopback port.

`sdk` runs the app through httpx.WSGITransport; `live_url` serves it from a threaded wsgiref
server on a free 127.0.0.1 port, for AsyncClient (httpx has no async WSGI transport) and for
the README example, which opens its own client from a URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import chainrule_client as cr
from tests.loopback import served_on_loopback


@pytest.fixture
def sdk(app) -> Iterator[cr.Client]:
    with cr.Client("http://chainrule.test", transport=httpx.WSGITransport(app=app)) as client:
        yield client


@pytest.fixture
def live_url(app) -> Iterator[str]:
    with served_on_loopback(app) as url:
        yield url
