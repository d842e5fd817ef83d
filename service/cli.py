"""The `wg` command: a Flask CLI group bound to the app factory.

The scheduler's commands (`wg run`, `wg scheduler`, `wg tick`) join through the
`flask.commands` entry point, so this package never imports the scheduler.
"""

from __future__ import annotations

import json
import sys

import click
from flask.cli import FlaskGroup, routes_command, shell_command
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from service import create_app, outbox
from service.clock import now
from service.config import SettingError
from service.db import get_database, session_scope
from service.inbound import cli as inbound_cli
from service.meetings import cli as meetings_cli
from service.membership import cli as membership_cli
from service.models import Organisation
from service.notices import cli as notices_cli


def _create_app():  # type: ignore[no-untyped-def]
    try:
        return create_app()
    except SettingError as exc:
        # One clear line naming the setting, not a traceback.
        click.echo(f"wg: {exc}", err=True)
        sys.exit(2)


cli = FlaskGroup(
    name="wg",
    create_app=_create_app,
    add_default_commands=False,
    help="The working-group mailer: join form, meetings, RSVPs and digests.",
)
cli.add_command(shell_command)
cli.add_command(routes_command)
cli.add_command(meetings_cli.series)
cli.add_command(meetings_cli.meetings)
cli.add_command(inbound_cli.inbound)
cli.add_command(notices_cli.announce_command)
cli.add_command(notices_cli.digest_command)


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration not yet applied."""
    from service.migrations import upgrade

    upgrade(get_database().engine)
    click.echo("database is up to date")


@cli.command("outbox")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def outbox_command(as_json: bool) -> None:
    """Queue health: counts by status, what is due, the oldest waiting, the last errors."""
    with session_scope() as session:
        report = outbox.health(session, now=now())
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        return
    for status, count in report.counts.items():
        click.echo(f"{status:<11} {count}")
    click.echo(f"due now     {report.due}")
    oldest = report.oldest_queued_at.isoformat() if report.oldest_queued_at else "-"
    click.echo(f"oldest queued {oldest}")
    for error in report.last_errors:
        click.echo(f"! {error['recipient']} ({error['status']}): {error['error']}")


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
    for org in listing:
        click.echo(f"{org['organisation']} [{org['kind']}, {org['status']}]")
        for c in org["contacts"]:
            click.echo(f"  {c['name']} <{c['email']}> {c['language']} {c['status']}")


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
    cli.main(prog_name="wg")


if __name__ == "__main__":
    main()
