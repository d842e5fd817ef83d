"""Removing a person with erasure: their personal data goes from every table, the outbox and
the audit log included; the audit keeps a pseudonymous trace (a keyed hash of the address).

Their contact, invitations, links and suppression are deleted. Everywhere else, any text that
holds their address, name or phone (a digest's list, a join request, a reply they sent, an
audit detail) is replaced by ERASED; mail still waiting to go to them is withdrawn.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, LargeBinary, String, Text, delete, or_, select, update
from sqlalchemy.orm import Session

from service import audit
from service.config import settings
from service.models import (
    Attendance,
    AuditEvent,
    Base,
    Contact,
    Coordinator,
    InboundMessage,
    Invitation,
    OutboundEmail,
    OutboxStatus,
    RateLimitCounter,
    Suppression,
    Token,
    TokenPurpose,
)

ERASED = "[erased]"
# Tables whose rows are handled one by one below, or that hold no member's words.
HANDLED = {Contact, Token, Invitation, Attendance, Suppression, Coordinator, RateLimitCounter}
CONTACT_PURPOSES = (
    TokenPurpose.UNSUBSCRIBE,
    TokenPurpose.CONFIRM_CONTACT,
    TokenPurpose.ADDRESS_CHANGE,
)


def pseudonym(email: str) -> str:
    """The same address always gives the same trace; without the secret key, no address."""
    key = settings().secret_key.encode("utf-8")
    return "erased-" + hmac.new(key, email.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def _needles(contact: Contact) -> list[str]:
    found = [contact.email.lower()]
    if len(contact.name.strip()) >= 4:
        found.append(contact.name.strip().lower())
    digits = "".join(ch for ch in contact.phone if ch.isdigit())
    if len(digits) >= 6:
        found.append(contact.phone.strip().lower())
    return found


def scrub(value: Any, needles: list[str], exact: set[str]) -> Any:
    """`value` with the person's address, name and phone replaced by ERASED wherever they
    stand in it (in dicts and lists too). Only the part goes, so keys stay unique."""
    if isinstance(value, str):
        if value.strip().lower() in exact:
            return ERASED
        for needle in needles:
            value = re.sub(re.escape(needle), ERASED, value, flags=re.IGNORECASE)
        return value
    if isinstance(value, dict):
        return {key: scrub(item, needles, exact) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, needles, exact) for item in value]
    return value


def erase_contact(db: Session, contact: Contact, *, actor: str, now: datetime) -> str:
    """Erase a person; returns the pseudonym the audit keeps of them."""
    trace = pseudonym(contact.email)
    needles = _needles(contact)
    exact = {contact.name.strip().lower()} if contact.name.strip() else set()
    invitations = list(db.scalars(select(Invitation.id).where(Invitation.contact_id == contact.id)))
    if invitations:
        db.execute(delete(Attendance).where(Attendance.invitation_id.in_(invitations)))
        db.execute(
            delete(Token).where(
                Token.purpose.in_([TokenPurpose.RSVP, TokenPurpose.UNSUBSCRIBE_ADDRESS]),
                Token.subject_id.in_(invitations),
            )
        )
        db.execute(delete(Invitation).where(Invitation.id.in_(invitations)))
    db.execute(
        delete(Token).where(
            or_(
                Token.holder == contact.email,
                Token.purpose.in_(CONTACT_PURPOSES) & (Token.subject_id == contact.id),
            )
        )
    )
    db.execute(
        update(Invitation)
        .where(Invitation.substitute_email == contact.email)
        .values(substitute_name="", substitute_email="")
    )
    db.execute(delete(Suppression).where(Suppression.email == contact.email))
    _withdraw_mail_to(db, contact.email, trace)
    db.execute(delete(InboundMessage).where(InboundMessage.sender == contact.email))
    db.execute(update(AuditEvent).where(AuditEvent.actor == contact.email).values(actor=trace))
    db.flush()
    db.delete(contact)
    db.flush()
    for model in _models_with_text():
        _scrub_table(db, model, needles, exact)
    audit.record(db, "contact.erased", "contact", at=now, actor=actor, pseudonym=trace)
    db.flush()
    return trace


def _withdraw_mail_to(db: Session, email: str, trace: str) -> None:
    """Mail to the person keeps its row (delivery counts stay true) but not their address."""
    for row in db.scalars(select(OutboundEmail).where(OutboundEmail.recipient == email)):
        row.recipient = f"{trace}@erased.invalid"
        row.recipient_name = ""
        row.context = {}
        row.raw = None
        if row.status is OutboxStatus.QUEUED:
            row.status = OutboxStatus.EXPIRED
            row.last_error = "withdrawn: the recipient was erased"


def _models_with_text() -> list[type[Base]]:
    models = [mapper.class_ for mapper in Base.registry.mappers]
    return [model for model in models if model not in HANDLED]


def _scrub_table(db: Session, model: type[Base], needles: list[str], exact: set[str]) -> None:
    """Replace the person's data in every text, JSON and binary column of `model`."""
    columns = [
        column
        for column in model.__table__.columns
        if isinstance(column.type, String | Text | JSON | LargeBinary) and not column.primary_key
    ]
    if not columns:
        return
    for row in db.scalars(select(model)):
        for column in columns:
            value = getattr(row, column.key)
            if isinstance(value, bytes):
                text = value.decode("utf-8", errors="replace")
                if any(needle in text.lower() for needle in needles):
                    setattr(row, column.key, None if column.nullable else b"")
                continue
            cleaned = scrub(value, needles, exact)
            if cleaned != value:
                setattr(row, column.key, cleaned)
