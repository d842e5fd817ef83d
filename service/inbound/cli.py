"""`wg inbound read` (a message on stdin, for an MTA pipe) and `wg inbound poll` (IMAP)."""

from __future__ import annotations

import logging
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from service.clock import now
from service.config import settings
from service.db import UNAVAILABLE, session_scope, unavailable_reason
from service.inbound.imap import PollError, poll_once
from service.inbound.operations import process_message

log = logging.getLogger(__name__)

# sysexits.h EX_TEMPFAIL: the MTA keeps the message and tries again later.
TEMPORARY_FAILURE = 75
LARGEST_MESSAGE = 25 * 1024 * 1024

inbound = AppGroup("inbound", help="Mail coming back: replies, calendar answers, bounces.")


@inbound.command("read")
def inbound_read() -> None:
    """Process one raw message from standard input (pipe it from Postfix)."""
    raw = sys.stdin.buffer.read(LARGEST_MESSAGE + 1)
    if len(raw) > LARGEST_MESSAGE:
        click.echo("message too large; not processed", err=True)
        sys.exit(0)  # keep the MTA from retrying a message that will never fit
    try:
        with session_scope() as db:
            outcome = process_message(db, raw, now=now())
    except Exception as error:  # one line: stderr goes back to the MTA, which may mail it
        reason = type(error).__name__
        if isinstance(error, UNAVAILABLE):
            reason = unavailable_reason(error)
        click.echo(f"could not process the message now ({reason}); try again later", err=True)
        sys.exit(TEMPORARY_FAILURE)
    click.echo(outcome.summary())


@inbound.command("poll")
def inbound_poll() -> None:
    """Read the IMAP mailbox (WG_IMAP_*) once: process each message, then file it away.

    Exits 1 when the mailbox cannot be read, or when a message could not be processed
    (it stays in the mailbox for the next poll).
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        report = poll_once(app, settings(app), now=lambda: now(app))
    except PollError as exc:
        click.echo(f"wg inbound poll: {exc}", err=True)
        sys.exit(1)
    click.echo(report.summary())
    if report.errors:
        sys.exit(1)
