"""Joining the group: request, confirm the address, coordinator review, welcome or decline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from emails import names
from service import audit, outbox, tokens
from service.config import settings
from service.db import insert_ignoring_duplicates
from service.models import (
    Contact,
    ContactStatus,
    JoinRequest,
    Language,
    Organisation,
    OrganisationKind,
    OrganisationStatus,
    RequestStatus,
    Suppression,
    Token,
    TokenPurpose,
)
from service.urls import external_url

REVIEW_TTL = timedelta(days=60)


@dataclass(frozen=True)
class Application:
    """What the join form collected, already validated."""

    organisation_name: str
    kind: str
    website: str
    represented_in_cambodia: bool
    cambodia_location: str
    name: str
    role: str
    email: str
    phone: str
    language: str
    work_summary: str
    representatives: list[dict[str, str]] = field(default_factory=list)


def _is_known(db: Session, email: str) -> bool:
    open_request = db.scalar(
        select(JoinRequest.id).where(
            JoinRequest.email == email,
            JoinRequest.status.in_([RequestStatus.UNCONFIRMED, RequestStatus.PENDING]),
        )
    )
    member = db.scalar(
        select(Contact.id).where(Contact.email == email, Contact.status == ContactStatus.ACTIVE)
    )
    return bool(open_request or member)


def submit_join_request(
    db: Session, application: Application, *, now: datetime
) -> JoinRequest | None:
    """Record a request and ask the applicant to confirm their address.

    A request from an address that is already waiting or already a member changes nothing
    and sends nothing, and the applicant sees the same page either way, so the answer
    never reveals who is known. Returns None in that case.
    """
    if _is_known(db, application.email):
        return None
    request = JoinRequest(
        email=application.email,
        language=Language(application.language),
        submitted=asdict(application),
        status=RequestStatus.UNCONFIRMED,
        created_at=now,
    )
    db.add(request)
    db.flush()
    audit.record(db, "join.submitted", request, at=now, actor=application.email)
    _send_confirmation(db, request, now=now)
    return request


def _send_confirmation(db: Session, request: JoinRequest, *, now: datetime) -> None:
    hours = settings().confirm_ttl_hours
    raw = tokens.issue(
        db,
        TokenPurpose.CONFIRM,
        request.id,
        now=now,
        expires_at=now + timedelta(hours=hours),
        holder=request.email,
    )
    # One message per link: a resent link is a new message, a repeated call is not.
    issued = db.scalar(
        select(func.count())
        .select_from(Token)
        .where(Token.purpose == TokenPurpose.CONFIRM, Token.subject_id == request.id)
    )
    outbox.enqueue(
        db,
        names.JOIN_CONFIRM,
        to=request.email,
        to_name=request.submitted["name"],
        lang=request.language,
        dedupe_key=f"join-confirm:{request.public_id}:{issued}",
        context={
            "confirm_url": external_url("membership.confirm", token=raw),
            "organisation_name": request.submitted["organisation_name"],
            "valid_hours": hours,
        },
        now=now,
    )


def find_by_token(
    db: Session, purpose: TokenPurpose, raw: str, *, now: datetime
) -> tuple[tokens.Lookup, JoinRequest | None]:
    lookup = tokens.find(db, purpose, raw, now=now)
    request = db.get(JoinRequest, lookup.token.subject_id) if lookup.token else None
    return lookup, request


def confirm_address(db: Session, raw: str, *, now: datetime) -> JoinRequest | None:
    """Use a confirmation token once: the request goes to the coordinators for review.

    None when the token is unknown, used or expired; the route tells which apart.
    """
    lookup, request = find_by_token(db, TokenPurpose.CONFIRM, raw, now=now)
    if not lookup.valid or request is None or request.status is not RequestStatus.UNCONFIRMED:
        return None
    lookup.token.used_at = now  # type: ignore[union-attr]
    request.status = RequestStatus.PENDING
    request.confirmed_at = now
    audit.record(db, "join.confirmed", request, at=now, actor=request.email)
    for coordinator in settings().coordinator_emails:
        raw_review = tokens.issue(
            db,
            TokenPurpose.REVIEW,
            request.id,
            now=now,
            expires_at=now + REVIEW_TTL,
            holder=coordinator,
        )
        outbox.enqueue(
            db,
            names.JOIN_REQUEST_RECEIVED,
            to=coordinator,
            lang=settings().coordinator_language,
            dedupe_key=f"join-review:{request.public_id}:{coordinator}",
            context={
                "review_url": external_url("membership.review", token=raw_review),
                **request_details(request),
            },
            now=now,
        )
    db.flush()
    return request


def request_details(request: JoinRequest) -> dict[str, object]:
    """What the coordinator's mail shows of a request, as plain JSON-able values."""
    submitted = request.submitted
    return {
        "request": submitted,
        "submitted_at": request.created_at.isoformat(),
        "zone": settings().timezone,
    }


def resend_confirmation(db: Session, raw: str, *, now: datetime) -> bool:
    """Send a fresh link for an expired one, while the request still waits for it."""
    lookup, request = find_by_token(db, TokenPurpose.CONFIRM, raw, now=now)
    if lookup.token is None or request is None or request.status is not RequestStatus.UNCONFIRMED:
        return False
    if lookup.token.used_at is not None:
        return False
    lookup.token.used_at = now  # the old link is spent; the new one replaces it
    _send_confirmation(db, request, now=now)
    audit.record(db, "join.confirmation_resent", request, at=now, actor=request.email)
    db.flush()
    return True


