"""`wg announce` and `wg digest`."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from service.cliutil import parse_moment
from service.clock import now
from service.db import session_scope
from service.notices import digest
from service.notices.announcements import AnnouncementError, announce


def _read(path: str | None) -> str:
    if path is None:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise click.UsageError(f"{path}: not UTF-8; save the file as UTF-8 text") from None
    except OSError as exc:
        raise click.UsageError(f"{path}: {exc.strerror}") from None


@click.command("announce")
@click.option("--subject", required=True, help="Subject in English.")
@click.option("--body-file", required=True, type=click.Path(), help="Markdown, English.")
@click.option("--subject-km", default="", help="Subject in Khmer.")
@click.option("--body-km-file", default=None, type=click.Path(), help="Markdown, Khmer.")
@click.option("--test", is_flag=True, help="Send every language version to the coordinators only.")
@click.option("--again", is_flag=True, help="Send an announcement already sent once more.")
@with_appcontext
def announce_command(
    subject: str,
    body_file: str,
    subject_km: str,
    body_km_file: str | None,
    test: bool,
    again: bool,
) -> None:
    """Send news to every member who wants it, each in their language, through the outbox."""
    try:
        with session_scope() as db:
            report = announce(
                db,
                subject_en=subject,
                body_en=_read(body_file),
                subject_km=subject_km,
                body_km=_read(body_km_file),
                test=test,
                again=again,
                now=now(),
            )
    except AnnouncementError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(report.summary())
    click.echo("the scheduler sends it within seconds, at the SMTP rate limit (see `wg outbox`)")


@click.command("digest")
@click.option("--preview", is_flag=True, help="Print the text digest; send nothing.")
@click.option("--now", "now_text", metavar="ISO", help="Simulate the clock (naive = WG_TIMEZONE).")
@with_appcontext
def digest_command(preview: bool, now_text: str | None) -> None:
    """The coordinator's digest: print it (--preview) or send it now (once a day)."""
    moment = parse_moment(now_text) if now_text else now()
    with session_scope() as db:
        if preview:
            click.echo(digest.preview(db, now=moment))
            return
        queued = digest.send_now(db, now=moment)
    if queued:
        click.echo(f"digest queued for {queued} coordinator(s); the scheduler sends it")
    else:
        click.echo("today's digest was already sent")
