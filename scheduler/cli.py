"""`wg run`, `wg scheduler` and `wg tick`: they join the `wg` group via `flask.commands`."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from emails.transport import Transport
from scheduler import jobs
from service.cliutil import parse_moment
from service.clock import now as clock_now
from service.config import Settings, prepare_instance, settings
from service.db import get_database
from service.devmail.routes import CATCHER_DIR
from service.outbox import OutboxSender
from service.web import redact_path


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The SMTP server and the scheduler log every connection and run; keep their warnings only.
    for noisy in ("mail.log", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _stop_on_sigterm() -> None:
    """Turn SIGTERM into a normal exit, so the batch in flight is finished or released."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def _links_to_this_server(app: Flask, host: str, port: int) -> Settings:
    """The settings of `wg run`, whose mail links point at the port it serves when
    WG_BASE_URL was left at its default (mail from `wg run --port 5077` must lead to 5077)."""
    config = settings(app)
    if config.base_url != Settings.base_url:
        return config
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    config = dataclasses.replace(config, base_url=f"http://{shown_host}:{port}")
    app.extensions["wg.settings"] = config
    return config


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def run_command(host: str, port: int) -> None:
    """The embedded default: web and scheduler in one process, and a mail catcher when
    WG_SMTP_HOST is empty (caught mail at /dev/mail)."""
    # Imported here: `wg tick` and the other commands start without them.
    from apscheduler.schedulers.background import BackgroundScheduler
    from werkzeug.serving import WSGIRequestHandler, make_server

    from scheduler.runner import add_jobs
    from service.devmail.catcher import start_catcher

    class RedactingRequestHandler(WSGIRequestHandler):
        """Werkzeug's request log without the secrets that links carry in their paths."""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            self.requestline = redact_path(self.requestline)
            super().log_request(code, size)

    _configure_logging()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    prepare_instance(Path(app.instance_path), settings(app))
    config = _links_to_this_server(app, host, port)
    catcher = None
    if not config.smtp_host:
        directory = Path(app.instance_path) / "mail"
        try:
            catcher = start_catcher(directory, config.catcher_port)
        except OSError as exc:
            click.echo(
                f"wg: the mail catcher cannot listen on 127.0.0.1:{config.catcher_port} "
                f"({os.strerror(exc.errno).lower() if exc.errno else exc}); "
                "set WG_CATCHER_PORT to a free port",
                err=True,
            )
            raise click.exceptions.Exit(1) from None
        app.config[CATCHER_DIR] = str(directory)
        click.echo(f"mail catcher on 127.0.0.1:{config.catcher_port}; read it at /dev/mail")
    transport = Transport(config.smtp())
    scheduler = BackgroundScheduler(timezone="UTC")
    sender = add_jobs(scheduler, app, transport)
    server = None
    try:
        scheduler.start()
        _stop_on_sigterm()
        server = make_server(
            host, port, app, threaded=True, request_handler=RedactingRequestHandler
        )
        click.echo(f"join form at http://{host}:{port}/join")
        server.serve_forever()
    finally:
        if server is not None:
            server.server_close()
        sender.stop()
        if scheduler.running:
            scheduler.shutdown(wait=True)
        transport.close()
        if catcher is not None:
            catcher.stop()


@click.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """The clock for production: run exactly one beside the web processes."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    from scheduler.leader import Leadership
    from scheduler.runner import add_jobs

    _configure_logging()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _stop_on_sigterm()
    leadership = Leadership(get_database(app).engine)
    try:
        if not leadership.wait(threading.Event()):
            return
        transport = Transport(settings(app).smtp())
        scheduler = BlockingScheduler(timezone="UTC")
        sender = add_jobs(scheduler, app, transport, senders=settings(app).senders)
        try:
            scheduler.start()
        finally:
            sender.stop()
            if scheduler.running:
                scheduler.shutdown(wait=True)
            transport.close()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        leadership.release()


@click.command("tick")
@click.option("--now", "now_text", metavar="ISO", help="Simulate the clock (naive = WG_TIMEZONE).")
@with_appcontext
def tick_command(now_text: str | None) -> None:
    """One scheduler pass, then exit: enqueue what is due and deliver the outbox."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    config = settings(app)
    moment = parse_moment(now_text) if now_text else clock_now(app)
    if config.senders > 1:
        from service.senders import SenderPool

        with SenderPool(app, config.senders) as pool:
            report = jobs.tick(app, pool, moment)
    else:
        with Transport(config.smtp()) as transport:
            report = jobs.tick(app, OutboxSender(app, transport, now=lambda: moment), moment)
    click.echo(report.summary())
