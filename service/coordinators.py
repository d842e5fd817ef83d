"""The coordinator list: who may sign in to the console, and who receives digests and join
requests.

WG_COORDINATOR_EMAILS seeds it: an address named there is a coordinator until a row says it
was removed. A row is written when an address is added, removed, or first signs in, so the
list is read without writing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service import audit
from service.config import settings
from service.db import insert_ignoring_duplicates
from service.models import Coordinator, Language, Token, TokenPurpose

CONSOLE_PURPOSES = (TokenPurpose.CONSOLE_SIGN_IN, TokenPurpose.CONSOLE_SESSION)


class CoordinatorError(ValueError):
    """A change of the list that cannot be made; the message says why."""


@dataclass(frozen=True)
class Entry:
    """One coordinator as the list shows it."""

    email: str
    language: str
    seeded: bool  # named by WG_COORDINATOR_EMAILS and never changed since


def current(db: Session) -> list[Entry]:
    """Every coordinator, by address: those added, and those the setting names and no row
    removed."""
    rows = {row.email: row for row in db.scalars(select(Coordinator))}
    entries = [
        Entry(row.email, row.language.value, seeded=False)
        for row in rows.values()
        if row.removed_at is None
    ]
    config = settings()
    for email in dict.fromkeys(address.lower() for address in config.coordinator_emails):
        if email not in rows:
            entries.append(Entry(email, config.coordinator_language, seeded=True))
    return sorted(entries, key=lambda entry: entry.email)


def recipients(db: Session) -> list[tuple[str, str]]:
    """(address, language) of every coordinator: whom digests and join requests go to."""
    return [(entry.email, entry.language) for entry in current(db)]


def find(db: Session, email: str, *, now: datetime) -> Coordinator | None:
    """The coordinator with this address, its row written if only the setting named it; None
    for anyone else. Needs a session that may write."""
    email = email.strip().lower()
    entry = next((e for e in current(db) if e.email == email), None)
    if entry is None:
        return None
    if entry.seeded:
        insert_ignoring_duplicates(
            db,
            Coordinator,
            ("email",),
            dict(
                email=email,
                language=Language(entry.language),
                added_at=now,
                added_by="",
                removed_at=None,
            ),
        )
    return db.scalars(select(Coordinator).where(Coordinator.email == email)).one()


def add(db: Session, email: str, *, language: str, actor: str, now: datetime) -> Coordinator:
    """Put `email` on the list (again), speaking `language`."""
    email = email.strip().lower()
    row = db.scalars(select(Coordinator).where(Coordinator.email == email)).first()
    if row is None:
        row = Coordinator(email=email, added_at=now, added_by=actor)
        db.add(row)
    elif row.removed_at is None and row.language.value == language:
        raise CoordinatorError(f"{email} is already a coordinator")
    row.language = Language(language)
    row.removed_at = None
    row.added_by = actor
    db.flush()
    audit.record(db, "coordinator.added", row, at=now, actor=actor, email=email, language=language)
    return row


def remove(db: Session, email: str, *, actor: str, now: datetime) -> Coordinator:
    """Take `email` off the list: its console sessions and sign-in links end at once."""
    row = find(db, email, now=now)
    if row is None:
        raise CoordinatorError(f"{email.strip().lower()} is not a coordinator")
    row.removed_at = now
    db.execute(
        update(Token)
        .where(
            Token.purpose.in_(CONSOLE_PURPOSES),
            Token.subject_id == row.id,
            Token.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    audit.record(db, "coordinator.removed", row, at=now, actor=actor, email=row.email)
    db.flush()
    return row
