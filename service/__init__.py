"""chainrule's HTTP service: a Flask app serving the wire contract, cached in Redis or in process.

    from service import create_app
    app = create_app({"REDIS_URL": "redis://127.0.0.1:6379/0"})
"""

from service.app import create_app

__all__ = ["create_app"]
