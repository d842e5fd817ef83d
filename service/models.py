"""The stored state of the working group: members, join requests, tokens, the outbox, audit."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base


def _enum(cls: type[enum.Enum]) -> Enum:
    # Store the readable value, not the Python name, and no native PostgreSQL enum types:
    # adding a state later is then a code change, not a migration of a type.
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False, length=20)


def new_public_id() -> str:
    return uuid.uuid4().hex


class Language(enum.StrEnum):
    EN = "en"
    KM = "km"


class OrganisationKind(enum.StrEnum):
    ORGANISATION = "organisation"
    INSTITUTION = "institution"
    INDIVIDUAL = "individual"


class OrganisationStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class ContactStatus(enum.StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    INACTIVE = "inactive"
    UNCONFIRMED = "unconfirmed"  # named on a join form; gets no mail until they confirm


class RequestStatus(enum.StrEnum):
    UNCONFIRMED = "unconfirmed"  # waiting for the applicant to confirm their address
    PENDING = "pending"  # confirmed, waiting for the coordinator
    APPROVED = "approved"
    DECLINED = "declined"
    # Closed unconfirmed: another request for the address was confirmed, or no link was sent
    # (the address was a member or under review). A request whose link ran out needs no
    # status of its own: it blocks nothing, and only a fresh link can revive it.
    EXPIRED = "expired"


class TokenPurpose(enum.StrEnum):
    CONFIRM = "confirm"
    REVIEW = "review"
    RSVP = "rsvp"
    UNSUBSCRIBE = "unsubscribe"  # a member's: the subject is the contact
    UNSUBSCRIBE_ADDRESS = "unsubscribe_address"  # a substitute's: the holder is the address
    CONFIRM_CONTACT = "confirm_contact"  # a further representative confirms their address
    MEMBER = "member"  # a member's own page, from the footer of their mail
    CALENDAR = "calendar"  # a member's calendar feed, made with the member link that shows it
    CONSOLE_SIGN_IN = "console_sign_in"  # a coordinator's emailed one-time sign-in link
    CONSOLE_SESSION = "console_session"  # a signed-in console session (the cookie's secret)
    ADDRESS_CHANGE = "address_change"  # a contact's new address, confirmed by its owner


class OutboxStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"  # its not_after passed before it could be sent
    SUPPRESSED = "suppressed"  # the recipient unsubscribed or bounced before it was sent


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[OrganisationKind] = mapped_column(_enum(OrganisationKind))
    website: Mapped[str] = mapped_column(String(300), default="")
    represented_in_cambodia: Mapped[bool] = mapped_column(default=True)
    cambodia_location: Mapped[str] = mapped_column(String(200), default="")
    work_summary: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[OrganisationStatus] = mapped_column(_enum(OrganisationStatus))
    created_at: Mapped[datetime]

    contacts: Mapped[list[Contact]] = relationship(
        back_populates="organisation", order_by="Contact.id"
    )


class Contact(Base):
    """A representative of a member organisation: the person who gets the mail."""

    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str] = mapped_column(String(40), default="")
    role: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[Language] = mapped_column(_enum(Language))
    status: Mapped[ContactStatus] = mapped_column(_enum(ContactStatus))
    # Meeting mail always goes to active members; announcements only to those who want them.
    wants_announcements: Mapped[bool] = mapped_column(default=True, server_default="1")
    created_at: Mapped[datetime]
    # Mailman-style bounce score: soft bounces add up, decay when they stop.
    bounce_score: Mapped[float] = mapped_column(default=0.0, server_default="0")
    last_bounce_at: Mapped[datetime | None]

    organisation: Mapped[Organisation] = relationship(back_populates="contacts")


class JoinRequest(Base):
    """What an applicant submitted on the join form, and what became of it."""

    __tablename__ = "join_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    email: Mapped[str] = mapped_column(String(254), index=True)
    language: Mapped[Language] = mapped_column(_enum(Language))
    submitted: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[RequestStatus] = mapped_column(_enum(RequestStatus))
    review_note: Mapped[str] = mapped_column(Text, default="")
    reviewed_by: Mapped[str] = mapped_column(String(254), default="")
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]


class Token(Base):
    """A link secret: only its hash is kept, bound to one purpose and one record."""

    __tablename__ = "token"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[TokenPurpose] = mapped_column(_enum(TokenPurpose))
    subject_id: Mapped[int]
    holder: Mapped[str] = mapped_column(String(254), default="")  # who the link was sent to
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_token_subject", "purpose", "subject_id"),)


class Suppression(Base):
    """An address that must not be mailed again (unsubscribed, bounced)."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]


