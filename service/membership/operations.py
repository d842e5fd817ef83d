"""Joining the group: request, confirm the address, coordinator review, welcome or decline."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from emails import names
from emails.addresses import split_mailbox
from service import audit, coordinators, outbox, tokens
from service.config import settings
from service.db import insert_ignoring_duplicates
from service.membership import links
from service.models import (
    Contact,
    ContactStatus,
    JoinRequest,
    Language,
    Organisation,
    OrganisationKind,
    OrganisationStatus,
    OutboundEmail,
    OutboxStatus,
    RequestStatus,
    Suppression,
    TokenPurpose,
    new_public_id,
)
from service.urls import external_url

REVIEW_TTL = timedelta(days=60)
# Confirmation links one address may receive within LINK_WINDOW: enough for a lost message
# and a second try, too few for anyone to flood a stranger's mailbox through the form.
FRESH_LINKS_PER_HOUR = 3
LINK_WINDOW = timedelta(hours=1)


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


ALREADY_A_MEMBER = "the address is already a member"


def why_no_link(db: Session, email: str, *, now: datetime) -> str:
    """Why a confirmation link must not go to `email` now; "" when it may.

    One query, the same for every address, known or not.
    """
    member = (
        select(func.count())
        .select_from(Contact)
        .where(Contact.email == email, Contact.status == ContactStatus.ACTIVE)
        .scalar_subquery()
    )
    under_review = (
        select(func.count())
        .select_from(JoinRequest)
        .where(JoinRequest.email == email, JoinRequest.status == RequestStatus.PENDING)
        .scalar_subquery()
    )
    recent_links = (
        select(func.count())
        .select_from(OutboundEmail)
        .where(
            OutboundEmail.recipient == email,
            OutboundEmail.template == names.JOIN_CONFIRM,
            OutboundEmail.status != OutboxStatus.EXPIRED,
            OutboundEmail.created_at > now - LINK_WINDOW,
        )
        .scalar_subquery()
    )
    is_member, is_under_review, links = db.execute(select(member, under_review, recent_links)).one()
    if is_member:
        return ALREADY_A_MEMBER
    if is_under_review:
        return "the address already has a request under review"
    if links >= FRESH_LINKS_PER_HOUR:
        return f"{links} links went to the address within the hour"
    return ""


def submit_join_request(db: Session, application: Application, *, now: datetime) -> JoinRequest:
    """Record a request and send its applicant a link to confirm the address.

    An address still waiting for confirmation gets a fresh link (its earlier one may be lost,
    expired, or asked for by someone else), at most FRESH_LINKS_PER_HOUR an hour. A member's
    address, or one under review, gets none: its request is closed at once and its message
    written as not sent. Either way the same statements run and the same page follows, so
    neither the answer nor its timing tells whether an address is known.
    """
    reason = why_no_link(db, application.email, now=now)
    request = JoinRequest(
        email=application.email,
        language=Language(application.language),
        submitted=asdict(application),
        status=RequestStatus.EXPIRED if reason else RequestStatus.UNCONFIRMED,
        created_at=now,
    )
    db.add(request)
    db.flush()
    audit.record(db, "join.submitted", request, at=now, actor=application.email, not_sent=reason)
    send_confirmation(db, request, now=now, skipped_because=reason)
    return request


# How long after a member used the join form the answer can still go out (after downtime).
KNOWN_MEMBER_ANSWER_WINDOW = timedelta(days=2)


def answer_members_who_used_the_join_form(db: Session, *, now: datetime) -> int:
    """Answer each member who filled in the join form with their own address: their page, and
    a word to the coordinators. Run by the scheduler, not in the request, so that submitting
    the form costs the same whether or not the address is a member's. Returns how many."""
    marker = f"not sent: {ALREADY_A_MEMBER}"
    unsent = db.scalars(
        select(OutboundEmail.dedupe_key).where(
            # status and not_before first: the outbox's (status, not_before) index finds them.
            OutboundEmail.status == OutboxStatus.EXPIRED,
            OutboundEmail.not_before > now - KNOWN_MEMBER_ANSWER_WINDOW,
            OutboundEmail.template == names.JOIN_CONFIRM,
            OutboundEmail.last_error == marker,
        )
    ).all()
    requests = {key.split(":")[1] for key in unsent}  # join-confirm:<request>:<n>
    answered = set(
        db.scalars(
            select(OutboundEmail.dedupe_key).where(
                OutboundEmail.dedupe_key.in_([f"join-known:{r}" for r in requests])
            )
        )
    )
    count = 0
    for public_id in sorted(requests):
        if f"join-known:{public_id}" in answered:
            continue
        request = db.scalars(select(JoinRequest).where(JoinRequest.public_id == public_id)).one()
        _point_member_to_their_page(db, request, now=now)
        count += 1
    return count


