"""Acting on bounces: only on a message we sent, and only on that message's recipient.

A delivery report is believed when it is tied to a row of the outbox: by the return path we
signed for that row (emails.verp), which the report is addressed to and which the returned
message carries, or by the returned message's Message-ID. Whatever address the report itself
names, the one acted upon is the recipient of that row; anyone can write a report naming a
member. Anything else is filed for a person (needs attention, listed in the digest).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from emails.attention import Attention
from emails.inbound import Bounce, Inbound
from service import audit
from service.db import insert_ignoring_duplicates
from service.models import Contact, ContactStatus, InboundOutcome, OutboundEmail, Suppression

# Mailman's defaults, more or less: a hard bounce counts 1, a soft one 0.5, at most one a
# day; the score is forgotten after a week without bounces; at 3 the address is suppressed.
HARD_SCORE = 1.0
SOFT_SCORE = 0.5
SCORE_THRESHOLD = 3.0
SCORE_STALE_AFTER = timedelta(days=7)


def act_on_bounce(
    db: Session, inbound: Inbound, bounce: Bounce, *, now: datetime
) -> tuple[InboundOutcome, str | Attention]:
    """Count a bounce against the recipient of the message it is tied to, or file it."""
    sent = bounced_message(db, inbound.return_path_numbers, bounce.original_message_id)
    if sent is None:
        # No return path of ours and no Message-ID of ours: anyone could have written it.
        return InboundOutcome.ATTENTION, Attention(
            "bounce_untied", {"status": bounce.status, "recipient": bounce.recipient or "-"}
        )
    recipient = sent.recipient
    if bounce.policy:
        # The receiving server refused us (DMARC, reputation): the sender must act, not the
        # member. It is shown to the coordinator and never counted against the address.
        return InboundOutcome.ATTENTION, Attention(
            "sending_refused",
            {"recipient": recipient, "status": bounce.status, "diagnostic": bounce.diagnostic},
        )
    contact = db.scalar(select(Contact).where(Contact.email == recipient.lower()))
    if contact is None:
        return InboundOutcome.ATTENTION, Attention("bounce_not_member", {"recipient": recipient})
    return _count(db, contact, bounce, now=now)


def bounced_message(
    db: Session, numbers: tuple[int, ...], original_message_id: str | None
) -> OutboundEmail | None:
    """The outbox row a bounce is about: by our signed return path, else by Message-ID."""
    for number in numbers:
        sent = db.get(OutboundEmail, number)
        if sent is not None:
            return sent
    if not original_message_id:
        return None
    return db.scalar(select(OutboundEmail).where(OutboundEmail.message_id == original_message_id))


def _count(
    db: Session, contact: Contact, bounce: Bounce, *, now: datetime
) -> tuple[InboundOutcome, str]:
    hard_address_failure = bounce.hard and bounce.status.startswith("5.1.")
    if contact.last_bounce_at is not None and now - contact.last_bounce_at > SCORE_STALE_AFTER:
        contact.bounce_score = 0.0
    counted_today = (
        contact.last_bounce_at is not None and contact.last_bounce_at.date() == now.date()
    )
    if not counted_today:
        contact.bounce_score += HARD_SCORE if bounce.hard else SOFT_SCORE
    contact.last_bounce_at = now
    audit.record(
        db,
        "contact.bounced",
        contact,
        at=now,
        status=bounce.status,
        score=contact.bounce_score,
        diagnostic=bounce.diagnostic[:300],
    )
    if hard_address_failure or contact.bounce_score >= SCORE_THRESHOLD:
        _suppress(db, contact, now=now)
        return InboundOutcome.PROCESSED, (
            f"{contact.email} bounced ({bounce.status}) and is suppressed"
        )
    return InboundOutcome.PROCESSED, (
        f"{contact.email} bounced ({bounce.status}), score {contact.bounce_score:.1f}"
    )


def _suppress(db: Session, contact: Contact, *, now: datetime) -> None:
    contact.status = ContactStatus.BOUNCED
    insert_ignoring_duplicates(
        db, Suppression, ("email",), dict(email=contact.email, reason="bounced", created_at=now)
    )
    audit.record(db, "contact.suppressed", contact, at=now, reason="bounced")