class SharedMailContext(Base):
    """What a send to many has in common (an announcement's text), stored once, not per row.

    `data` maps a language to the template context shared by every recipient in it.
    """

    __tablename__ = "shared_mail_context"

    id: Mapped[int] = mapped_column(primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class OutboundEmail(Base):
    """One message in the outbox, written in the same transaction as its cause."""

    __tablename__ = "outbound_email"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    recipient: Mapped[str] = mapped_column(String(254), index=True)
    recipient_name: Mapped[str] = mapped_column(String(200), default="")
    template: Mapped[str] = mapped_column(String(80))
    language: Mapped[Language] = mapped_column(_enum(Language))
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Set instead of template rendering when the whole message was built up front.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    list_mail: Mapped[bool] = mapped_column(default=False)
    shared_context_id: Mapped[int | None] = mapped_column(
        ForeignKey("shared_mail_context.id", name="fk_outbound_email_shared_context")
    )
    # What the message is about, e.g. "meeting:42", so pending mail can be withdrawn with it.
    topic: Mapped[str] = mapped_column(String(80), default="", server_default="", index=True)
    message_id: Mapped[str] = mapped_column(String(250), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus))
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime]
    not_after: Mapped[datetime | None]
    lease_owner: Mapped[str] = mapped_column(String(80), default="")
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbound_email_due", "status", "not_before"),)