def _point_member_to_their_page(db: Session, request: JoinRequest, *, now: datetime) -> None:
    """A member who fills in the join form again (often to add a colleague) gets, at their own
    address, their membership page with its "add a colleague" part; the coordinators are told.

    Nothing is changed on the form's word: whoever typed the address may not be its owner.
    At most one such message an hour to the member, and one a day to the coordinators."""
    active = Contact.status == ContactStatus.ACTIVE
    contact = db.scalars(select(Contact).where(Contact.email == request.email, active)).first()
    key = f"join-known:{request.public_id}"
    if contact is None:  # no longer a member: nothing to point to; the row marks it answered
        outbox.enqueue(
            db, names.JOIN_ALREADY_MEMBER, to=request.email, lang=request.language,
            dedupe_key=key, context={}, now=now, skipped_because="no longer a member",
        )  # fmt: skip
        return
    recent = db.scalar(
        select(func.count()).where(
            OutboundEmail.recipient == contact.email,
            OutboundEmail.template == names.JOIN_ALREADY_MEMBER,
            OutboundEmail.status != OutboxStatus.EXPIRED,
            OutboundEmail.created_at > now - LINK_WINDOW,
        )
    )
    if recent:
        outbox.enqueue(
            db, names.JOIN_ALREADY_MEMBER, to=contact.email, lang=contact.language,
            dedupe_key=key, context={}, now=now, skipped_because="one went out within the hour",
        )  # fmt: skip
        return
    submitted = request.submitted
    page = links.for_message(db, contact, now=now)["member_url"]
    outbox.enqueue(
        db,
        names.JOIN_ALREADY_MEMBER,
        to=contact.email,
        to_name=contact.name,
        lang=contact.language,
        dedupe_key=key,
        context={
            "organisation_name": contact.organisation.name,
            "member_url": page,
            "colleague_url": f"{page}#colleague",
            "named": submitted["representatives"],
        },
        now=now,
    )
    for coordinator, coordinator_language in coordinators.recipients(db):
        outbox.enqueue(
            db,
            names.JOIN_KNOWN_MEMBER,
            to=coordinator,
            lang=coordinator_language,
            dedupe_key=f"join-known:{contact.public_id}:{now:%Y%m%d}:{coordinator}",
            context={
                "member_name": contact.name,
                "member_email": contact.email,
                "organisation_name": contact.organisation.name,
                "request": {k: submitted[k] for k in ("organisation_name", "name")},
                "named": submitted["representatives"],
                "reply_to": contact.email,
                "reply_to_name": contact.name,
            },
            now=now,
        )


def send_confirmation(
    db: Session, request: JoinRequest, *, now: datetime, skipped_because: str = ""
) -> None:
    """Queue the link to confirm `request`; with `skipped_because`, a dead link, not sent."""
    hours = settings().confirm_ttl_hours
    raw = tokens.issue(
        db,
        TokenPurpose.CONFIRM,
        request.id,
        now=now,
        expires_at=now if skipped_because else now + timedelta(hours=hours),
        holder=request.email,
    )
    # One message per link: a resent link is a new message, a repeated call is not.
    issued = tokens.issued(db, TokenPurpose.CONFIRM, request.id)
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
        skipped_because=skipped_because,
    )


