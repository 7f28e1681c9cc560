"""The SDK as a package: an honest `__all__`, and no import of the service's code."""

from __future__ import annotations

import subprocess
import sys
import types

import chainrule_client as cr


def test_all_lists_exactly_the_public_names():
    public = {
        name for name, value in vars(cr).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(cr.__all__) == public | {"__version__"}
    assert len(cr.__all__) == len(set(cr.__all__))


def test_every_exception_descends_from_the_one_root():
    errors = [getattr(cr, name) for name in cr.__all__ if name.endswith(("Error", "Timeout"))]
    errors += [cr.BadRequest, cr.NotFound, cr.TooLarge, cr.Unavailable, cr.DeadlineExceeded]
    assert all(issubclass(error, cr.ChainruleError) for error in errors)
    assert not issubclass(cr.TransportError, cr.APIError)
    assert not issubclass(cr.APIError, cr.TransportError)


def test_the_sdk_imports_nothing_of_the_service():
    code = (
        "import sys, chainrule_client\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "print(sorted(roots & {'engine', 'schemas', 'service', 'flask', 'marshmallow', 'redis'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_both_clients_share_one_definition_of_every_endpoint():
    import asyncio
    import inspect

    from chainrule_client.endpoints import Endpoints, endpoint

    names = [name for name, value in vars(Endpoints).items() if isinstance(value, endpoint)]
    assert {"gradients", "evaluate", "gradcheck", "diagram", "result", "ops", "health"} <= set(
        names
    )
    for face in (cr.Client, cr.AsyncClient):
        assert not set(vars(face)) & set(names)  # no face redefines an endpoint
    sync, asynchronous = cr.Client("http://t"), cr.AsyncClient("http://t")
    for name in names:
        assert inspect.signature(getattr(sync, name)) == inspect.signature(
            getattr(asynchronous, name)
        )
        assert inspect.iscoroutinefunction(getattr(asynchronous, name))
        assert not inspect.iscoroutinefunction(getattr(sync, name))
        assert getattr(sync, name).__doc__
    assert str(inspect.signature(sync.gradients).return_annotation) == "Result"
    sync.close()
    asyncio.run(asynchronous.aclose())
