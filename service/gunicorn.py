"""`wg web`: the app under gunicorn, configured from the command line."""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from service.db import get_database


class WebServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def _fresh_connections(_server: Any, worker: Any) -> None:
    # Connections opened by the master must not be shared by the forked workers.
    get_database(worker.app.application).engine.dispose(close=False)


def serve(app: Flask, *, host: str, port: int, workers: int) -> None:
    WebServer(
        app,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "accesslog": "-",
            "forwarded_allow_ips": "127.0.0.1",
            "graceful_timeout": 20,
            "post_fork": _fresh_connections,
        },
    ).run()