def _move(
    db: Session, request: JoinRequest, before: RequestStatus, after: RequestStatus, **values: object
) -> bool:
    """Change the request's status from `before` to `after`; False when it was not `before`.

    A conditional update: of two sessions doing this at once, the second waits for the
    first's row lock and then finds nothing to change, on PostgreSQL as on SQLite.
    """
    changed = db.execute(
        update(JoinRequest)
        .where(JoinRequest.id == request.id, JoinRequest.status == before)
        .values(status=after, **values)
        .returning(JoinRequest.id)
        .execution_options(synchronize_session=False)
    ).first()
    db.refresh(request)
    return changed is not None


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
    if not lookup.valid or request is None:
        return None
    if not _move(db, request, RequestStatus.UNCONFIRMED, RequestStatus.PENDING, confirmed_at=now):
        return None
    lookup.token.used_at = now  # type: ignore[union-attr]
    # The address is proven: its other unconfirmed requests (a lost link's, or a request
    # someone else made with it) are closed, so only this one goes to the coordinators.
    db.execute(
        update(JoinRequest)
        .where(
            JoinRequest.email == request.email,
            JoinRequest.status == RequestStatus.UNCONFIRMED,
            JoinRequest.id != request.id,
        )
        .values(status=RequestStatus.EXPIRED)
        .execution_options(synchronize_session=False)
    )
    audit.record(db, "join.confirmed", request, at=now, actor=request.email)
    members = already_members(db, request)
    for coordinator, coordinator_language in coordinators.recipients(db):
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
            lang=coordinator_language,
            dedupe_key=f"join-review:{request.public_id}:{coordinator}",
            context={
                "review_url": external_url("membership.review", token=raw_review),
                # A coordinator's reply goes to the applicant, not back to the service.
                "reply_to": request.email,
                "reply_to_name": request.submitted["name"],
                **request_details(request),
                "already_members": [
                    {"email": email, "organisation": name} for email, name in members.items()
                ],
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


def already_members(db: Session, request: JoinRequest) -> dict[str, str]:
    """The addresses of a request that belong to another organisation already: address ->
    its name. The review page and the coordinator's mail say so; approving never moves them."""
    addresses = [request.email, *(p["email"] for p in request.submitted["representatives"])]
    found = db.execute(
        select(Contact.email, Organisation.name, Organisation.id)
        .join(Organisation, Contact.organisation_id == Organisation.id)
        .where(Contact.email.in_(addresses))
    ).all()
    return {email: name for email, name, owner in found if owner != request.organisation_id}


def resend_confirmation(db: Session, raw: str, *, now: datetime) -> bool:
    """Send a fresh link for an expired one, while the request still waits for it.

    Within FRESH_LINKS_PER_HOUR an hour for the address; past it nothing is sent and the old
    link stays as it was, but the answer is the same.
    """
    lookup, request = find_by_token(db, TokenPurpose.CONFIRM, raw, now=now)
    if lookup.token is None or request is None or request.status is not RequestStatus.UNCONFIRMED:
        return False
    if lookup.token.used_at is not None:
        return False
    if why_no_link(db, request.email, now=now):
        return True
    lookup.token.used_at = now  # the old link is spent; the new one replaces it
    send_confirmation(db, request, now=now)
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
    into: Organisation | None = None,
) -> bool:
    """Approve or decline a pending request, once. False when it was already decided.

    The decision is taken by a conditional update, so when two coordinators press at once
    one decision wins, and only its organisation, contacts and email come to be.
    """
    decision = RequestStatus.APPROVED if approve else RequestStatus.DECLINED
    values = dict(decided_at=now, reviewed_by=reviewer, review_note=note)
    if not _move(db, request, RequestStatus.PENDING, decision, **values):
        return False
    if approve:
        _approve(db, request, now=now, into=into)
    else:
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


