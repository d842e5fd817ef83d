"""The working-group service: create_app() wires config, extensions, blueprints and the CLI."""

from __future__ import annotations

import gc

# Importing the service makes a few hundred thousand objects that live as long as the process
# (SQLAlchemy's, Flask's and Babel's classes, the models). The cyclic collector walked them
# again and again while they were being made: a quarter of a `wg` command's start-up. It
# pauses for the imports; what they made is then frozen, so that no later collection walks it
# either, and gunicorn's forked workers keep sharing those pages (the pattern of gc.freeze's
# documentation).
_collecting = gc.isenabled()
gc.disable()
try:
    import os
    from collections.abc import Mapping
    from pathlib import Path

    from dotenv import dotenv_values
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from service import db, i18n, web
    from service.config import DATABASE_RATELIMIT_STORAGE, SettingError, load_settings
    from service.extensions import limiter
    from service.ratelimits import SCHEME as DATABASE_RATELIMIT_SCHEME
finally:
    gc.freeze()
    if _collecting:
        gc.enable()

# Large enough for the join form with every field full, small enough to refuse floods.
MAX_REQUEST_BYTES = 64 * 1024


def _environment(config: Mapping[str, str]) -> dict[str, str | None]:
    """`config` over the process's environment, over WG_ENV_FILE, over `.env`."""
    files = [".env"]
    env_file = {**os.environ, **config}.get("WG_ENV_FILE", "").strip()
    if env_file:
        # For an MTA's pipe, which passes no environment: the settings come from this file.
        if not Path(env_file).is_file():
            raise SettingError(f"WG_ENV_FILE: {env_file!r} is not a file")
        files.append(env_file)
    values: dict[str, str | None] = {}
    for path in files:
        values.update(dotenv_values(path))
    return {**values, **os.environ, **config}


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """The app for `config` (WG_* names) over the environment and `.env`."""
    environ = _environment(config or {})
    instance_path = environ.get("WG_INSTANCE_PATH") or None
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    settings = load_settings(environ, Path(app.instance_path))
    app.extensions["wg.settings"] = settings
    # What this app was made with, so that a sender process can make the same app.
    app.extensions["wg.config"] = dict(config or {})
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_REQUEST_BYTES,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.production,
        SESSION_COOKIE_HTTPONLY=True,
        # A form may stay open a long while on a slow phone connection.
        WTF_CSRF_TIME_LIMIT=24 * 3600,
        RATELIMIT_HEADERS_ENABLED=True,
        # A rate limit that cannot be counted (the database is down) lets the request through;
        # the request itself then meets the same fault and gets a calm answer.
        RATELIMIT_SWALLOW_ERRORS=True,
        BABEL_DEFAULT_TIMEZONE=settings.timezone,
    )
    database = db.init_app(app, settings.database_url)
    if settings.ratelimit_storage == DATABASE_RATELIMIT_STORAGE:
        app.config["RATELIMIT_STORAGE_URI"] = f"{DATABASE_RATELIMIT_SCHEME}://"
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {"engine": database.engine}
    else:
        app.config["RATELIMIT_STORAGE_URI"] = settings.ratelimit_storage
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
