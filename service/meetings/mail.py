"""Meeting mail: invitations, follow-ups, reminders, changes and cancellations, queued as sets.

A meeting's mail goes to many members at once, so it is queued as announcements are: what
every reader of a language shares (the meeting, the change) is stored once, and each message
keeps only what is its own (links, the answer, the calendar event). Links are made in bulk:
one insert per kind of token, one URL built per kind, whatever the number of members.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from emails import names
from emails.calendar import invitation_uid
from emails.compose import render_text
from service import outbox, tokens
from service.config import settings
from service.membership import links
from service.membership.operations import (
    unsubscribe_links,
    unsubscribe_targets,
    unsubscribe_targets_many,
)
from service.models import Contact, Invitation, Meeting, Rsvp, TokenPurpose
from service.urls import external_url

# Mail that carries the calendar event itself (REQUEST or CANCEL) to the invitee.
_WITH_CALENDAR = (names.MEETING_INVITATION, names.MEETING_CANCELLED)
ANSWERS = ("yes", "no", "maybe")


def topic(meeting: Meeting) -> str:
    """What the outbox files the meeting's mail under, so that it can be withdrawn with it."""
    return f"meeting:{meeting.id}"


def ends_at(meeting: Meeting) -> datetime:
    return meeting.starts_at + timedelta(minutes=meeting.duration_minutes)


def meeting_context(meeting: Meeting, lang: str) -> dict[str, object]:
    """What every meeting email and page shows of a meeting, in `lang`."""
    km = lang == "km"
    return {
        "title": (meeting.title_km if km and meeting.title_km else meeting.title_en),
        "starts_at": meeting.starts_at.isoformat(),
        "ends_at": ends_at(meeting).isoformat(),
        "zone": meeting.timezone,
        "location": meeting.location,
        "online_url": meeting.online_url,
        "agenda": (meeting.agenda_km if km and meeting.agenda_km else meeting.agenda_en),
    }


def in_language(change: dict[str, str], lang: str) -> dict[str, str]:
    """The change with the coordinator's reason in `lang` (Khmer when given, else English)."""
    if "reason_km" not in change:
        return change
    shown = {k: v for k, v in change.items() if k != "reason_km"}
    if lang == "km" and change["reason_km"]:
        shown["reason"] = change["reason_km"]
    return shown


def event_description(meeting: Meeting, lang: str, *, rsvp_url: str = "") -> str:
    """A calendar event's DESCRIPTION in `lang`: when, where, the online link and the agenda.

    Gmail and Outlook show DESCRIPTION and LOCATION, not URL, so the link is written here."""
    context = {"meeting": meeting_context(meeting, lang), "rsvp_url": rsvp_url}
    return render_text("_event_description.txt", lang, context)


def _common(meeting: Meeting, lang: str, change: dict[str, str]) -> dict[str, object]:
    """What every reader of `lang` shares in one send about `meeting`."""
    shown = in_language(change, lang)
    return {
        "meeting": meeting_context(meeting, lang),
        "change": shown,
        "changed": any(key.startswith("old_") for key in shown),
    }


def _url_base(endpoint: str) -> str:
    """The URL of `endpoint` up to its token, built once for a whole send."""
    return external_url(endpoint, token="TOKEN").rsplit("TOKEN", 1)[0]


@dataclass(frozen=True)
class Invitee:
    """What a message needs of an invitation: the invitation's id, its member and answer."""

    invitation_id: int
    contact: Contact
    answer: Rsvp = Rsvp.NONE
    message_id: str = ""  # decided before the message is queued, when the caller must know it

    @classmethod
    def of(cls, invitation: Invitation) -> Invitee:
        return cls(invitation.id, invitation.contact, invitation.answer)