def comparable_name(name: str) -> str:
    """An organisation's name as names are compared: case, spaces and punctuation ignored
    ("KK-Test  Org." is "kktestorg"); Khmer vowel signs and subscripts are kept."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LMN")


def same_name_organisation(db: Session, request: JoinRequest) -> Organisation | None:
    """A member organisation whose name is the request's, but for case, spaces and
    punctuation: approving should then ask whether the people join it. Active ones first."""
    wanted = comparable_name(request.submitted["organisation_name"])
    found = [
        organisation
        for organisation in db.scalars(select(Organisation).order_by(Organisation.id))
        if comparable_name(organisation.name) == wanted
    ]
    found.sort(key=lambda o: o.status is not OrganisationStatus.ACTIVE)
    return found[0] if found else None


def _approve(
    db: Session, request: JoinRequest, *, now: datetime, into: Organisation | None = None
) -> None:
    """The organisation (a new one, or `into`, an existing one the coordinator chose), its
    applicant as an active contact, and its further representatives asked to confirm their
    own addresses. No member of another organisation is touched."""
    submitted = request.submitted
    actor = request.reviewed_by
    if into is not None:
        organisation = into
        if organisation.status is not OrganisationStatus.ACTIVE:
            organisation.status = OrganisationStatus.ACTIVE
            audit.record(db, "organisation.reactivated", organisation, at=now, actor=actor)
        request.organisation_id = organisation.id
        audit.record(db, "join.approved", request, at=now, actor=actor, into=organisation.id)
    else:
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
        request.organisation_id = organisation.id
        audit.record(db, "join.approved", request, at=now, actor=actor)
        audit.record(db, "organisation.created", organisation, at=now, actor=actor)

    language = Language(submitted["language"])
    applicant = {key: submitted[key] for key in ("name", "email", "role", "phone")}
    contact = _activate_applicant(db, organisation, applicant, language, actor=actor, now=now)
    outbox.enqueue(
        db,
        names.JOIN_WELCOME,
        to=contact.email,
        to_name=contact.name,
        lang=contact.language,
        dedupe_key=f"join-welcome:{request.public_id}:{contact.email}",
        context=_welcome_context(db, contact, now=now),
        now=now,
    )
    for person in submitted["representatives"]:
        name_colleague(
            db, organisation, person, language, named_by=submitted["name"], actor=actor, now=now
        )


def _welcome_context(db: Session, contact: Contact, *, now: datetime) -> dict[str, object]:
    """What a welcome says: the organisation, and a way to stop the mail that follows."""
    return {
        "organisation_name": contact.organisation.name,
        "list_unsubscribe": unsubscribe_links(db, contact, now=now),
        **links.for_message(db, contact, now=now),
    }


def _activate_applicant(
    db: Session,
    organisation: Organisation,
    person: dict[str, str],
    language: Language,
    *,
    actor: str,
    now: datetime,
) -> Contact:
    """The applicant as an active contact of `organisation`.

    The applicant confirmed the address, so this is the one way back for an address that
    unsubscribed or bounced: its suppression is lifted, and a contact it already had (only
    an inactive one can apply) follows its owner's request.
    """
    suppression = db.scalar(select(Suppression).where(Suppression.email == person["email"]))
    if suppression is not None:
        db.delete(suppression)
    contact = db.scalar(select(Contact).where(Contact.email == person["email"]))
    if contact is None:
        contact = Contact(email=person["email"], created_at=now)
        db.add(contact)
    contact.organisation = organisation
    contact.name = person["name"]
    contact.role = person["role"] or contact.role or ""
    contact.phone = person["phone"] or contact.phone or ""
    contact.language = language
    contact.status = ContactStatus.ACTIVE
    db.flush()
    audit.record(db, "contact.activated", contact, at=now, actor=actor)
    return contact


def name_colleague(
    db: Session,
    organisation: Organisation,
    person: dict[str, str],
    language: Language,
    *,
    named_by: str,
    actor: str,
    now: datetime,
) -> None:
    """A colleague named on the join form, or by a member on their page: asked to confirm
    their own address.

    An address that is already a contact (of any organisation, in any state) is left exactly
    as it is, and a suppressed one gets no mail: naming someone on a form proves nothing.
    """
    email = person["email"]
    if db.scalar(select(Contact.id).where(Contact.email == email)) is not None:
        audit.record(db, "join.member_not_moved", organisation, at=now, actor=actor, email=email)
        return
    if is_suppressed(db, email):
        return
    inserted = insert_ignoring_duplicates(
        db,
        Contact,
        ("email",),
        dict(
            public_id=new_public_id(),
            organisation_id=organisation.id,
            name=person["name"],
            email=email,
            phone="",
            role="",
            language=language,
            status=ContactStatus.UNCONFIRMED,
            wants_announcements=True,
            created_at=now,
            bounce_score=0.0,
        ),
    )
    if not inserted:  # another approval named the same address a moment ago
        return
    contact = db.scalars(select(Contact).where(Contact.email == email)).one()
    audit.record(db, "contact.named", contact, at=now, actor=actor)
    ask_to_confirm(db, contact, named_by=named_by, now=now)


def ask_to_confirm(db: Session, contact: Contact, *, named_by: str, now: datetime) -> None:
    """Queue a link for a named representative to confirm their own address."""
    hours = settings().confirm_ttl_hours
    raw = tokens.issue(
        db,
        TokenPurpose.CONFIRM_CONTACT,
        contact.id,
        now=now,
        expires_at=now + timedelta(hours=hours),
        holder=contact.email,
    )
    issued = tokens.issued(db, TokenPurpose.CONFIRM_CONTACT, contact.id)
    outbox.enqueue(
        db,
        names.JOIN_CONFIRM,
        to=contact.email,
        to_name=contact.name,
        lang=contact.language,
        dedupe_key=f"representative-confirm:{contact.public_id}:{issued}",
        context={
            "confirm_url": external_url("membership.confirm_representative", token=raw),
            "organisation_name": contact.organisation.name,
            "valid_hours": hours,
            "named_by": named_by,
        },
        now=now,
    )


def find_representative_link(
    db: Session, raw: str, *, now: datetime
) -> tuple[tokens.Lookup, Contact | None]:
    """The link a named representative received, and the contact it confirms."""
    lookup = tokens.find(db, TokenPurpose.CONFIRM_CONTACT, raw, now=now)
    contact = db.get(Contact, lookup.token.subject_id) if lookup.token else None
    return lookup, contact


def confirm_representative(db: Session, raw: str, *, now: datetime) -> Contact | None:
    """A named representative confirms their address: they become active and are welcomed.

    None when the link is unknown, used or expired, or the contact is no longer waiting.
    """
    lookup, contact = find_representative_link(db, raw, now=now)
    if not lookup.valid or contact is None or contact.status is not ContactStatus.UNCONFIRMED:
        return None
    if not tokens.spend(db, lookup.token, now=now):  # type: ignore[arg-type]
        return None
    # They asked for the group's mail themselves: an earlier suppression no longer holds.
    suppression = db.scalar(select(Suppression).where(Suppression.email == contact.email))
    if suppression is not None:
        db.delete(suppression)
    contact.status = ContactStatus.ACTIVE
    audit.record(db, "contact.activated", contact, at=now, actor=contact.email, confirmed=True)
    outbox.enqueue(
        db,
        names.JOIN_WELCOME,
        to=contact.email,
        to_name=contact.name,
        lang=contact.language,
        dedupe_key=f"join-welcome:contact:{contact.public_id}",
        context=_welcome_context(db, contact, now=now),
        now=now,
    )
    db.flush()
    return contact


def resend_representative_link(db: Session, raw: str, *, now: datetime) -> bool:
    """A fresh link for a representative's expired one (within the hourly limit)."""
    lookup, contact = find_representative_link(db, raw, now=now)
    if lookup.token is None or lookup.token.used_at is not None or contact is None:
        return False
    if contact.status is not ContactStatus.UNCONFIRMED:
        return False
    if why_no_link(db, contact.email, now=now):
        return True
    if not tokens.spend(db, lookup.token, now=now):
        return False
    named_by = db.scalar(
        select(JoinRequest.submitted).where(JoinRequest.organisation_id == contact.organisation_id)
    )
    ask_to_confirm(db, contact, named_by=(named_by or {}).get("name", ""), now=now)
    audit.record(db, "contact.confirmation_resent", contact, at=now, actor=contact.email)
    db.flush()
    return True


