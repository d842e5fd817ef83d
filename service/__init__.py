"""The working-group service: create_app() wires config, extensions, blueprints and the CLI."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from service import db, i18n, web
from service.config import load_settings
from service.extensions import limiter

# Large enough for the join form with every field full, small enough to refuse floods.
MAX_REQUEST_BYTES = 64 * 1024


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """The app for `config` (WG_* names) over the environment and `.env`."""
    environ = {**dotenv_values(".env"), **os.environ, **(config or {})}
    instance_path = environ.get("WG_INSTANCE_PATH") or None
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    settings = load_settings(environ, Path(app.instance_path))
    app.extensions["wg.settings"] = settings
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        SESSION_COOKIE_HTTPONLY=True,
        # A form may stay open a long while on a slow phone connection.
        WTF_CSRF_TIME_LIMIT=24 * 3600,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage,
        RATELIMIT_HEADERS_ENABLED=True,
        BABEL_DEFAULT_TIMEZONE=settings.timezone,
    )
    db.init_app(app, settings.database_url)
    i18n.init_app(app)
    limiter.init_app(app)
    web.init_app(app)
    if settings.trusted_proxies:
        # Behind nginx or a load balancer the client address (for rate limits) and the
        # scheme come from the proxy's X-Forwarded-* headers, and only from that many hops.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )
    return app