class AuditEvent(Base):
    """A record of every change of state: who, what, when."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    action: Mapped[str] = mapped_column(String(60))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[int | None]
    actor: Mapped[str] = mapped_column(String(254), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class MeetingStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class Rsvp(enum.StrEnum):
    NONE = "none"
    YES = "yes"
    NO = "no"
    MAYBE = "maybe"


class AnswerChannel(enum.StrEnum):
    LINK = "link"
    EMAIL = "email"
    CALENDAR = "calendar"


class MeetingSeries(Base):
    """A recurring meeting (RFC 5545 RRULE); its occurrences become Meeting rows ahead of time."""

    __tablename__ = "meeting_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    title_en: Mapped[str] = mapped_column(String(200))
    title_km: Mapped[str] = mapped_column(String(200), default="")
    rrule: Mapped[str] = mapped_column(String(500))
    first_starts_at: Mapped[datetime]
    until_at: Mapped[datetime | None]
    timezone: Mapped[str] = mapped_column(String(60))
    duration_minutes: Mapped[int]
    location: Mapped[str] = mapped_column(String(300), default="")
    online_url: Mapped[str] = mapped_column(String(500), default="")
    agenda_en: Mapped[str] = mapped_column(Text, default="")
    agenda_km: Mapped[str] = mapped_column(Text, default="")
    invite_days: Mapped[int] = mapped_column(default=14)
    followup_days: Mapped[list[int]] = mapped_column(JSON, default=lambda: [7, 2])
    reminder_days: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime]


class Meeting(Base):
    """One meeting: a one-off, or an occurrence of a series that can be changed on its own."""

    __tablename__ = "meeting"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    series_id: Mapped[int | None] = mapped_column(ForeignKey("meeting_series.id"))
    # The occurrence's original start: it identifies the occurrence even after a reschedule.
    occurrence_at: Mapped[datetime | None]
    title_en: Mapped[str] = mapped_column(String(200))
    title_km: Mapped[str] = mapped_column(String(200), default="")
    starts_at: Mapped[datetime] = mapped_column(index=True)
    timezone: Mapped[str] = mapped_column(String(60))
    duration_minutes: Mapped[int]
    location: Mapped[str] = mapped_column(String(300), default="")
    online_url: Mapped[str] = mapped_column(String(500), default="")
    agenda_en: Mapped[str] = mapped_column(Text, default="")
    agenda_km: Mapped[str] = mapped_column(Text, default="")
    invite_days: Mapped[int] = mapped_column(default=14)
    followup_days: Mapped[list[int]] = mapped_column(JSON, default=lambda: [7, 2])
    reminder_days: Mapped[int] = mapped_column(default=1)
    sequence: Mapped[int] = mapped_column(default=0)
    status: Mapped[MeetingStatus] = mapped_column(_enum(MeetingStatus))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    invitations: Mapped[list[Invitation]] = relationship(
        back_populates="meeting", order_by="Invitation.id"
    )

    __table_args__ = (UniqueConstraint("series_id", "occurrence_at", name="uq_meeting_occurrence"),)


class Invitation(Base):
    """A contact invited to a meeting, and their answer."""

    __tablename__ = "invitation"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meeting.id"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id"), index=True)
    answer: Mapped[Rsvp] = mapped_column(_enum(Rsvp))
    answered_at: Mapped[datetime | None]
    answered_via: Mapped[AnswerChannel | None] = mapped_column(_enum(AnswerChannel))
    note: Mapped[str] = mapped_column(Text, default="")
    substitute_name: Mapped[str] = mapped_column(String(200), default="")
    substitute_email: Mapped[str] = mapped_column(String(254), default="")
    invited_at: Mapped[datetime]
    invitation_message_id: Mapped[str] = mapped_column(String(250), default="")
    # How far the mail schedule got for this invitee, so a tick with nothing due costs
    # a few indexed queries rather than an attempt per member.
    followup_stage: Mapped[int] = mapped_column(default=0)
    reminded_sequence: Mapped[int] = mapped_column(default=-1)

    meeting: Mapped[Meeting] = relationship(back_populates="invitations")
    contact: Mapped[Contact] = relationship()

    __table_args__ = (UniqueConstraint("meeting_id", "contact_id", name="uq_invitation"),)


class InboundOutcome(enum.StrEnum):
    PROCESSED = "processed"  # acted on (an answer recorded, a bounce counted)
    IGNORED = "ignored"  # nothing to do (auto-reply, a stale calendar reply)
    ATTENTION = "attention"  # a person should read it; the digest lists it


class InboundMessage(Base):
    """A message read from the mailbox: each is processed once, and what came of it."""

    __tablename__ = "inbound_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(250), default="", index=True)
    sender: Mapped[str] = mapped_column(String(254), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    kind: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[InboundOutcome] = mapped_column(_enum(InboundOutcome))
    detail: Mapped[str] = mapped_column(Text, default="")
    # Why it needs a person (emails.attention.REASONS) and the words that fill the reason
    # in, so the digest says it in each coordinator's language; "" before revision 0007.
    reason: Mapped[str] = mapped_column(String(40), default="")
    reason_args: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    excerpt: Mapped[str] = mapped_column(Text, default="")
    # Kept only when a person must look at it (unparseable or unclear).
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(index=True)


class Announcement(Base):
    """News sent to every member who wants it, in their language."""

    __tablename__ = "announcement"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_en: Mapped[str] = mapped_column(String(300))
    subject_km: Mapped[str] = mapped_column(String(300), default="")
    body_en: Mapped[str] = mapped_column(Text)
    body_km: Mapped[str] = mapped_column(Text, default="")
    test: Mapped[bool] = mapped_column(default=False)
    queued: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]


class DeliveryFault(Base):
    """A fault of the service's own mail set-up (relay down, TLS, login, sender refused).

    While one is open, members' mail waits instead of failing: the fault is ours, not theirs.
    One row per channel ("smtp", "imap"); `cleared_at` is set once mail goes through again.
    """

    __tablename__ = "delivery_fault"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")
    since_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]


class RateLimitCounter(Base):
    """One fixed-window counter of the web's rate limits, shared by every worker and host."""

    __tablename__ = "rate_limit_counter"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Coordinator(Base):
    """Who may sign in to the console, and who receives digests and join requests.

    WG_COORDINATOR_EMAILS seeds the list: an address there counts until a row says it was
    removed, so `wg coordinators remove` holds even while the setting still names it.
    """

    __tablename__ = "coordinator"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    language: Mapped[Language] = mapped_column(_enum(Language))
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(String(254), default="")
    removed_at: Mapped[datetime | None]


class AttendanceStatus(enum.StrEnum):
    PRESENT = "present"
    SUBSTITUTE = "substitute"  # the colleague they named came in their place
    ABSENT = "absent"


class Attendance(Base):
    """Who actually came to a meeting, as the coordinator marked it afterwards."""

    __tablename__ = "attendance"

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitation.id"), unique=True)
    status: Mapped[AttendanceStatus] = mapped_column(_enum(AttendanceStatus))
    marked_at: Mapped[datetime]
    marked_by: Mapped[str] = mapped_column(String(254), default="")


class MeetingMinutes(Base):
    """The minutes of a meeting in both languages, published to the members once."""

    __tablename__ = "meeting_minutes"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meeting.id"), unique=True)
    body_en: Mapped[str] = mapped_column(Text)
    body_km: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime]
    published_by: Mapped[str] = mapped_column(String(254), default="")
    announcement_id: Mapped[int | None] = mapped_column(ForeignKey("announcement.id"))


class ConsoleSubmission(Base):
    """A console form that was carried out, by the key it was shown with: a double click or a
    resubmitted form finds its key here and is not carried out again."""

    __tablename__ = "console_submission"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    result: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime]
