"""`classify`: what one received message is. The kinds, first match wins:

1. BOUNCE (`bounces`): a delivery report, or a message that reads as one.
2. CALENDAR_REPLY (`calendar_replies`): a METHOD:REPLY calendar part, whoever sent it.
3. AUTO_REPLY (`auto_replies`): out-of-office and other automatic answers; its `reply`
   carries the text (answer always None), its `references` what it answers.
4. REPLY (`plain_replies`): a message with In-Reply-To or References; its answer is read
   from the reader's own words. Without any reference: UNRELATED.

MALFORMED: no headers, binary junk, a multipart without (or with a missing) boundary, or any
message that cannot be read; a multipart cut short is read as far as it goes and is MALFORMED
only when nothing useful is found in it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from email.message import Message
from email.parser import BytesParser
from email.policy import default as default_policy
from enum import Enum
from typing import Any

from emails.inbound.authentication import dmarc_result
from emails.inbound.auto_replies import auto_reply_reason
from emails.inbound.bounces import find_bounce, returned_return_paths
from emails.inbound.calendar_replies import find_calendar_reply
from emails.inbound.kinds import Inbound, Kind, Reply
from emails.inbound.parsing import (
    body_text,
    header,
    headers,
    message_id,
    one_line,
    parts,
    references,
    sender,
)
from emails.inbound.plain_replies import own_words, read_answer
from emails.text import printable
from emails.verp import numbers_in

_KNOWN_HEADERS = {
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "received",
    "return-path",
    "content-type",
    "mime-version",
    "in-reply-to",
    "references",
    "sender",
    "reply-to",
    "delivered-to",
    "x-original-to",
}
_BROKEN_STRUCTURE = {
    "NoBoundaryInMultipartDefect": "multipart without a boundary",
    "StartBoundaryNotFoundDefect": "multipart whose boundary never occurs",
    "MultipartInvariantViolationDefect": "multipart that holds no parts",
}
# Where the address a message was delivered to shows, most reliable first.
_ENVELOPE_HEADERS = (
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "To",
    "Cc",
)


def classify(raw: bytes, *, secret: str = "") -> Inbound:
    """What one received message is. Never raises: unreadable input is MALFORMED.

    `secret` is the key the service signs its return paths with (emails.verp); without it
    no return path is believed and `return_path_numbers` stays empty.
    """
    try:
        found = _classify(raw, secret)
    except Exception as error:  # the mailbox may hold anything; nothing here may stop a run
        found = Inbound(
            kind=Kind.MALFORMED,
            message_id=None,
            sender=None,
            subject="",
            reason=f"unreadable message ({type(error).__name__})",
        )
    printable: Inbound = _printable(found)
    return printable


def _classify(raw: bytes, secret: str) -> Inbound:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw)
    if not raw.strip():
        return _malformed(None, "empty message")
    message = BytesParser(policy=default_policy).parsebytes(raw)
    names = {name.lower() for name, _value in message.raw_items()}
    if not names & _KNOWN_HEADERS:
        return _malformed(None, "no mail headers")

    common = Inbound(
        kind=Kind.UNRELATED,
        message_id=message_id(message),
        sender=sender(message),
        subject=one_line(header(message, "Subject")),
        references=references(message),
        return_path_numbers=_delivered_to_numbers(message, secret),
        dmarc=dmarc_result(message),
    )
    broken, truncated = _structure(message)
    if broken:
        return _malformed(common, broken)

    bounce = find_bounce(message, raw)
    if bounce is not None:
        found, reason = bounce
        numbers = list(common.return_path_numbers)
        for number in numbers_in(returned_return_paths(message), secret) if secret else []:
            if number not in numbers:
                numbers.append(number)
        return replace(
            common,
            kind=Kind.BOUNCE,
            bounce=found,
            reason=reason,
            return_path_numbers=tuple(numbers),
        )

    calendar = find_calendar_reply(message, common.sender)
    if calendar is not None:
        kind, calendar_reply, reason = calendar
        return replace(common, kind=kind, calendar=calendar_reply, reason=reason)

    auto = auto_reply_reason(message, common.subject)
    if auto:
        text = own_words(body_text(message))
        return replace(
            common, kind=Kind.AUTO_REPLY, reply=Reply(text=text, answer=None), reason=auto
        )

    if common.references:
        text = own_words(body_text(message))
        reply = Reply(text=text, answer=read_answer(text))
        reason = "In-Reply-To/References" + (" (truncated multipart)" if truncated else "")
        return replace(common, kind=Kind.REPLY, reply=reply, reason=reason)

    if truncated:
        return _malformed(common, "multipart cut short (closing boundary missing)")
    return replace(common, reason="no In-Reply-To or References")


def _structure(message: Message) -> tuple[str, bool]:
    """(why the MIME structure is broken, or "", whether a multipart was cut short)."""
    truncated = False
    for part in parts(message):
        for defect in part.defects:
            name = type(defect).__name__
            if name in _BROKEN_STRUCTURE:
                return _BROKEN_STRUCTURE[name], truncated
            if name == "CloseBoundaryNotFoundDefect":
                truncated = True
    return "", truncated


def _malformed(common: Inbound | None, reason: str) -> Inbound:
    if common is None:
        return Inbound(kind=Kind.MALFORMED, message_id=None, sender=None, subject="", reason=reason)
    return replace(common, kind=Kind.MALFORMED, reason=reason)


def _delivered_to_numbers(message: Message, secret: str) -> tuple[int, ...]:
    """The outbox rows named by our signed return path, in the addresses it was delivered to."""
    if not secret:
        return ()
    numbers: list[int] = []
    for name in _ENVELOPE_HEADERS:
        for number in numbers_in(headers(message, name), secret):
            if number not in numbers:
                numbers.append(number)
    return tuple(numbers)


def _printable(value: Any) -> Any:
    """`value` with every string in it (through dataclasses and tuples) free of controls."""
    if isinstance(value, Enum):
        return value
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, tuple):
        return tuple(_printable(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            field.name: _printable(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
        return dataclasses.replace(value, **changes)
    return value
