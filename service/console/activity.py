"""The audit log as people read it: what happened, to whom (names, not numbers), by whom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import (
    Announcement,
    AuditEvent,
    Contact,
    Coordinator,
    Invitation,
    JoinRequest,
    Meeting,
    MeetingSeries,
    Organisation,
    Suppression,
)

KINDS = (
    "join", "contact", "organisation", "meeting", "series", "rsvp", "announcement",
    "suppression", "coordinator", "console", "outbox",
)  # fmt: skip
PAGE_SIZE = 100


@dataclass(frozen=True)
class Line:
    """One event, readable."""

    at: datetime
    action: str
    kind: str
    about: str
    actor: str
    detail: dict[str, Any]


def _subject_name(db: Session, subject_type: str, subject_id: int | None) -> str:
    """The name of what an event is about; "" when it is gone (erased, merged)."""
    if subject_id is None:
        return ""
    found = db.get(_MODELS[subject_type], subject_id) if subject_type in _MODELS else None
    if found is None:
        return ""
    if isinstance(found, Contact):
        return f"{found.name} ({found.organisation.name})"
    if isinstance(found, Organisation):
        return found.name
    if isinstance(found, JoinRequest):
        return str(found.submitted.get("organisation_name", ""))
    if isinstance(found, Meeting | MeetingSeries):
        return found.title_en
    if isinstance(found, Invitation):
        return f"{found.contact.name}, {found.meeting.title_en}"
    if isinstance(found, Announcement):
        return found.subject_en
    if isinstance(found, Coordinator | Suppression):
        return found.email
    return ""


_MODELS: dict[str, type] = {
    "contact": Contact,
    "organisation": Organisation,
    "joinrequest": JoinRequest,
    "meeting": Meeting,
    "meetingseries": MeetingSeries,
    "invitation": Invitation,
    "announcement": Announcement,
    "coordinator": Coordinator,
    "suppression": Suppression,
}


def _actor_name(db: Session, actor: str, names: dict[str, str]) -> str:
    """A contact's name beside their address; a coordinator's address as it is."""
    if not actor or "@" not in actor:
        return actor
    if actor not in names:
        contact = db.scalar(select(Contact).where(Contact.email == actor))
        names[actor] = f"{contact.name} <{actor}>" if contact else actor
    return names[actor]


def events(
    db: Session,
    *,
    kind: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 0,
) -> list[Line]:
    """The newest events first, PAGE_SIZE at a time, of one kind and between two moments."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if kind in KINDS:
        query = query.where(AuditEvent.action.startswith(f"{kind}."))
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    names: dict[str, str] = {}
    return [
        Line(
            at=event.at,
            action=event.action,
            kind=event.action.partition(".")[0],
            about=_subject_name(db, event.subject_type, event.subject_id),
            actor=_actor_name(db, event.actor, names),
            detail=event.detail or {},
        )
        for event in db.scalars(query.offset(page * PAGE_SIZE).limit(PAGE_SIZE))
    ]
