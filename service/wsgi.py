"""The WSGI entry point for gunicorn (`service.wsgi:app`): the only module-level app.

Each gunicorn worker imports this after forking, so each has its own connection pool and caches.
"""

from service import create_app

app = create_app()
