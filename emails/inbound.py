"""Read the service's mailbox: what kind of message came back, and what it says.

Pure parsing, no database, no IMAP, no Flask: `classify(raw)` takes the bytes of one message
and returns an `Inbound`, and never raises. The kinds, first match wins:

1. BOUNCE: an RFC 3464 delivery report (`multipart/report; report-type=delivery-status`, also
   `message/global-delivery-status`), or a non-standard one (Postfix/Exim/qmail text, a
   "Mail Delivery Subsystem"/MAILER-DAEMON sender, an "Undeliverable:" subject) with the
   failed recipient and an SMTP or enhanced status code in its text. A report about several
   recipients gives the first failed one (the first delayed one when none failed); the service
   sends one message per member, so such reports are rare.
2. CALENDAR_REPLY: any `text/calendar` (or `application/ics`, or `*.ics`) part with
   METHOD:REPLY, even when the message is marked as automatic or comes from a robot address,
   as calendar services mark their replies so. A REPLY whose PARTSTAT is none of ACCEPTED,
   DECLINED, TENTATIVE is UNRELATED; one without UID or attendee is MALFORMED.
3. AUTO_REPLY: Auto-Submitted other than "no", X-Autoreply and kin, Precedence bulk/junk/list,
   an empty Return-Path, X-MS-Exchange-Inbox-Rules-Loop, an autoresponder X-Mailer, an
   out-of-office subject (English, Khmer, common European languages), a read receipt. Its
   `reply` carries the references and text (answer always None), so that an out-of-office
   can be tied to the invitation it answers.
4. REPLY: a message with In-Reply-To or References; its answer is read from the reader's own
   words (`own_words`, then `read_answer`). Without any reference: UNRELATED.

MALFORMED: no headers, binary junk, a multipart without (or with a missing) boundary, or any
message that cannot be read; a multipart cut short is read as far as it goes and is MALFORMED
only when nothing useful is found in it.

VERP: the service sends with the envelope sender `bounces+TOKEN@domain` (`verp_address`);
bounces and auto-replies come back to it, and `verp_token` reads TOKEN back. `classify` looks
for it in Delivered-To / X-Original-To / Envelope-To / To / Cc (then in the Return-Path of the
returned message) and gives it as `Bounce.verp_token` and, for any kind, `Inbound.verp_token`.

`own_words`, `read_answer` and `html_to_text` are usable on their own.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import default as default_policy
from email.utils import collapse_rfc2231_value, getaddresses, parseaddr
from enum import StrEnum
from html.parser import HTMLParser

from icalendar import Calendar


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
    recipient: str  # the failed address, lowercased; "" when the report names none
    status: str  # enhanced status code, e.g. "5.1.1", "4.2.2", "5.7.26"
    diagnostic: str  # one line
    hard: bool  # 5.x.x and not an "Action: delayed" report
    policy: bool  # x.7.x: refused for the sender's reasons (DMARC, spam, ...), not the member's
    original_message_id: str | None  # Message-ID of the bounced message, with <>
    verp_token: str | None  # TOKEN of bounces+TOKEN@domain the report was sent to


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
    references: tuple[str, ...]  # In-Reply-To, then References in their order; with <>
    text: str  # the reader's own words: quoted history and signature removed
    answer: Answer | None  # None when ambiguous or no answer found


@dataclass(frozen=True)
class Inbound:
    kind: Kind
    message_id: str | None
    sender: str | None  # From address, lowercased
    subject: str
    bounce: Bounce | None = None
    calendar: CalendarReply | None = None
    reply: Reply | None = None  # REPLY, and AUTO_REPLY (answer None)
    reason: str = ""  # why it was classified so, one line
    verp_token: str | None = None  # TOKEN of the bounces+TOKEN@ address it came to, any kind


# --- VERP ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9._=-]+")


def verp_address(token: str, domain: str, prefix: str = "bounces") -> str:
    """The envelope sender that carries `token`: "bounces+TOKEN@domain"."""
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"a VERP token is made of letters, digits and ._=- only: {token!r}")
    if not _TOKEN.fullmatch(prefix):
        raise ValueError(f"not a VERP prefix: {prefix!r}")
    if not domain or "@" in domain or any(char.isspace() for char in domain):
        raise ValueError(f"not a domain: {domain!r}")
    return f"{prefix}+{token}@{domain}"


def verp_token(address: str, prefix: str = "bounces") -> str | None:
    """TOKEN of "bounces+TOKEN@domain" (also inside "Name <...>"); None for other addresses."""
    addr = parseaddr(address or "")[1] or (address or "").strip().strip("<>")
    local, at, _domain = addr.rpartition("@")
    if not at:
        return None
    head, plus, token = local.partition("+")
    if not plus or head.lower() != prefix.lower() or not _TOKEN.fullmatch(token):
        return None
    return token


# --- classify -----------------------------------------------------------------------------

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


def classify(raw: bytes, *, verp_prefix: str = "bounces") -> Inbound:
    """What one received message is. Never raises: unreadable input is MALFORMED."""
    try:
        return _classify(raw, verp_prefix)
    except Exception as error:  # the mailbox may hold anything; nothing here may stop a run
        return Inbound(
            kind=Kind.MALFORMED,
            message_id=None,
            sender=None,
            subject="",
            reason=f"unreadable message ({type(error).__name__})",
        )


def _classify(raw: bytes, verp_prefix: str) -> Inbound:
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    raw = bytes(raw)
    if not raw.strip():
        return _malformed(None, "empty message")
    message = BytesParser(policy=default_policy).parsebytes(raw)
    names = {name.lower() for name, _value in message.raw_items()}
    if not names & _KNOWN_HEADERS:
        return _malformed(None, "no mail headers")

    common = {
        "message_id": _message_id(message),
        "sender": _sender(message),
        "subject": _one_line(_header(message, "Subject")),
        "verp_token": _delivered_token(message, verp_prefix),
    }
    truncated = False
    for part in _parts(message):
        for defect in part.defects:
            name = type(defect).__name__
            if name in _BROKEN_STRUCTURE:
                return _malformed(common, _BROKEN_STRUCTURE[name])
            if name == "CloseBoundaryNotFoundDefect":
                truncated = True

    bounce = _find_bounce(message, verp_prefix, common["verp_token"])
    if bounce is not None:
        found, reason = bounce
        return Inbound(kind=Kind.BOUNCE, bounce=found, reason=reason, **common)

    calendar = _find_calendar_reply(message, common["sender"])
    if calendar is not None:
        kind, reply, reason = calendar
        return Inbound(kind=kind, calendar=reply, reason=reason, **common)

    references = _references(message)
    auto = _auto_reply_reason(message, common["subject"])
    if auto:
        text = own_words(_body_text(message))
        reply = Reply(references=references, text=text, answer=None)
        return Inbound(kind=Kind.AUTO_REPLY, reply=reply, reason=auto, **common)

    if references:
        text = own_words(_body_text(message))
        reply = Reply(references=references, text=text, answer=read_answer(text))
        reason = "In-Reply-To/References" + (" (truncated multipart)" if truncated else "")
        return Inbound(kind=Kind.REPLY, reply=reply, reason=reason, **common)

    if truncated:
        return _malformed(common, "multipart cut short (closing boundary missing)")
    return Inbound(kind=Kind.UNRELATED, reason="no In-Reply-To or References", **common)


def _malformed(common: dict | None, reason: str) -> Inbound:
    common = common or {"message_id": None, "sender": None, "subject": ""}
    return Inbound(kind=Kind.MALFORMED, reason=reason, **common)


# --- headers and parts --------------------------------------------------------------------


def _header(message: Message, name: str) -> str:
    """A header as text; the raw value when the policy cannot parse it; "" when absent."""
    try:
        value = message.get(name)
    except Exception:
        value = None
        for key, raw_value in message.raw_items():
            if key.lower() == name.lower():
                value = raw_value
                break
    return "" if value is None else str(value)


def _headers(message: Message, name: str) -> list[str]:
    try:
        return [str(value) for value in message.get_all(name) or []]
    except Exception:
        return [value for key, value in message.raw_items() if key.lower() == name.lower()]


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _message_id(message: Message) -> str | None:
    value = _header(message, "Message-ID").strip()
    found = _MSGID.search(value)
    if found:
        return found.group(0)
    return value or None


def _sender(message: Message) -> str | None:
    address = _address(_header(message, "From"))
    return address or None


def _address(value: str) -> str:
    """The first address in a header value, lowercased; "" when none."""
    try:
        pairs = getaddresses([value])
    except Exception:
        pairs = []
    for _name, address in pairs:
        if address:
            return address.strip().lower()
    return ""


def _delivered_token(message: Message, prefix: str) -> str | None:
    """The VERP token of the address the message was delivered to."""
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc"):
        for value in _headers(message, name):
            try:
                pairs = getaddresses([value])
            except Exception:
                continue
            for _name, address in pairs:
                token = verp_token(address, prefix)
                if token:
                    return token
    return None


_MSGID = re.compile(r"<[^<>\s]+>")


def _references(message: Message) -> tuple[str, ...]:
    found: list[str] = []
    for name in ("In-Reply-To", "References"):
        for value in _headers(message, name):
            ids = _MSGID.findall(value)
            if not ids:
                bare = value.strip()
                if "@" in bare and not any(char.isspace() for char in bare):
                    ids = [f"<{bare}>"]
            for message_id in ids:
                if message_id not in found:
                    found.append(message_id)
    return tuple(found)


def _parts(message: Message, *, into_messages: bool = False) -> Iterator[Message]:
    """Every part, depth first; attached messages (message/*) only when asked."""
    yield message
    payload = message.get_payload()
    if not isinstance(payload, list):
        return
    if message.get_content_maintype() == "message" and not into_messages:
        return
    if message.get_content_maintype() not in ("multipart", "message"):
        return
    for part in payload:
        if isinstance(part, Message):
            yield from _parts(part, into_messages=into_messages)


def _is_attachment(part: Message) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    return disposition == "attachment"


def _decoded_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return payload
    return b""


def _text_of(part: Message) -> str:
    """A leaf part's content as text, whatever its charset claims."""
    data = _decoded_bytes(part)
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8"):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _message_part_text(part: Message) -> str:
    """The text of a message/* part that the parser split into header blocks."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return _text_of(part)
    blocks = []
    for block in payload:
        if not isinstance(block, Message):
            continue
        lines = [f"{name}: {value}" for name, value in block.raw_items()]
        body = block.get_payload()
        text = "\n".join(lines)
        if isinstance(body, str) and body.strip():
            text = f"{text}\n\n{body}" if lines else body
        blocks.append(text)
    text = "\n\n".join(blocks)
    encoding = _header(part, "Content-Transfer-Encoding").strip().lower()
    if encoding == "base64":
        try:
            text = base64.b64decode("".join(text.split()), validate=False).decode(
                "utf-8", "replace"
            )
        except (binascii.Error, ValueError):
            pass
    elif encoding == "quoted-printable":
        text = quopri.decodestring(text.encode("utf-8", "replace")).decode("utf-8", "replace")
    return text


def _body_text(message: Message) -> str:
    """The first text/plain part that is not an attachment; else the first HTML one as text."""
    html = None
    for part in _parts(message):
        if part.is_multipart() or _is_attachment(part):
            continue
        content_type = part.get_content_type()
        if content_type == "text/plain":
            return _text_of(part)
        if content_type == "text/html" and html is None:
            html = part
    if html is not None:
        return html_to_text(_text_of(html))
    return ""


# --- bounces ------------------------------------------------------------------------------

# Enhanced status codes (RFC 3463) of failures only: 2.x.x is success, and bare 2.x.y is as
# likely a version number.
_STATUS = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
_SMTP_AND_STATUS = re.compile(r"(?<!\d)([45]\d\d)[ -]([45]\.\d{1,3}\.\d{1,3})(?!\d|\.\d)")
_SMTP_CODE = re.compile(r"(?:^|said:|returned|error|\(#|;|:)\s*'?([45]\d\d)(?=[\s-])", re.I | re.M)
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_DAEMONS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mail-delivery-subsystem"}
_DAEMON_NAMES = re.compile(r"mail delivery (subsystem|system)|mailer-daemon", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver(ed|able)|returned mail|delivery (status notification|failure|has failed"
    r"|failed|problem)|mail delivery failed|failure notice|could not be delivered"
    r"|delayed mail|non[- ]?delivery|rejected:|nicht zustellbar|non remis",
    re.I,
)
_BOUNCE_BODY = re.compile(
    r"this is the qmail-send program|this is the mail system at host"
    r"|could not be delivered to one or more|delivery to the following recipient"
    r"|following address\(es\) failed|message could not be delivered"
    r"|wasn't delivered to|couldn't be delivered|permanent fatal error",
    re.I,
)
_COPY_MARKER = re.compile(
    r"^(?:-{2,}.*(?:below this line|copy of the message|original message|returned message)"
    r"|original message headers:|-{2,}\s*transcript of session)",
    re.I | re.M,
)
_TEXT_RECIPIENT = (
    re.compile(r"^\s*<(" + _ADDRESS.pattern + r")>\s*(?::|\.\.\.)", re.M),
    re.compile(
        r"(?:final|original)-recipient:\s*(?:rfc822\s*;)?\s*<?(" + _ADDRESS.pattern + ")", re.I
    ),
    re.compile(r"rcpt to:\s*<(" + _ADDRESS.pattern + ")>", re.I),
    re.compile(r"address(?:\(es\))? failed:\s*<?(" + _ADDRESS.pattern + ")", re.I),
)


def _find_bounce(
    message: Message, prefix: str, delivered_token: str | None
) -> tuple[Bounce, str] | None:
    reports = [
        part
        for part in _parts(message)
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status")
    ]
    for report in reports:
        found = _from_delivery_status(message, report, prefix, delivered_token)
        if found is not None:
            return found
    if reports:
        return None  # a report that no recipient failed in: a delivery notice, no bounce
    return _from_bounce_text(message, prefix, delivered_token)


def _field_blocks(text: str) -> list[dict[str, str]]:
    """RFC 822-style field blocks separated by blank lines; names lowercased, first one kept."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
            continue
        if line[0] in " \t" and last is not None:
            current[last] = f"{current[last]} {line.strip()}"
            continue
        name, colon, value = line.partition(":")
        if colon and name.strip() and " " not in name.strip():
            last = name.strip().lower()
            if last in current:
                last = None  # a repeated field: keep the first
            else:
                current[last] = value.strip()
        else:
            last = None
    if current:
        blocks.append(current)
    return blocks


def _typed_address(value: str) -> str:
    """ "rfc822; <User@Example.org>" -> "user@example.org"."""
    kind, semicolon, address = value.partition(";")
    if not semicolon:
        address = kind
    address = address.strip().strip("<>").strip()
    found = _ADDRESS.search(address)
    return (found.group(0) if found else address).lower()


def _status_from(*texts: str) -> str:
    for text in texts:
        pair = _SMTP_AND_STATUS.search(text)
        if pair:
            return pair.group(2)
    for text in texts:
        found = _STATUS.search(text)
        if found:
            return found.group(0)
    for text in texts:
        code = _SMTP_CODE.search(text)
        if code:
            return f"{code.group(1)[0]}.0.0"
    return ""


def _diagnostic(value: str) -> str:
    """One line: the type ("smtp;") dropped, repeated multi-line reply codes folded away."""
    value = _one_line(value)
    value = re.sub(r"^[A-Za-z][\w-]*\s*;\s*", "", value)
    start = _SMTP_AND_STATUS.match(value)
    if start:
        repeated = re.compile(
            r"\s" + start.group(1) + r"[ -]" + re.escape(start.group(2)) + r"(?:\s+|$)"
        )
        value = value[: start.end()] + repeated.sub(" ", value[start.end() :])
        value = value[: start.end()].replace("-", " ", 1) + value[start.end() :]
    value = _one_line(value)
    return value if len(value) <= 500 else value[:499] + "…"


def _from_delivery_status(
    message: Message, report: Message, prefix: str, delivered_token: str | None
) -> tuple[Bounce, str] | None:
    blocks = _field_blocks(_message_part_text(report))
    recipients = [
        block
        for block in blocks
        if "final-recipient" in block or "original-recipient" in block or "action" in block
    ]
    chosen, action = _first_failed(recipients)
    if chosen is None:
        return None
    recipient = _typed_address(
        chosen.get("original-recipient") or chosen.get("final-recipient", "")
    )
    diagnostic_field = chosen.get("diagnostic-code", "")
    status = _pick_status(chosen.get("status", ""), diagnostic_field)
    human = _human_text(message)
    if not status:
        status = _status_from(human) or ("4.0.0" if action == "delayed" else "5.0.0")
    diagnostic = _diagnostic(diagnostic_field) if diagnostic_field else _human_line(human, status)
    bounce = _bounce(
        recipient=recipient,
        status=status,
        diagnostic=diagnostic,
        delayed=action == "delayed",
        original=_original_message_id(message),
        token=delivered_token or _original_token(message, prefix),
    )
    return bounce, f"delivery-status report: {action} {status}"


def _first_failed(recipients: list[dict[str, str]]) -> tuple[dict[str, str] | None, str]:
    """The first recipient block that failed, else the first delayed one."""

    def action_of(block: dict[str, str]) -> str:
        action = block.get("action", "").strip().lower().split(" ")[0]
        if action:
            return action
        status = _STATUS.search(block.get("status", ""))
        return {"5": "failed", "4": "delayed"}.get(status.group(1), "") if status else ""

    for wanted in ("failed", "delayed"):
        for block in recipients:
            if action_of(block) == wanted:
                return block, wanted
    return None, ""


def _pick_status(field: str, diagnostic: str) -> str:
    """The Status field; the diagnostic's code when it is more precise (5.0.0 vs 550 5.1.1)."""
    found = _STATUS.search(field)
    status = found.group(0) if found else ""
    detail = _status_from(diagnostic)
    if not status:
        return detail
    if status.endswith(".0.0") and detail[:1] == status[:1] and not detail.endswith(".0.0"):
        return detail
    return status


def _bounce(
    *,
    recipient: str,
    status: str,
    diagnostic: str,
    delayed: bool,
    original: str | None,
    token: str | None,
) -> Bounce:
    status_class = status.split(".")
    return Bounce(
        recipient=recipient,
        status=status,
        diagnostic=diagnostic,
        hard=status.startswith("5") and not delayed,
        policy=len(status_class) == 3 and status_class[1] == "7",
        original_message_id=original,
        verp_token=token,
    )


def _human_text(message: Message) -> str:
    """The readable notification of a report: its first text/plain (or HTML) part."""
    for part in _parts(message):
        if not part.is_multipart() and part.get_content_type() == "text/plain":
            return _text_of(part)
    for part in _parts(message):
        if not part.is_multipart() and part.get_content_type() == "text/html":
            return html_to_text(_text_of(part))
    return ""


def _human_line(text: str, status: str) -> str:
    """The line of the notification that carries the status, else its first non-empty line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if status and status in line:
            return _diagnostic(line)
    return _diagnostic(lines[0]) if lines else ""


def _original_message_id(message: Message) -> str | None:
    """Message-ID of the returned message: message/rfc822, text/rfc822-headers, or inline."""
    for part in _parts(message):
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                found = _message_id(payload[0])
                if found:
                    return found
        elif content_type in ("text/rfc822-headers", "message/global-headers"):
            headers = HeaderParser(policy=default_policy).parsestr(_text_of(part))
            found = _message_id(headers)
            if found:
                return found
    found = re.search(r"^message-id:\s*(<[^<>\s]+>)", _human_text(message), re.I | re.M)
    return found.group(1) if found else None


def _original_token(message: Message, prefix: str) -> str | None:
    """The VERP token in the Return-Path of the returned message, when it was not in ours."""
    for part in _parts(message):
        content_type = part.get_content_type()
        headers = None
        if content_type in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                headers = payload[0]
        elif content_type in ("text/rfc822-headers", "message/global-headers"):
            headers = HeaderParser(policy=default_policy).parsestr(_text_of(part))
        if headers is not None:
            token = verp_token(_header(headers, "Return-Path"), prefix)
            if token:
                return token
    return None


def _is_daemon(message: Message) -> bool:
    value = _header(message, "From")
    address = _address(value)
    local = address.partition("@")[0] if address else value.strip().lower()
    return local in _DAEMONS or bool(_DAEMON_NAMES.search(value))


def _from_bounce_text(
    message: Message, prefix: str, delivered_token: str | None
) -> tuple[Bounce, str] | None:
    """A bounce that is no RFC 3464 report: Postfix/Exim/qmail text, Exchange, others."""
    text = _human_text(message)
    subject = _header(message, "Subject")
    signals = []
    if _is_daemon(message):
        signals.append("mailer-daemon sender")
    if _BOUNCE_SUBJECT.search(subject):
        signals.append("bounce subject")
    if _BOUNCE_BODY.search(text[:4000]):
        signals.append("bounce text")
    # A daemon's sender, or a bounce subject backed by a bounce text, decides; a subject alone
    # ("Re: Undelivered ...") may be a person's.
    if not ("mailer-daemon sender" in signals or len(signals) >= 2):
        return None
    copy = _COPY_MARKER.search(text)
    notice = text[: copy.start()] if copy else text
    exclude = {_address(_header(message, "From")), _address(_header(message, "To"))}
    recipient = ""
    for pattern in _TEXT_RECIPIENT:
        found = pattern.search(notice)
        if found:
            recipient = found.group(1).lower()
            break
    if not recipient:
        for found in _ADDRESS.finditer(notice):
            address = found.group(0).lower()
            local = address.partition("@")[0]
            if address in exclude or local in _DAEMONS or verp_token(address, prefix):
                continue
            recipient = address
            break
    delayed = bool(
        re.search(
            r"delayed|not yet been delivered|will (keep|continue) trying|temporar", subject, re.I
        )
        or re.search(r"has not yet been delivered|will (keep|continue) trying", notice, re.I)
    )
    status = _status_from(notice)
    if not status:
        status = "4.0.0" if delayed else "5.0.0"
    if status.startswith("4"):
        delayed = True
    diagnostic = _human_line(notice, status)
    bounce = _bounce(
        recipient=recipient,
        status=status,
        diagnostic=diagnostic,
        delayed=delayed,
        original=_original_message_id(message),
        token=delivered_token or _original_token(message, prefix),
    )
    reason = f"non-standard bounce ({', '.join(signals)}): {status}"
    if not recipient:
        reason += ", recipient not found"
    return bounce, reason


# --- calendar replies ---------------------------------------------------------------------

_PARTSTAT = {"ACCEPTED": Answer.YES, "DECLINED": Answer.NO, "TENTATIVE": Answer.MAYBE}
_CALENDAR_TYPES = {"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"}


def _calendar_parts(message: Message) -> Iterator[Message]:
    for part in _parts(message):
        if part.is_multipart():
            continue
        filename = ""
        try:
            filename = (part.get_filename() or "").lower()
        except Exception:
            filename = ""
        if part.get_content_type() in _CALENDAR_TYPES or filename.endswith(".ics"):
            yield part


def _find_calendar_reply(
    message: Message, sender: str | None
) -> tuple[Kind, CalendarReply | None, str] | None:
    broken = None
    for part in _calendar_parts(message):
        data = _text_of(part)  # in the part's charset: not every client writes UTF-8
        method_param = collapse_rfc2231_value(part.get_param("method") or "")
        claims_reply = method_param.strip().upper() == "REPLY" or bool(
            re.search(r"^METHOD:\s*REPLY\s*$", data, re.I | re.M)
        )
        try:
            calendar = Calendar.from_ical(data)
        except Exception:
            if claims_reply:
                broken = "text/calendar METHOD:REPLY that does not parse"
            continue
        method = str(calendar.get("METHOD", "") or method_param).strip().upper()
        if method != "REPLY":
            continue
        return _calendar_reply(calendar, sender)
    if broken:
        return Kind.MALFORMED, None, broken
    return None


def _mailto(value: object) -> str:
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.strip().lower() if "@" in text else ""


def _calendar_reply(
    calendar: Calendar, sender: str | None
) -> tuple[Kind, CalendarReply | None, str]:
    events = calendar.walk("VEVENT")
    if not events:
        return Kind.MALFORMED, None, "calendar REPLY without a VEVENT"
    # The master event first; a reply to one occurrence has only events with RECURRENCE-ID.
    event = next((e for e in events if "RECURRENCE-ID" not in e), events[0])
    uid = str(event.get("UID", "") or "").strip()
    if not uid:
        return Kind.MALFORMED, None, "calendar REPLY without UID"

    attendees = event.get("ATTENDEE")
    if attendees is None:
        attendees = []
    elif not isinstance(attendees, list):
        attendees = [attendees]
    candidates = []
    for attendee in attendees:
        params = getattr(attendee, "params", {}) or {}
        address = _mailto(attendee) or _mailto(params.get("EMAIL", ""))
        partstat = str(params.get("PARTSTAT", "NEEDS-ACTION")).strip().upper()
        if address:
            candidates.append((address, partstat))
    if not candidates:
        return Kind.MALFORMED, None, "calendar REPLY without an attendee address"
    chosen = next((c for c in candidates if c[0] == sender), None)
    chosen = chosen or next((c for c in candidates if c[1] in _PARTSTAT), candidates[0])
    address, partstat = chosen
    if partstat not in _PARTSTAT:
        return Kind.UNRELATED, None, f"calendar REPLY with PARTSTAT={partstat}"

    try:
        sequence = int(event.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        sequence = 0
    organizer = _mailto(event.get("ORGANIZER")) or None
    comment = event.get("COMMENT", "")
    if isinstance(comment, list):
        comment = comment[0] if comment else ""
    reply = CalendarReply(
        uid=uid,
        recurrence_id=_recurrence_id(event),
        sequence=sequence,
        attendee=address,
        answer=_PARTSTAT[partstat],
        organizer=organizer,
        comment=str(comment).strip(),
    )
    return Kind.CALENDAR_REPLY, reply, f"text/calendar METHOD:REPLY PARTSTAT={partstat}"


def _recurrence_id(event) -> str | None:
    value = event.get("RECURRENCE-ID")
    if value is None:
        return None
    moment = getattr(value, "dt", None)
    if isinstance(moment, datetime):
        if moment.tzinfo is not None and moment.utcoffset() is not None:
            return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        return moment.strftime("%Y%m%dT%H%M%S")
    if isinstance(moment, date):
        return moment.strftime("%Y%m%d")
    try:
        return value.to_ical().decode("ascii", "replace")
    except Exception:
        return str(value)


# --- auto-replies -------------------------------------------------------------------------

_AUTO_HEADERS = (
    "X-Autoreply",
    "X-Autorespond",
    "X-AutoReply-From",
    "X-Mail-Autoreply",
    "X-Autogenerated",
    "X-Vacation",
    "X-MS-Exchange-Inbox-Rules-Loop",
)
_AUTO_MAILER = re.compile(r"vacation|auto-?respond|auto-?reply|out of office|autoresponder", re.I)
_AUTO_SUBJECT = re.compile(
    r"out of (the )?office|automatic reply|automatische antwort|auto[- ]?reply|autoreply"
    r"|auto[- ]?respon(se|der)|automatic response|away from (the )?office|vacation reply"
    r"|abwesenheitsnotiz|abwesenheit|réponse automatique|absent du bureau|respuesta automática"
    r"|fuera de (la )?oficina|risposta automatica|fuori ufficio|automatisch antwoord"
    r"|afwezig|resposta automática|fora do escritório|automatyczna odpowiedź|autosvar"
    r"|automaattinen vastaus|frånvaro|自动回复|自動回覆|自動応答"
    r"|ស្វ័យប្រវត្តិ|មិននៅការិយាល័យ|ក្រៅការិយាល័យ"
    r"|^\s*(auto|ooo|vacation|absence|away)\s*:",
    re.I,
)


def _auto_reply_reason(message: Message, subject: str) -> str:
    auto = _header(message, "Auto-Submitted").strip()
    if auto and auto.split(";")[0].strip().lower() != "no":
        return f"Auto-Submitted: {_one_line(auto)}"
    for name in _AUTO_HEADERS:
        if _headers(message, name):
            return f"{name} present"
    precedence = _header(message, "Precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if any(value.strip() in ("<>", "") for value in _headers(message, "Return-Path")):
        return "empty Return-Path"
    mailer = _header(message, "X-Mailer")
    if _AUTO_MAILER.search(mailer):
        return f"X-Mailer: {_one_line(mailer)}"
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type") or "").lower()
        if report_type:
            return f"report-type={report_type}"
    if _AUTO_SUBJECT.search(_unzero(subject)):
        return f"out-of-office subject: {subject}"
    return ""


# --- own words ----------------------------------------------------------------------------

_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


def _unzero(text: str) -> str:
    return _ZERO_WIDTH.sub("", text)


_ATTRIBUTION = (
    re.compile(r"^\s*on\b.{0,300}\bwrote\s*:\s*$", re.I | re.S),
    re.compile(r"^\s*le\b.{0,300}\ba écrit\s*:\s*$", re.I | re.S),
    re.compile(r"^\s*am\b.{0,300}\bschrieb\b.{0,200}:\s*$", re.I | re.S),
    re.compile(r"^\s*el\b.{0,300}\bescribió\s*:\s*$", re.I | re.S),
    re.compile(r"^\s*នៅ.{0,300}បាន\s*សរសេរ\s*[៖:]?\s*$", re.S),
)
_CUT_LINE = re.compile(
    r"^\s*(?:-{2,}\s*(?:original message|forwarded message|message d'origine"
    r"|ursprüngliche nachricht|mensaje original)\s*-{2,}"
    r"|_{10,}"
    r"|begin forwarded message:)",
    re.I,
)
_SIGNATURE = re.compile(
    r"^(?:--\s*$|sent from my \w+|sent from (?:mail|outlook|yahoo|gmail)\b|get outlook for\b"
    r"|sent with proton mail|sent via )",
    re.I,
)
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|ពី|von|de)\s*\*?\s*:\s*\S", re.I)
_HEADER_SENT = re.compile(
    r"^\s*\*?(?:sent|date|បានផ្ញើ|gesendet|envoyé|enviado)\s*\*?\s*:\s*\S", re.I
)


def _is_attribution(lines: list[str], index: int) -> int:
    """How many lines from `index` make an "On ... wrote:" line (Gmail may fold it); 0 if none."""
    for span in (1, 2, 3):
        if index + span > len(lines):
            break
        joined = _unzero(" ".join(line.strip() for line in lines[index : index + span]))
        if any(pattern.match(joined) for pattern in _ATTRIBUTION):
            return span
    return 0


def _is_header_block(lines: list[str], index: int) -> bool:
    """Outlook's quoted header block: "From: ..." with "Sent:" or "Date:" in the next lines."""
    if not _HEADER_FROM.match(_unzero(lines[index])):
        return False
    return any(_HEADER_SENT.match(_unzero(line)) for line in lines[index + 1 : index + 5])


def own_words(text: str) -> str:
    """The writer's own words: the text above the quoted history and the signature.

    Cuts at the first line quoted with ">", an "On ... wrote:" attribution (also folded over
    two or three lines, and in Khmer, French, German, Spanish), "-----Original Message-----",
    an Outlook "From: / Sent:" header block, a "____" separator, a "-- " signature line or a
    "Sent from my iPhone"-style footer. When nothing is left above the quote (a bottom-posted
    answer), the unquoted lines below it are taken instead.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    quoted_from = None
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if (
            stripped.startswith(">")
            or _is_attribution(lines, index)
            or _CUT_LINE.match(line)
            or _is_header_block(lines, index)
        ):
            quoted_from = index
            break
        if _SIGNATURE.match(line.strip()):
            break
        kept.append(line.rstrip())
    result = "\n".join(kept).strip()
    if result or quoted_from is None:
        return result
    return _bottom_posted(lines[quoted_from:])


def _bottom_posted(lines: list[str]) -> str:
    """The unquoted lines of a bottom-posted answer, up to its signature."""
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        span = _is_attribution(lines, index)
        if span:
            index += span
            continue
        if line.lstrip().startswith(">"):
            index += 1
            continue
        if (
            _SIGNATURE.match(line.strip())
            or _CUT_LINE.match(line)
            or _is_header_block(lines, index)
        ):
            break
        kept.append(line.rstrip())
        index += 1
    return "\n".join(kept).strip()


class _HtmlText(HTMLParser):
    """HTML to plain text, leaving out quoted history (blockquote, Gmail's quote) and scripts."""

    _VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
    _BLOCK = {
        "p",
        "div",
        "br",
        "tr",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "table",
        "ul",
        "ol",
        "pre",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
    }
    _SKIP_TAGS = {"blockquote", "style", "script", "head", "title", "template"}
    _SKIP_CLASSES = {"gmail_quote", "gmail_signature", "moz-cite-prefix", "moz-signature"}
    _SKIP_IDS = {"divrplyfwdmsg"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.out: list[str] = []

    @property
    def skipping(self) -> bool:
        return any(skip for _tag, skip in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK and not self.skipping:
            self.out.append("\n")
        if tag in self._VOID:
            return
        attributes = {name.lower(): (value or "") for name, value in attrs}
        classes = set(attributes.get("class", "").lower().split())
        skip = (
            tag in self._SKIP_TAGS
            or bool(classes & self._SKIP_CLASSES)
            or attributes.get("id", "").lower() in self._SKIP_IDS
        )
        self.stack.append((tag, skip))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK and not self.skipping:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        for position in range(len(self.stack) - 1, -1, -1):
            if self.stack[position][0] == tag:
                del self.stack[position:]
                break
        if tag in self._BLOCK and not self.skipping:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(re.sub(r"[ \t\r\n\f]+", " ", data))


def html_to_text(html: str) -> str:
    """A simple text rendering of an HTML body, without its quoted history."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        pass
    text = "".join(parser.out).replace("\xa0", " ")
    lines = [line.strip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- answers ------------------------------------------------------------------------------

_KM_BEFORE = r"(?<!\u17d2)"  # not the subscript (coeng) half of a cluster
_KM_AFTER = r"(?![\u17b6-\u17d3\u17dd])"  # not followed by a vowel sign: not a longer word


def _english(*phrases: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w'])(?:" + "|".join(phrases) + r")(?![\w'])", re.M)


def _khmer(*phrases: str) -> re.Pattern[str]:
    return re.compile(_KM_BEFORE + "(?:" + "|".join(phrases) + ")" + _KM_AFTER)


_CANT = r"(?:can't|cannot|can\s+not|couldn't|could\s+not)"
_WONT = r"(?:won't|will\s+not|wouldn't|would\s+not|shan't|i'll\s+not)"
_GO = r"(?:attend|come|join|make\s+it|be\s+there|participate)"

# Phrases that look like answers and are not: removed before anything else.
_NEUTRAL = _english(
    r"no\s+(?:problems?|worries|doubts?|objections?|issues?|questions?|comments?|changes?)",
    r"no\s*-?\s*one",
    r"no\.\s*\d+",
    r"yes\s+or\s+no",
    r"yes/no/maybe",
    r"yes/no",
)
_NO = (
    _english(
        rf"{_CANT}\s+{_GO}",
        rf"{_WONT}\s+(?:be\s+able|{_GO}|be\s+attending|be\s+coming|be\s+joining)",
        rf"(?:not\s+(?:be\s+)?able|unable)\s+to(?:\s+{_GO})?",
        r"not\s+(?:be\s+)?(?:attend(?:ing)?|com(?:e|ing)|join(?:ing)?|participat(?:e|ing))",
        rf"(?:don't|do\s+not)\s+think\s+i\s+(?:can|will|'ll|could)\s+{_GO}",
        r"(?:maybe|perhaps|hopefully)\s+next\s+time",
        r"regret\w*",
        r"declin(?:e|ed|ing)",
        r"count\s+me\s+out",
        r"unavailable",
        r"not\s+available",
        # "no" as an answer: a sentence of its own or its first word ("No, sorry", "Sadly
        # no."), not a determiner in the middle of one ("we have no projector").
        r"(?:^|(?<=[.!?,;:(])|(?<=[.!?,;:(]\s))no",
        r"no(?=\s*(?:[.!?,;:)]|$))",
        r"no\s+thanks?(?:\s+you)?",
        r"nope",
    ),
    _khmer(
        r"(?:មិនទាន់|មិន|អត់|ពុំ)\s*(?:អាច|បាន)?\s*(?:ចូលរួម|មក|ទៅ)",
        r"អត់ទេ",
        r"បដិសេធ",
    ),
)
_MAYBE = (
    _english(
        rf"not\s+(?:yet\s+)?(?:sure|certain)(?:\s+(?:if|whether|that))?(?:\s+i(?:'ll)?)?"
        rf"(?:\s+(?:can|could|will|would|be\s+able\s+to))?(?:\s+{_GO})?",
        rf"(?:i'll|i\s+will)\s+try(?:\s+to\s+{_GO})?",
        rf"try\s+to\s+{_GO}",
        r"maybe",
        r"perhaps",
        r"possibly",
        r"probably",
        r"tentative(?:ly)?",
        r"unsure",
        r"uncertain",
        r"might",
        r"may\s+be\s+able",
        r"to\s+be\s+confirmed",
        r"tbc",
    ),
    _khmer(
        r"ប្រហែល(?:ជា)?(?:\s*ខ្ញុំ)?(?:\s*នឹង)?(?:\s*អាច)?(?:\s*ចូលរួម|\s*មក)?",
        r"មិន(?:ទាន់)?(?:ប្រាកដ|ច្បាស់)",
        r"(?:នឹង)?ព្យាយាម(?:\s*ចូលរួម|\s*មក)?",
    ),
)
# "Yes" itself: conflicts with a "no" or a "maybe" (then the answer is ambiguous).
_YES_STRONG = (
    _english(
        r"yes",
        r"yep",
        r"yeah",
        r"yup",
        r"of\s+course",
        r"count\s+me\s+in",
        r"absolutely",
    ),
)
# Words of coming: they give "yes" alone, and give way to a "no" or a "maybe" next to them
# ("I am not sure I can attend"; the Khmer politeness particles បាទ/ចាស open "no" answers too).
_YES_WEAK = (
    _english(
        rf"(?:i\s+will|i'll|we\s+will|we'll|i\s+can|we\s+can|will)\s+{_GO}",
        r"(?:i'll|i\s+will|we'll|we\s+will)\s+be\s+(?:attending|joining)",
        r"attending",
        r"see\s+you\s+(?:there|then)",
        r"i\s+confirm",
        r"(?:happy|glad|pleased)\s+to\s+(?:attend|come|join)",
    ),
    _khmer(r"បាទ", r"ចាស", r"ចូលរួម", r"(?:ខ្ញុំ\s*)?(?:នឹង|អាច)\s*មក", r"យល់ព្រម"),
)
# Khmer ទេ is "no" only as the whole answer or its first word ("ទេ អរគុណ").
_KM_TE_FIRST = re.compile(r"^ទេ(?![\u1780-\u17d3\u17dd])|^ទេ(?=អរគុណ|បាទ|ចាស)")
_LEADING_MARKS = re.compile(r"^[\s\W_]+")


def _answer_window(text: str) -> str:
    """The first three non-empty lines, at most 300 characters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines[:3])[:300]


def read_answer(text: str) -> Answer | None:
    """Yes, no or maybe, read from the first lines of the writer's own words; None if unclear.

    English is matched by whole words, case-insensitively ("no" is not "now", "know",
    "November"; "yes" is not "yesterday"); Khmer, written without spaces between words, by
    substring, never inside a longer cluster. Negations are read before the words they contain
    ("មិនអាចចូលរួម", "not able to attend") and taken out of the text before looking further.
    "yes" together with "no" or "maybe" is ambiguous (None); a word of coming ("I will attend",
    "ចូលរួម", បាទ/ចាស) gives way to a "no" or "maybe" beside it.
    """
    window = _answer_window(own_words(text))
    if not window:
        return None
    window = unicodedata.normalize("NFC", window).lower()
    window = re.sub(r"[^\S\n]+", " ", window)
    window = window.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")
    spaced = _ZERO_WIDTH.sub(" ", window)
    window = _unzero(window)
    window = _NEUTRAL.sub(" ", window)

    found: set[str] = set()
    if _KM_TE_FIRST.search(_LEADING_MARKS.sub("", spaced)):
        found.add("no")
        window = _LEADING_MARKS.sub("", window)[2:]
    for name, patterns in (
        ("no", _NO),
        ("maybe", _MAYBE),
        ("yes", _YES_STRONG),
        ("coming", _YES_WEAK),
    ):
        for pattern in patterns:
            window, count = pattern.subn(" ", window)
            if count:
                found.add(name)

    answers = found - {"coming"}
    if not answers:
        return Answer.YES if "coming" in found else None
    if len(answers) == 1:
        return Answer(answers.pop())
    return None
