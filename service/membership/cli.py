"""`wg members import | export` and `wg audit`.

They join the `members` group and the root `wg` group of service/cli.py through
`register()`, so the group keeps one definition.
"""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import datetime
from typing import IO
from zoneinfo import ZoneInfo

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import IntegrityError

from service.cliutil import parse_moment
from service.clock import now
from service.config import settings
from service.db import get_database
from service.membership import roster

PROGRESS_THRESHOLD = 1000  # rows; smaller files import faster than a bar can draw


def _fail(message: str, code: int = 2) -> None:
    """One clear line on stderr, then exit."""
    click.echo(f"wg: {message}", err=True)
    raise click.exceptions.Exit(code)


@click.command("import")
@click.argument("file", type=click.File("rb"), metavar="FILE.csv")
@click.option("--dry-run", is_flag=True, help="Check and count, but store nothing.")
@with_appcontext
def members_import(file: IO[bytes], dry_run: bool) -> None:
    """Add and update members from a CSV file (UTF-8).

    Columns: organization, name, email, language (en or km); optional role, phone,
    kind (organisation, institution, individual) and status (active, inactive,
    unsubscribed, bounced). Contacts are matched by email. Suppressed addresses are
    never re-activated. Every line that cannot be imported is reported (one that cannot
    be read as CSV too) and the good ones are imported; the exit status is then 1.
    """
    try:
        parsed = roster.parse_roster(file.read())
    except roster.RosterFileError as exc:
        _fail(f"{file.name}: {exc}")
    if parsed.ignored_columns:
        click.echo(f"ignored column(s): {', '.join(parsed.ignored_columns)}")

    session = get_database().sessions()
    try:
        bar: contextlib.AbstractContextManager = contextlib.nullcontext()
        if len(parsed.rows) > PROGRESS_THRESHOLD:
            # On stderr, so the report on stdout stays clean; without a TTY click prints
            # the label once instead of drawing.
            bar = click.progressbar(
                length=len(parsed.rows),
                label=f"importing {len(parsed.rows)} rows",
                file=sys.stderr,
            )
        with bar as progress:
            report = roster.import_roster(
                session,
                parsed,
                now=now(),
                progress=progress.update if progress is not None else None,
            )
        if dry_run:
            session.rollback()
        else:
            session.commit()
    except IntegrityError:
        session.rollback()
        _fail("the member list changed while importing; nothing was imported, run it again", 1)
    finally:
        session.close()

    for problem in report.problems:
        click.echo(str(problem))
    if report.organisations_created or report.organisations_updated:
        click.echo(
            f"organisations: created {report.organisations_created}, "
            f"updated {report.organisations_updated}"
        )
    if dry_run:
        click.echo("dry run: nothing was stored")
    click.echo(report.summary())
    if report.errors:
        raise click.exceptions.Exit(1)


@click.command("export")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="csv: UTF-8 with BOM and CRLF, for Excel. json: a list of rows.",
)
@click.option(
    "--output",
    "-o",
    type=click.File("wb", atomic=True),
    default="-",
    help="Write to this file instead of standard output.",
)
@with_appcontext
def members_export(output_format: str, output: IO[bytes]) -> None:
    """Every organisation and contact, all statuses; the CSV imports back as it is."""
    with get_database().read_sessions() as db:
        rows = roster.export_rows(db)
    data = roster.export_csv(rows) if output_format == "csv" else roster.export_json(rows)
    output.write(data)
    output.flush()


@click.command("audit")
@click.option("--since", metavar="ISO", help="Only events from then on (naive: WG_TIMEZONE).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@with_appcontext
def audit_command(since: str | None, as_json: bool) -> None:
    """The audit log, oldest first: who changed what, and when."""
    with get_database().read_sessions() as db:
        events = roster.audit_events(db, since=parse_moment(since) if since else None)
    if as_json:
        click.echo(json.dumps(events, indent=2, ensure_ascii=False))
        return
    zone = ZoneInfo(settings().timezone)
    for event in events:
        at = datetime.fromisoformat(event["at"]).astimezone(zone)
        subject = event["subject_type"]
        if event["subject_id"] is not None:
            subject += f" {event['subject_id']}"
        detail = json.dumps(event["detail"], ensure_ascii=False, sort_keys=True)
        click.echo(
            f"{at.isoformat(timespec='seconds')}  {event['action']}  {subject}  "
            f"{event['actor'] or '-'}  {detail}"
        )


def register(members_group: click.Group, cli_group: click.Group) -> None:
    """Add `import` and `export` to `wg members`, and `audit` to `wg`."""
    members_group.add_command(members_import)
    members_group.add_command(members_export)
    cli_group.add_command(audit_command)
