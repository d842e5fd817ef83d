"""Announcements from the console: previews, a test to oneself, a send that happens once, and
what became of past sends. The send itself is notices.announcements.announce, as `wg announce`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from emails import names
from service import audit, outbox
from service.db import insert_ignoring_duplicates
from service.models import (
    Announcement,
    ConsoleSubmission,
    Contact,
    ContactStatus,
    Language,
    Organisation,
    OrganisationStatus,
    OutboundEmail,
    OutboxStatus,
    Suppression,
)
from service.notices import announcements
from service.urls import external_url


@dataclass(frozen=True)
class Draft:
    """What the coordinator wrote."""

    subject_en: str
    body_en: str
    subject_km: str = ""
    body_km: str = ""

    @property
    def languages(self) -> list[str]:
        return ["en", "km"] if self.subject_km else ["en"]

    def shared(self) -> dict[str, dict[str, str]]:
        """The mail's text per language, as announce() builds it for members."""
        english = announcements.shared_part(self.subject_en, self.body_en)
        khmer = english
        if self.subject_km:
            khmer = announcements.shared_part(self.subject_km, self.body_km)
        return {"en": english, "km": khmer}


def new_submission_key() -> str:
    """A random key for one filled-in form: the send it leads to happens once."""
    return secrets.token_urlsafe(24)


def recipient_count(db: Session) -> int:
    """How many members an announcement goes to now: active, wanting news, not suppressed."""
    return (
        db.scalar(
            select(func.count())
            .select_from(Contact)
            .join(Organisation)
            .outerjoin(Suppression, Suppression.email == Contact.email)
            .where(
                Contact.status == ContactStatus.ACTIVE,
                Organisation.status == OrganisationStatus.ACTIVE,
                Contact.wants_announcements.is_(True),
                Suppression.id.is_(None),
            )
        )
        or 0
    )


def send_test(db: Session, draft: Draft, *, to: str, now: datetime) -> int:
    """Every language version to the coordinator alone, as members will get it."""
    preview = {
        "url": external_url("membership.unsubscribe", token="preview"),
        "mailto": "mailto:preview",
    }
    marker = secrets.token_hex(6)
    recipients = [
        {
            "to": to,
            "lang": lang,
            "dedupe_key": f"announce-test:{marker}:{lang}",
            "context": {"list_unsubscribe": preview},
        }
        for lang in draft.languages
    ]
    outbox.enqueue_many(db, names.ANNOUNCEMENT, recipients, shared=draft.shared(), now=now)
    audit.record(db, "announcement.tested", "announcement", at=now, languages=draft.languages)
    db.flush()
    return len(recipients)


def send_once(db: Session, draft: Draft, *, key: str, now: datetime) -> int:
    """Send to the members unless this key was sent already; the announcement's id either way.

    The key is claimed by an insert the database settles: of a double click, or a form sent
    again, exactly one request sends. Raises AnnouncementError as announce() does.
    """
    claimed = insert_ignoring_duplicates(
        db, ConsoleSubmission, ("key",), dict(key=key, result="", created_at=now)
    )
    submission = db.scalars(select(ConsoleSubmission).where(ConsoleSubmission.key == key)).one()
    if not claimed:
        return int(submission.result.rpartition(":")[2] or 0)
    report = announcements.announce(
        db,
        subject_en=draft.subject_en,
        body_en=draft.body_en,
        subject_km=draft.subject_km,
        body_km=draft.body_km,
        now=now,
    )
    submission.result = f"announcement:{report.announcement_id}"
    db.flush()
    return report.announcement_id


@dataclass(frozen=True)
class Delivery:
    """What became of one announcement's messages."""

    announcement: Announcement
    sent: int
    waiting: int
    not_sent: int
    bounced: int


def past(db: Session, *, limit: int = 30) -> list[Delivery]:
    """The latest announcements to members, with their delivery counts.

    Bounced: sent to an address that bounces now (a bounce is tied to the address).
    """
    items: Sequence[Announcement] = db.scalars(
        select(Announcement)
        .where(Announcement.test.is_(False))
        .order_by(Announcement.created_at.desc(), Announcement.id.desc())
        .limit(limit)
    ).all()
    bouncing = set(db.scalars(select(Contact.email).where(Contact.status == ContactStatus.BOUNCED)))
    found = []
    for item in items:
        rows = db.execute(
            select(OutboundEmail.status, OutboundEmail.recipient).where(
                OutboundEmail.topic == f"announcement:{item.id}"
            )
        ).all()
        sent = [recipient for status, recipient in rows if status is OutboxStatus.SENT]
        waiting = sum(1 for status, _ in rows if status is OutboxStatus.QUEUED)
        found.append(
            Delivery(
                announcement=item,
                sent=len(sent),
                waiting=waiting,
                not_sent=len(rows) - len(sent) - waiting,
                bounced=sum(1 for recipient in sent if recipient in bouncing),
            )
        )
    return found


def subject_for(item: Announcement, lang: str) -> str:
    """The announcement's subject in `lang`, English when it has no Khmer one."""
    return item.subject_km if lang == Language.KM and item.subject_km else item.subject_en
