"""`wg web`: the app under gunicorn, each worker building its own app from the factory.

Nothing made in the master process reaches a worker: not an app, not an app context (whose
`flask.g` would then be shared by every request the worker serves: one CSRF token, one
language for everybody), not a database connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from service.web import redact_path

if TYPE_CHECKING:
    from gunicorn._types import _WSGIAppType


class WebServer(BaseApplication):
    def __init__(self, factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> _WSGIAppType:
        # Called in each worker after the fork (preload_app is off). Flask's stubs type the
        # WSGI environ as a dict, gunicorn's as a MutableMapping: the same thing at run time.
        return self.factory()  # type: ignore[return-value]


class RedactingLogger(Logger):
    """Gunicorn's access log without the secrets that links carry in their paths."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        path = redact_path(environ.get("PATH_INFO", ""))
        atoms["U"] = path
        atoms["r"] = f"{environ['REQUEST_METHOD']} {path} {environ['SERVER_PROTOCOL']}"
        atoms["f"] = "-"
        return atoms


def serve(factory: Callable[[], Flask], *, host: str, port: int, workers: int) -> None:
    WebServer(
        factory,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "preload_app": False,
            "accesslog": "-",
            "logger_class": RedactingLogger,
            "access_log_format": '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms',
            "forwarded_allow_ips": "127.0.0.1",
            "graceful_timeout": 20,
        },
    ).run()
