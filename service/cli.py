"""The `wg` command: a Flask CLI group bound to the app factory.

The scheduler's commands (`wg run`, `wg scheduler`, `wg tick`) join through the
`flask.commands` entry point, so this package never imports the scheduler.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, routes_command, shell_command, with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from service import audit, create_app, outbox
from service.cliutil import parse_moment
from service.clock import now
from service.config import SettingError, prepare_instance, settings
from service.console import cli as console_cli
from service.db import UNAVAILABLE, get_database, session_scope, unavailable_reason
from service.inbound import cli as inbound_cli
from service.meetings import cli as meetings_cli
from service.membership import cli as membership_cli
from service.models import Organisation
from service.notices import cli as notices_cli


def _create_app() -> Flask:
    try:
        return create_app()
    except SettingError as exc:
        # One clear line naming the setting, not a traceback.
        click.echo(f"wg: {exc}", err=True)
        sys.exit(2)


class WgGroup(FlaskGroup):
    """The Flask CLI group, with one line instead of a traceback when the database is away."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UNAVAILABLE as exc:
            click.echo(f"wg: the database is unavailable: {unavailable_reason(exc)}", err=True)
            ctx.exit(1)


def product_version() -> str:
    """This product's version (pyproject.toml), not Flask's."""
    try:
        return version("wg-mailer")
    except PackageNotFoundError:  # pragma: no cover - run from a tree that is not installed
        return "unknown"


cli = WgGroup(
    name="wg",
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    help="The working-group mailer: join form, meetings, RSVPs and digests.",
)
cli = click.version_option(
    product_version(), "--version", prog_name="wg", message="%(prog)s %(version)s"
)(cli)
cli.add_command(shell_command)
cli.add_command(routes_command)
cli.add_command(meetings_cli.series)
cli.add_command(meetings_cli.meetings)
cli.add_command(inbound_cli.inbound)
cli.add_command(notices_cli.announce_command)
cli.add_command(notices_cli.digest_command)
cli.add_command(console_cli.coordinators)


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration not yet applied."""
    from service.migrations import upgrade

    prepare_instance(Path(current_app.instance_path), settings())
    upgrade(get_database().engine)
    click.echo("database is up to date")


@cli.group("outbox", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
@with_appcontext
def outbox_command(ctx: click.Context, as_json: bool) -> None:
    """Queue health: counts by status, what is due, the oldest waiting, the last errors.

    Exits 1 while mail is not going out because of our own set-up (relay, TLS, login,
    sender), so that monitoring can watch this command.
    """
    if ctx.invoked_subcommand is not None:
        return
    with session_scope() as session:
        report = _without_deliberate_skips(outbox.health(session, now=now(), error_limit=200))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    else:
        if report.fault:
            click.echo(f"! MAIL IS NOT GOING OUT: {report.fault}")
        for status, count in report.counts.items():
            click.echo(f"{status:<11} {count}")
        click.echo(f"due now     {report.due}")
        oldest = report.oldest_queued_at.isoformat() if report.oldest_queued_at else "-"
        click.echo(f"oldest queued {oldest}")
        for error in report.last_errors:
            click.echo(f"! {error['recipient']} ({error['status']}): {error['error']}")
    if report.fault:
        ctx.exit(1)


LAST_ERRORS_SHOWN = 10


def _without_deliberate_skips(report: outbox.Health) -> outbox.Health:
    """The report without mail left unsent on purpose (a quiet day's digest record, a follow-up
    overtaken by a later one): those are records, not errors."""
    errors = [
        error
        for error in report.last_errors
        if not (error["status"] == "expired" and error["error"].startswith("not sent: "))
    ]
    return dataclasses.replace(report, last_errors=errors[:LAST_ERRORS_SHOWN])


@outbox_command.command("retry")
@click.option("--failed", is_flag=True, help="Also requeue mail that failed for good.")
@click.option("--since", "since_text", metavar="ISO", help="Only mail queued since then.")
def outbox_retry(failed: bool, since_text: str | None) -> None:
    """Send waiting mail now instead of at its next retry, and with --failed what failed; once
    each."""
    since = parse_moment(since_text) if since_text else None
    moment = now()
    with session_scope() as session:
        count = outbox.requeue(session, now=moment, failed=failed, since=since)
        audit.record(
            session,
            "outbox.requeued",
            "outbox",
            at=moment,
            count=count,
            failed=failed,
            since=since.isoformat() if since else None,
        )
    click.echo(f"requeued {count} message{'s' if count != 1 else ''}")


@cli.group()
def members() -> None:
    """Member organisations and their contacts."""


@members.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def members_list(as_json: bool) -> None:
    """Every organisation and contact with status and language."""
    with session_scope() as session:
        organisations = session.scalars(
            select(Organisation)
            .options(selectinload(Organisation.contacts))
            .order_by(Organisation.name)
        ).all()
        listing = [
            {
                "organisation": org.name,
                "kind": org.kind.value,
                "status": org.status.value,
                "contacts": [
                    {
                        "name": c.name,
                        "email": c.email,
                        "role": c.role,
                        "language": c.language.value,
                        "status": c.status.value,
                    }
                    for c in org.contacts
                ],
            }
            for org in organisations
        ]
    if as_json:
        click.echo(json.dumps(listing, indent=2, ensure_ascii=False))
        return
    for org in organisations:
        click.echo(f"{org.name} [{org.kind.value}, {org.status.value}]")
        for c in org.contacts:
            click.echo(f"  {c.name} <{c.email}> {c.language.value} {c.status.value}")


membership_cli.register(members, cli)


@cli.command("web", with_appcontext=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
def web_command(host: str, port: int, workers: int) -> None:
    """Serve the web pages with gunicorn (production). Run exactly one `wg scheduler` beside it."""
    from service.gunicorn import serve

    _create_app()  # a bad setting stops here, with one line, before any worker starts
    serve(_create_app, host=host, port=port, workers=workers)


def main() -> None:
    arguments = sys.argv[1:]
    if ("inbound", "read") in itertools.pairwise(arguments):
        sys.exit(_for_a_mail_server(arguments))
    cli.main(prog_name="wg")


def _for_a_mail_server(arguments: list[str]) -> int:
    """Run `wg ... inbound read` for an MTA's pipe: 0 once the message is safely stored (or can
    never be), else EX_TEMPFAIL (75) with one line, so the MTA keeps the message and retries;
    never a traceback, which the MTA would mail back to the sender."""
    from service.inbound.cli import TEMPORARY_FAILURE

    try:
        cli.main(args=arguments, prog_name="wg", standalone_mode=False)
    except click.exceptions.Exit as stop:
        return 0 if stop.exit_code == 0 else TEMPORARY_FAILURE
    except SystemExit as stop:
        return 0 if stop.code in (0, None) else TEMPORARY_FAILURE
    except click.ClickException as error:
        click.echo(f"wg: {error.format_message()}", err=True)
        return TEMPORARY_FAILURE
    except Exception as error:  # anything at all: the message must stay with the MTA
        click.echo(f"wg: could not take the message now: {type(error).__name__}", err=True)
        return TEMPORARY_FAILURE
    return 0


if __name__ == "__main__":
    main()
