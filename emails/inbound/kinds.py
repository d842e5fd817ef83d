"""What a received message is, and what was read from it: the values `classify` returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Answer(StrEnum):
    YES = "yes"
    NO = "no"
    MAYBE = "maybe"


class Kind(StrEnum):
    BOUNCE = "bounce"
    CALENDAR_REPLY = "calendar_reply"
    AUTO_REPLY = "auto_reply"
    REPLY = "reply"
    UNRELATED = "unrelated"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Bounce:
    recipient: str  # the failed address the report names, lowercased; "" when it names none
    status: str  # enhanced status code, e.g. "5.1.1", "4.2.2", "5.7.26"
    diagnostic: str  # one line
    hard: bool  # 5.x.x and not an "Action: delayed" report
    policy: bool  # x.7.x: refused for the sender's reasons (DMARC, spam, ...), not the member's
    original_message_id: str | None  # Message-ID of the returned message, with <>


@dataclass(frozen=True)
class CalendarReply:
    uid: str
    recurrence_id: str | None  # iCalendar form: "20261201T020000Z" (UTC), or floating / date
    sequence: int
    attendee: str  # mailto address, lowercased
    answer: Answer
    organizer: str | None  # mailto address, lowercased; Outlook.com leaves it out
    comment: str


@dataclass(frozen=True)
class Reply:
    text: str  # the reader's own words: quoted history and signature removed
    answer: Answer | None  # None when ambiguous or no answer found


@dataclass(frozen=True)
class Inbound:
    kind: Kind
    message_id: str | None
    sender: str | None  # From address, lowercased; None when there is no usable one
    subject: str
    bounce: Bounce | None = None
    calendar: CalendarReply | None = None
    reply: Reply | None = None  # REPLY, and AUTO_REPLY (answer None)
    reason: str = ""  # why it was classified so, one line
    # In-Reply-To, then References (the first and the most recent), with <>; at most
    # MAX_REFERENCES, so a hostile header costs nothing further on.
    references: tuple[str, ...] = ()
    # The outbox rows named by a return path we signed: the address the message came to
    # (Delivered-To, X-Original-To, ...) and, in a bounce, the returned message's Return-Path.
    return_path_numbers: tuple[int, ...] = ()
    dmarc: str = ""  # the DMARC result of the topmost Authentication-Results ("fail", ...)