def unsubscribe(db: Session, contact: Contact, *, now: datetime, via: str) -> bool:
    """Stop all list mail to a contact at once; True when this call changed anything.

    The address goes on the suppression list, which the sender checks again just before
    each message, so mail already queued is not sent either.
    """
    changed = contact.status is not ContactStatus.UNSUBSCRIBED
    contact.status = ContactStatus.UNSUBSCRIBED
    inserted = suppress(db, contact.email, reason="unsubscribed", now=now)
    if changed or inserted:
        audit.record(db, "contact.unsubscribed", contact, at=now, actor=contact.email, via=via)
    db.flush()
    return changed or inserted


@dataclass(frozen=True)
class MailRecipient:
    """Whom an unsubscribe link stops mail to: an address, and its contact if it has one."""

    email: str
    contact: Contact | None


def find_unsubscribe_link(db: Session, raw: str, *, now: datetime) -> MailRecipient | None:
    """The recipient of an unsubscribe link: a member's, or a substitute's (an address that
    may be no member at all). None for an unknown link."""
    lookup = tokens.find(db, TokenPurpose.UNSUBSCRIBE, raw, now=now)
    if lookup.token is not None:
        contact = db.get(Contact, lookup.token.subject_id)
        return MailRecipient(contact.email, contact) if contact is not None else None
    lookup = tokens.find(db, TokenPurpose.UNSUBSCRIBE_ADDRESS, raw, now=now)
    if lookup.token is None or not lookup.token.holder:
        return None
    address = lookup.token.holder
    return MailRecipient(address, db.scalar(select(Contact).where(Contact.email == address)))