def send_to_members(
    db: Session,
    template: str,
    meeting: Meeting,
    invitations: Sequence[Invitation | Invitee],
    *,
    now: datetime,
    keys: Sequence[str],
    change: dict[str, str] | None = None,
) -> dict[str, str]:
    """Queue `template` about `meeting` to the member of each invitation, under the dedupe key
    in `keys` at the same place; the Message-ID of each, by key. One insert a kind of row."""
    if not invitations:
        return {}
    invitees = [i if isinstance(i, Invitee) else Invitee.of(i) for i in invitations]
    cancelled = template == names.MEETING_CANCELLED
    contacts = [invitee.contact for invitee in invitees]
    addresses = [(contact.id, contact.email) for contact in contacts]
    unsubscribe = unsubscribe_targets_many(
        tokens.issue_many(db, TokenPurpose.UNSUBSCRIBE, addresses, now=now)
    )
    member_urls = links.page_urls(links.issue(db, addresses, now=now))
    rsvp_urls = [""] * len(invitees) if cancelled else _rsvp_urls(db, meeting, invitees, now=now)
    languages = sorted({contact.language.value for contact in contacts})
    shared = {lang: _common(meeting, lang, change or {}) for lang in languages}
    # The calendar description differs only by the RSVP link: rendered once per language.
    hole = f"wg-rsvp-{secrets.token_hex(8)}"
    descriptions = {lang: event_description(meeting, lang, rsvp_url=hole) for lang in languages}
    recipients = []
    for n, (invitee, contact) in enumerate(zip(invitees, contacts, strict=True)):
        lang = contact.language.value
        personal: dict[str, object] = {
            "answer": invitee.answer.value,
            "list_unsubscribe": unsubscribe[n],
            "member_url": member_urls[n],
        }
        if rsvp_urls[n]:
            personal["rsvp_url"] = rsvp_urls[n]
            personal["answer_urls"] = {a: f"{rsvp_urls[n]}?answer={a}" for a in ANSWERS}
        if template in _WITH_CALENDAR:
            description = descriptions[lang].replace(hole, rsvp_urls[n])
            personal["calendar"] = _calendar_event(meeting, contact, description, cancelled)
        recipients.append(
            {
                "to": contact.email,
                "to_name": contact.name,
                "lang": lang,
                "dedupe_key": keys[n],
                "context": personal,
                "message_id": invitee.message_id,
            }
        )
    return outbox.enqueue_many(
        db,
        template,
        recipients,
        shared=shared,
        now=now,
        topic=topic(meeting),
        list_mail=True,
        not_after=None if cancelled else meeting.starts_at,
    )


def _rsvp_urls(
    db: Session, meeting: Meeting, invitees: list[Invitee], *, now: datetime
) -> list[str]:
    """A fresh answer link for each invitee, valid until the meeting ends."""
    raws = tokens.issue_many(
        db,
        TokenPurpose.RSVP,
        [(invitee.invitation_id, invitee.contact.email) for invitee in invitees],
        now=now,
        expires_at=ends_at(meeting),
    )
    base = _url_base("meetings.rsvp")
    return [base + raw for raw in raws]


def _calendar_event(
    meeting: Meeting, contact: Contact, description: str, cancelled: bool
) -> dict[str, object]:
    """The calendar event (REQUEST or CANCEL) of one invitee's copy of the meeting."""
    config = settings()
    lang = contact.language.value
    return {
        "method": "CANCEL" if cancelled else "REQUEST",
        "uid": invitation_uid(
            meeting.public_id, contact.id, secret=config.secret_key, domain=config.mail_domain
        ),
        "sequence": meeting.sequence,
        "summary": str(meeting_context(meeting, lang)["title"]),
        "description": description,
        "starts_at": meeting.starts_at.isoformat(),
        "ends_at": ends_at(meeting).isoformat(),
        "timezone": meeting.timezone,
        "location": meeting.location,
        "online_url": meeting.online_url,
        "organizer_email": config.organizer_email,
        "organizer_name": config.group_name_for(lang),
        "attendee_email": contact.email,
        "attendee_name": contact.name,
    }


def send_to_substitute(
    db: Session,
    template: str,
    meeting: Meeting,
    invitation: Invitation,
    *,
    now: datetime,
    key: str,
    change: dict[str, str] | None = None,
) -> str | None:
    """Queue `template` to the colleague named in the invitation's member's place, with their
    own unsubscribe link; list mail, so the sender checks their suppression just before."""
    contact = invitation.contact
    lang = contact.language.value
    context = {
        **_common(meeting, lang, change or {}),
        "answer": invitation.answer.value,
        "substitute_for": contact.name,
        "organisation_name": contact.organisation.name,
        "list_unsubscribe": substitute_unsubscribe_links(db, invitation, now=now),
    }
    cancelled = template == names.MEETING_CANCELLED
    return outbox.enqueue(
        db,
        template,
        to=invitation.substitute_email,
        to_name=invitation.substitute_name,
        lang=lang,
        dedupe_key=key,
        context=context,
        now=now,
        not_after=None if cancelled else meeting.starts_at,
        list_mail=True,
        topic=topic(meeting),
    )


def substitute_unsubscribe_links(
    db: Session, invitation: Invitation, *, now: datetime
) -> dict[str, str]:
    """The substitute's own unsubscribe links: a member's usual ones, or, for an address that
    is no member, links that stop mail to that address (never to the member who named it)."""
    address = invitation.substitute_email
    member = db.scalar(select(Contact).where(Contact.email == address))
    if member is not None:
        return unsubscribe_links(db, member, now=now)
    raw = tokens.issue(db, TokenPurpose.UNSUBSCRIBE_ADDRESS, invitation.id, now=now, holder=address)
    return unsubscribe_targets(raw)
