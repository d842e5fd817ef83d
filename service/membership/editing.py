"""A coordinator's changes to the member list: a contact's details, a new address confirmed
by its owner, active or not, a lifted suppression, a colleague added, two organisations made
one. Each is audited; the console calls them (the actor comes from its request)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from emails import names
from service import audit, outbox, tokens
from service.config import settings
from service.membership import operations
from service.models import (
    Contact,
    ContactStatus,
    JoinRequest,
    Language,
    Organisation,
    OrganisationStatus,
    Suppression,
    Token,
    TokenPurpose,
)
from service.urls import external_url


class MemberError(ValueError):
    """A change that cannot be made; the message says why."""


@dataclass(frozen=True)
class ContactDetails:
    name: str
    role: str
    phone: str
    language: str
    email: str


def _address_in_use(db: Session, email: str) -> bool:
    known = db.scalar(select(Contact.id).where(Contact.email == email))
    return known is not None or operations.is_suppressed(db, email)


def edit_contact(db: Session, contact: Contact, details: ContactDetails, *, now: datetime) -> bool:
    """Save a contact's details; a new address is only asked for (its owner confirms it).
    True when a confirmation went to a new address."""
    changed = {}
    for name in ("name", "role", "phone"):
        if getattr(contact, name) != getattr(details, name):
            changed[name] = getattr(details, name)
            setattr(contact, name, getattr(details, name))
    if contact.language.value != details.language:
        contact.language = Language(details.language)
        changed["language"] = details.language
    if changed:
        audit.record(db, "contact.edited", contact, at=now, fields=sorted(changed))
    asked = details.email != contact.email
    if asked:
        request_address_change(db, contact, details.email, now=now)
    if not changed and not asked:
        raise MemberError("nothing would change")
    db.flush()
    return asked


def request_address_change(db: Session, contact: Contact, email: str, *, now: datetime) -> None:
    """Mail a link to the new address; the contact keeps the old one until it is pressed."""
    if _address_in_use(db, email):
        raise MemberError("the new address belongs to another contact or gets no mail")
    hours = settings().confirm_ttl_hours
    raw = tokens.issue(
        db,
        TokenPurpose.ADDRESS_CHANGE,
        contact.id,
        now=now,
        expires_at=now + timedelta(hours=hours),
        holder=email,
    )
    issued = tokens.issued(db, TokenPurpose.ADDRESS_CHANGE, contact.id)
    outbox.enqueue(
        db,
        names.CONTACT_ADDRESS_CONFIRM,
        to=email,
        to_name=contact.name,
        lang=contact.language,
        dedupe_key=f"address-change:{contact.public_id}:{issued}",
        context={
            "confirm_url": external_url("console.confirm_address", token=raw),
            "organisation_name": contact.organisation.name,
            "valid_hours": hours,
        },
        now=now,
    )
    audit.record(db, "contact.address_change_asked", contact, at=now, new_email=email)


def find_address_change(
    db: Session, raw: str, *, now: datetime
) -> tuple[tokens.Lookup, Contact | None]:
    lookup = tokens.find(db, TokenPurpose.ADDRESS_CHANGE, raw, now=now)
    contact = db.get(Contact, lookup.token.subject_id) if lookup.token else None
    return lookup, contact


def confirm_address_change(db: Session, raw: str, *, now: datetime) -> Contact | None:
    """The owner of the new address pressed the button: the contact uses it from now on.
    None when the link is unknown, used, expired, or the address was taken meanwhile."""
    lookup, contact = find_address_change(db, raw, now=now)
    if not lookup.valid or contact is None:
        return None
    new = lookup.token.holder  # type: ignore[union-attr]
    if _address_in_use(db, new) or not tokens.spend(db, lookup.token, now=now):  # type: ignore[arg-type]
        return None
    old = contact.email
    contact.email = new
    db.execute(
        update(Token)
        .where(Token.holder == old, Token.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )  # links in mail to the old address stop
    audit.record(db, "contact.address_changed", contact, at=now, actor=new, old_email=old)
    db.flush()
    return contact


def set_active(db: Session, contact: Contact, *, active: bool, now: datetime) -> None:
    """Deactivate a member (no mail until reactivated), or reactivate one."""
    allowed = ContactStatus.INACTIVE if active else ContactStatus.ACTIVE
    if contact.status is not allowed:
        raise MemberError(f"a contact who is {contact.status.value} cannot change so")
    contact.status = ContactStatus.ACTIVE if active else ContactStatus.INACTIVE
    audit.record(db, "contact.reactivated" if active else "contact.deactivated", contact, at=now)
    db.flush()


def lift_suppression(db: Session, contact: Contact, *, reason: str, now: datetime) -> None:
    """Mail the address again (it unsubscribed or bounced), for a reason that is recorded."""
    suppression = db.scalar(select(Suppression).where(Suppression.email == contact.email))
    if suppression is None and contact.status not in outbox.SUPPRESSED_STATUSES:
        raise MemberError("the address is not suppressed")
    was = suppression.reason if suppression is not None else contact.status.value
    if suppression is not None:
        db.delete(suppression)
    if contact.status in outbox.SUPPRESSED_STATUSES:
        contact.status = ContactStatus.ACTIVE
    contact.bounce_score = 0.0
    audit.record(db, "suppression.lifted", contact, at=now, reason=reason, was=was)
    db.flush()


def add_colleague(
    db: Session,
    organisation: Organisation,
    *,
    name: str,
    email: str,
    language: str,
    actor: str,
    now: datetime,
) -> Contact:
    """A new representative, asked to confirm their own address before any other mail."""
    if _address_in_use(db, email):
        raise MemberError("the address belongs to another contact or gets no mail")
    contact = Contact(
        organisation=organisation,
        name=name,
        email=email,
        language=Language(language),
        status=ContactStatus.UNCONFIRMED,
        created_at=now,
    )
    db.add(contact)
    db.flush()
    audit.record(db, "contact.named", contact, at=now)
    operations.ask_to_confirm(db, contact, named_by=actor, now=now)
    db.flush()
    return contact


def merge_organisations(
    db: Session, source: Organisation, target: Organisation, *, now: datetime
) -> int:
    """Make `source` part of `target`: its contacts and requests move, then it is deleted.
    Returns how many contacts moved."""
    if source.id == target.id:
        raise MemberError("an organisation cannot be merged into itself")
    moved = list(source.contacts)
    for contact in moved:
        contact.organisation = target
    db.execute(
        update(JoinRequest)
        .where(JoinRequest.organisation_id == source.id)
        .values(organisation_id=target.id)
    )
    if target.status is OrganisationStatus.INACTIVE and moved:
        target.status = OrganisationStatus.ACTIVE
    audit.record(
        db,
        "organisation.merged",
        target,
        at=now,
        merged=source.name,
        into=target.name,
        contacts=len(moved),
    )
    db.flush()
    db.delete(source)
    db.flush()
    return len(moved)