def stop_mail(db: Session, recipient: MailRecipient, *, now: datetime, via: str) -> bool:
    """Unsubscribe a member, or put an address that is no member on the suppression list."""
    if recipient.contact is not None:
        return unsubscribe(db, recipient.contact, now=now, via=via)
    inserted = suppress(db, recipient.email, reason="unsubscribed", now=now)
    if inserted:
        suppression = db.scalars(
            select(Suppression).where(Suppression.email == recipient.email)
        ).one()
        audit.record(
            db, "address.unsubscribed", suppression, at=now, actor=recipient.email, via=via
        )
    db.flush()
    return inserted


def unsubscribe_links(db: Session, contact: Contact, *, now: datetime) -> dict[str, str]:
    """A fresh unsubscribe token for one message: the one-click URL and the mailto."""
    raw = tokens.issue(db, TokenPurpose.UNSUBSCRIBE, contact.id, now=now, holder=contact.email)
    return unsubscribe_targets(raw)


def unsubscribe_targets(raw: str) -> dict[str, str]:
    """The List-Unsubscribe targets of an unsubscribe token: its page and a mailto."""
    return unsubscribe_targets_many([raw])[0]


def unsubscribe_targets_many(raws: list[str]) -> list[dict[str, str]]:
    """The List-Unsubscribe targets of each token, the URL built once for a send to many."""
    mailbox = split_mailbox(settings().reply_to)[1]
    page = external_url("membership.unsubscribe", token="TOKEN").rsplit("TOKEN", 1)[0]
    return [
        {"url": page + raw, "mailto": f"mailto:{mailbox}?subject={quote('unsubscribe ' + raw)}"}
        for raw in raws
    ]


def suppress(db: Session, email: str, *, reason: str, now: datetime) -> bool:
    """Put `email` on the suppression list (no more mail, queued mail included); True if new."""
    inserted = insert_ignoring_duplicates(
        db, Suppression, ("email",), dict(email=email, reason=reason, created_at=now)
    )
    return bool(inserted)


def is_suppressed(db: Session, email: str) -> bool:
    """Whether `email` must get no list mail: it unsubscribed or bounced."""
    listed = db.scalar(select(Suppression.id).where(Suppression.email == email))
    contact = db.scalar(
        select(Contact.id).where(
            Contact.email == email, Contact.status.in_(outbox.SUPPRESSED_STATUSES)
        )
    )
    return listed is not None or contact is not None


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
