"""`wg coordinators add | list | remove`: who may sign in to the console and gets the digests."""

from __future__ import annotations

import json

import click
from email_validator import EmailNotValidError, validate_email
from flask.cli import AppGroup

from service import coordinators as coordinator_list
from service.clock import now
from service.config import settings
from service.db import session_scope

coordinators = AppGroup("coordinators", help="Who may sign in to the console and gets digests.")


def _address(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        checked = validate_email(value.strip(), check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        raise click.BadParameter(f"{value!r} is not an email address") from None
    return checked.normalized.lower()


@coordinators.command("add")
@click.argument("email", callback=_address)
@click.option(
    "--language",
    type=click.Choice(["en", "km"]),
    default=None,
    help="Of their mail and console (default WG_COORDINATOR_LANGUAGE).",
)
def coordinators_add(email: str, language: str | None) -> None:
    """Put EMAIL on the list (again): they may sign in and receive digests and join requests."""
    try:
        with session_scope() as db:
            coordinator_list.add(
                db,
                email,
                language=language or settings().coordinator_language,
                actor="",
                now=now(),
            )
    except coordinator_list.CoordinatorError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"{email} is a coordinator")


@coordinators.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def coordinators_list(as_json: bool) -> None:
    """Every coordinator, with their language; "(setting)" marks one only WG_COORDINATOR_EMAILS
    names."""
    with session_scope() as db:
        entries = coordinator_list.current(db)
    if as_json:
        listing = [{"email": e.email, "language": e.language, "seeded": e.seeded} for e in entries]
        click.echo(json.dumps(listing, indent=2))
        return
    for entry in entries:
        click.echo(f"{entry.email}  {entry.language}{'  (setting)' if entry.seeded else ''}")


@coordinators.command("remove")
@click.argument("email", callback=_address)
def coordinators_remove(email: str) -> None:
    """Take EMAIL off the list: their console session ends at their next request."""
    try:
        with session_scope() as db:
            coordinator_list.remove(db, email, actor="", now=now())
    except coordinator_list.CoordinatorError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"{email} is no longer a coordinator")
