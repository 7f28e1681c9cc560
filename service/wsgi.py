"""The WSGI entry point for gunicorn (`service.wsgi:app`): the only module-level app.

Each gunicorn worker imports this after forking, so each has its own connection pool and caches.
Once the app is built and the engine warmed up (what numpy loads on first use is loaded now,
not in a worker's first request), everything the worker holds so far (modules, schemas, the op
table) is moved out of the cyclic collector's sight: none of it will ever be garbage, and the
collections between requests then scan only what requests left behind.
"""

import gc

from engine import warm_up
from service import create_app

app = create_app()
warm_up()
gc.collect()
gc.freeze()
