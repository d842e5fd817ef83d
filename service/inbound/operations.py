"""Acting on mail that comes back: bounces, calendar replies, plain replies, unsubscribes.

Each message is processed once (keyed by the hash of its bytes and by its Message-ID).
Nothing here ever sends a reply, so an auto-responder can never start a mail loop.

Nothing is believed for what it says alone: an answer must come from the invitee and be tied
to the invitation (answers), a bounce must be tied to a message we sent (bounces), and a
message whose sender failed DMARC at our server is acted upon not at all. What is not believed
is filed for a person: needs attention, listed in the coordinators' digest.

A message that cannot be processed (input the database refuses, a bug) is filed for a person
with the reason, never tried again for ever; only an unreachable database is worth a retry.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from emails.attention import Attention
from emails.inbound import Inbound, Kind, classify
from service.config import settings
from service.db import UNAVAILABLE, insert_ignoring_duplicates
from service.inbound.answers import calendar_answer, reply_answer
from service.inbound.bounces import act_on_bounce
from service.membership.operations import find_unsubscribe_link, stop_mail
from service.models import InboundMessage, InboundOutcome

log = logging.getLogger(__name__)

UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*unsubscribe\s+([A-Za-z0-9_-]{8,64})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Outcome:
    kind: str
    outcome: InboundOutcome | None  # None: this message was processed before
    detail: str

    def summary(self) -> str:
        if self.outcome is None:
            return f"already processed: {self.detail}"
        return f"{self.kind}: {self.outcome.value}: {self.detail}"


def process_message(db: Session, raw: bytes, *, now: datetime) -> Outcome:
    """Classify one raw message and act on it, once; raises only when the database is away."""
    digest = hashlib.sha256(raw).hexdigest()
    inbound = classify(raw, secret=settings().secret_key)
    try:
        with db.begin_nested():
            return _process(db, raw, digest, inbound, now=now)
    except UNAVAILABLE:
        raise  # the database is unreachable or busy: the next try may well succeed
    except Exception as error:
        log.exception("inbound message %s could not be processed; filed for a person", digest)
        return _file_unprocessable(db, raw, digest, inbound, error, now=now)


def _process(db: Session, raw: bytes, digest: str, inbound: Inbound, *, now: datetime) -> Outcome:
    message_id = (inbound.message_id or "")[:250]
    same = InboundMessage.digest == digest
    if message_id:
        same = or_(same, InboundMessage.message_id == message_id)
    seen = db.scalar(select(InboundMessage.id).where(same))
    duplicate = Outcome(inbound.kind.value, None, f"message {message_id or digest[:12]}")
    if seen:
        return duplicate
    # Claim the message before acting: a second process reading the same message waits on
    # the unique digest, then finds it taken and does nothing.
    claimed = insert_ignoring_duplicates(
        db,
        InboundMessage,
        ("digest",),
        dict(
            digest=digest,
            message_id=message_id,
            sender=(inbound.sender or "")[:254],
            subject=inbound.subject[:300],
            kind=inbound.kind.value,
            outcome=InboundOutcome.IGNORED,
            detail="",
            excerpt=inbound.reply.text[:2000] if inbound.reply else "",
            received_at=now,
        ),
    )
    if not claimed:
        return duplicate
    outcome, detail = _act(db, inbound, now=now)
    record = db.scalars(select(InboundMessage).where(InboundMessage.digest == digest)).one()
    record.outcome = outcome
    record.detail = str(detail)[:2000]
    if isinstance(detail, Attention):
        record.reason, record.reason_args = detail.reason, dict(detail.args)
    record.raw = raw if outcome is InboundOutcome.ATTENTION else None
    db.flush()
    return Outcome(inbound.kind.value, outcome, str(detail))


def _file_unprocessable(
    db: Session, raw: bytes, digest: str, inbound: Inbound, error: Exception, *, now: datetime
) -> Outcome:
    """Keep a message that failed for a person, with the reason, so it is never retried."""
    attention = Attention("unprocessable", {"error": type(error).__name__})
    filed = insert_ignoring_duplicates(
        db,
        InboundMessage,
        ("digest",),
        dict(
            digest=digest,
            message_id="",
            sender=(inbound.sender or "")[:254],
            subject=inbound.subject[:300],
            kind=inbound.kind.value,
            outcome=InboundOutcome.ATTENTION,
            detail=str(attention),
            reason=attention.reason,
            reason_args=dict(attention.args),
            excerpt="",
            raw=raw,
            received_at=now,
        ),
    )
    if not filed:
        return Outcome(inbound.kind.value, None, f"message {digest[:12]}")
    return Outcome(inbound.kind.value, InboundOutcome.ATTENTION, str(attention))


def _act(db: Session, inbound: Inbound, *, now: datetime) -> tuple[InboundOutcome, str | Attention]:
    if inbound.dmarc == "fail":
        return InboundOutcome.ATTENTION, Attention(
            "dmarc_failed", {"sender": inbound.sender or "-"}
        )
    if inbound.kind is Kind.BOUNCE and inbound.bounce is not None:
        return act_on_bounce(db, inbound, inbound.bounce, now=now)
    if inbound.kind is Kind.CALENDAR_REPLY and inbound.calendar is not None:
        return calendar_answer(db, inbound, inbound.calendar, now=now)
    if inbound.kind is Kind.AUTO_REPLY:
        return InboundOutcome.IGNORED, f"auto-reply ({inbound.reason})"
    if inbound.kind is Kind.MALFORMED:
        return InboundOutcome.ATTENTION, Attention("unreadable", {"problem": inbound.reason})
    unsubscribed = _unsubscribe_request(db, inbound, now=now)
    if unsubscribed is not None:
        return unsubscribed
    if inbound.kind is Kind.REPLY and inbound.reply is not None:
        return reply_answer(db, inbound, inbound.reply, now=now)
    return InboundOutcome.ATTENTION, Attention("unrelated")


def _unsubscribe_request(
    db: Session, inbound: Inbound, *, now: datetime
) -> tuple[InboundOutcome, str | Attention] | None:
    """The mailto: of List-Unsubscribe: a message whose subject is "unsubscribe TOKEN"."""
    match = UNSUBSCRIBE_SUBJECT.match(inbound.subject or "")
    if match is None:
        return None
    recipient = find_unsubscribe_link(db, match.group(1), now=now)
    if recipient is None:
        return InboundOutcome.ATTENTION, Attention("unknown_unsubscribe")
    stop_mail(db, recipient, now=now, via="mailto")
    return InboundOutcome.PROCESSED, f"{recipient.email} unsubscribed by email"