def decide(
    db: Session,
    request: JoinRequest,
    *,
    approve: bool,
    reviewer: str,
    note: str,
    now: datetime,
) -> bool:
    """Approve or decline a pending request, once. False when it was already decided."""
    if request.status is not RequestStatus.PENDING:
        return False
    request.decided_at = now
    request.reviewed_by = reviewer
    request.review_note = note
    if approve:
        _approve(db, request, now=now)
    else:
        request.status = RequestStatus.DECLINED
        outbox.enqueue(
            db,
            names.JOIN_DECLINED,
            to=request.email,
            to_name=request.submitted["name"],
            lang=request.language,
            dedupe_key=f"join-declined:{request.public_id}",
            context={"organisation_name": request.submitted["organisation_name"], "note": note},
            now=now,
        )
        audit.record(db, "join.declined", request, at=now, actor=reviewer, note=note)
    db.flush()
    return True


def _approve(db: Session, request: JoinRequest, *, now: datetime) -> None:
    submitted = request.submitted
    organisation = Organisation(
        name=submitted["organisation_name"],
        kind=OrganisationKind(submitted["kind"]),
        website=submitted["website"],
        represented_in_cambodia=submitted["represented_in_cambodia"],
        cambodia_location=submitted["cambodia_location"],
        work_summary=submitted["work_summary"],
        status=OrganisationStatus.ACTIVE,
        created_at=now,
    )
    db.add(organisation)
    db.flush()
    request.status = RequestStatus.APPROVED
    request.organisation_id = organisation.id
    audit.record(db, "join.approved", request, at=now, actor=request.reviewed_by)
    audit.record(db, "organisation.created", organisation, at=now, actor=request.reviewed_by)

    language = Language(submitted["language"])
    applicant = {key: submitted[key] for key in ("name", "email", "role", "phone")}
    people = [(applicant, True)] + [
        ({"name": p["name"], "email": p["email"], "role": "", "phone": ""}, False)
        for p in submitted["representatives"]
    ]
    for person, confirmed in people:
        contact = _activate_contact(
            db,
            organisation,
            person,
            language,
            confirmed=confirmed,
            actor=request.reviewed_by,
            now=now,
        )
        if contact is None:
            continue
        outbox.enqueue(
            db,
            names.JOIN_WELCOME,
            to=contact.email,
            to_name=contact.name,
            lang=contact.language,
            dedupe_key=f"join-welcome:{request.public_id}:{contact.email}",
            context={"organisation_name": organisation.name},
            now=now,
        )


def _activate_contact(
    db: Session,
    organisation: Organisation,
    person: dict[str, str],
    language: Language,
    *,
    confirmed: bool,
    actor: str,
    now: datetime,
) -> Contact | None:
    """A new active contact, or an existing one moved to this organisation and reactivated.

    A confirmed request is the one way back for an address that unsubscribed or bounced,
    so the applicant's suppression is lifted; a further representative named on the form
    never confirmed anything, so a suppressed one stays as they are (None).
    """
    suppression = db.scalar(select(Suppression).where(Suppression.email == person["email"]))
    if suppression is not None:
        if not confirmed:
            return None
        db.delete(suppression)
    contact = db.scalar(select(Contact).where(Contact.email == person["email"]))
    if contact is None:
        contact = Contact(email=person["email"], created_at=now)
        db.add(contact)
    elif not confirmed and contact.status in outbox.SUPPRESSED_STATUSES:
        return None
    contact.organisation = organisation
    contact.name = person["name"]
    contact.role = person["role"] or contact.role or ""
    contact.phone = person["phone"] or contact.phone or ""
    contact.language = language
    contact.status = ContactStatus.ACTIVE
    db.flush()
    audit.record(db, "contact.activated", contact, at=now, actor=actor)
    return contact


def unsubscribe(db: Session, contact: Contact, *, now: datetime, via: str) -> bool:
    """Stop all list mail to a contact at once; True when this call changed anything.

    The address goes on the suppression list, which the sender checks again just before
    each message, so mail already queued is not sent either.
    """
    changed = contact.status is not ContactStatus.UNSUBSCRIBED
    contact.status = ContactStatus.UNSUBSCRIBED
    inserted = insert_ignoring_duplicates(
        db,
        Suppression,
        ("email",),
        dict(email=contact.email, reason="unsubscribed", created_at=now),
    )
    if changed or inserted:
        audit.record(db, "contact.unsubscribed", contact, at=now, actor=contact.email, via=via)
    db.flush()
    return changed or bool(inserted)


def set_preferences(
    db: Session, contact: Contact, *, language: Language, announcements: bool, now: datetime
) -> None:
    """A member's choice of language and of news besides meeting mail."""
    before = {"language": contact.language.value, "announcements": contact.wants_announcements}
    contact.language = language
    contact.wants_announcements = announcements
    after = {"language": language.value, "announcements": announcements}
    if after != before:
        audit.record(db, "contact.preferences", contact, at=now, actor=contact.email, **after)
    db.flush()
