"""Bounces: a report that a message could not be delivered, and to whom.

Three readers, most exact first:

1. An RFC 3464 delivery report (`message/delivery-status`, `message/global-delivery-status`)
   is read here: the first failed recipient (the first delayed one when none failed), its
   status and diagnostic. Its recipient comes from flufl.bounce when the report names none.
2. Any other message that looks like a bounce (a mailer-daemon sender, a bounce subject or a
   bounce text) goes to flufl.bounce, Mailman's detectors for the formats of many MTAs
   (Postfix, Exim, qmail, Exchange, GroupWise, Yahoo, ...).
3. What flufl.bounce does not know, this module's own reading of the text does: a failed
   address and an SMTP or enhanced status code in the notice (a daemon's sender, or two of the
   signals, so that a person writing "Re: Undelivered ..." is no bounce).

A bounce says nothing about who may be acted upon: that is for whoever holds the outbox (the
return path token or the returned Message-ID tie it to a message we sent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser
from email.policy import default as default_policy

from flufl.bounce import all_failures

from emails.inbound.kinds import Bounce
from emails.inbound.parsing import (
    address,
    header,
    human_text,
    message_id,
    message_part_text,
    one_line,
    parts,
    text_of,
)

# Enhanced status codes (RFC 3463) of failures only: 2.x.x is success, and bare 2.x.y is as
# likely a version number.
_STATUS = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
_SMTP_AND_STATUS = re.compile(r"(?<!\d)([45]\d\d)[ -]([45]\.\d{1,3}\.\d{1,3})(?!\d|\.\d)")
_SMTP_CODE = re.compile(
    r"(?:^|said:|returned|error|\(#|;|:)\s{0,20}'?([45]\d\d)(?=[\s-])", re.I | re.M
)
# Bounded (RFC 5321 limits) and starting at a boundary, so a long run of letters without an
# "@" costs one pass, not one per position.
_LOCAL_CHARS = "A-Za-z0-9.!#$%&'*+/=?^_`{|}~-"
_ADDRESS = re.compile(
    rf"(?<![{_LOCAL_CHARS}])[{_LOCAL_CHARS}]{{1,64}}@[A-Za-z0-9-]{{1,63}}(?:\.[A-Za-z0-9-]{{1,63}}){{1,8}}"
)
_DAEMONS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mail-delivery-subsystem"}
_DAEMON_NAMES = re.compile(r"mail delivery (subsystem|system)|mailer-daemon|postmaster", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver(ed|able)|returned mail|delivery (status notification|failure|has failed"
    r"|failed|problem|warning)|mail delivery failed|failure notice|could not be delivered"
    r"|delayed mail|non[- ]?delivery|rejected:|nicht zustellbar|non remis|not delivered"
    r"|user unknown|mail system error",
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
    r"^(?:-{2,}+.*(?:below this line|copy of the message|original message|returned message)"
    r"|original message headers:|-{2,}\s*transcript of session)",
    re.I | re.M,
)
_TEXT_RECIPIENT = (
    re.compile(r"^[ \t]*<(" + _ADDRESS.pattern + r")>[ \t]*(?::|\.\.\.)", re.M),
    re.compile(
        r"(?:final|original)-recipient:\s{0,20}(?:rfc822\s{0,20};)?\s{0,20}<?("
        + _ADDRESS.pattern
        + ")",
        re.I,
    ),
    re.compile(r"rcpt to:\s*<(" + _ADDRESS.pattern + ")>", re.I),
    re.compile(r"address(?:\(es\))? failed:\s*<?(" + _ADDRESS.pattern + ")", re.I),
)
_DELAYED_SUBJECT = re.compile(
    r"delayed|not yet been delivered|will (keep|continue) trying|temporar", re.I
)
_DELAYED_TEXT = re.compile(r"has not yet been delivered|will (keep|continue) trying", re.I)
# How much of a bounce is read for its recipient, by flufl.bounce (which reads every line of
# every part with each of its patterns) and by the text readers here: the notice is at the top,
# and what follows it (the returned message, its attachments) tells nothing about who failed.
BOUNCE_READS = 64 * 1024
_REPORT_TYPES = ("message/delivery-status", "message/global-delivery-status")
_RETURNED_MESSAGE_TYPES = ("message/rfc822", "message/global")
_RETURNED_HEADER_TYPES = ("text/rfc822-headers", "message/global-headers")


def find_bounce(message: Message, raw: bytes) -> tuple[Bounce, str] | None:
    """The bounce `message` reports, and why it was read so; None when it is no bounce."""
    reports = [part for part in parts(message) if part.get_content_type() in _REPORT_TYPES]
    for report in reports:
        found = _from_delivery_status(message, report, raw)
        if found is not None:
            return found
    # A report that names no failed recipient is a delivery notice, unless flufl.bounce reads
    # a failure in it (some MTAs write Action: error, or leave the fields out).
    return _from_bounce_text(message, raw, report=bool(reports))


def returned_return_paths(message: Message) -> list[str]:
    """The Return-Path of each returned message (or returned headers) in a report."""
    found = []
    for headers in _returned_headers(message):
        value = header(headers, "Return-Path")
        if value:
            found.append(value)
    return found


# --- RFC 3464 reports ---------------------------------------------------------------------


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
    """ "rfc822; <User@Example.org>" -> "user@example.org"; "" when no address is in it."""
    kind, semicolon, found = value.partition(";")
    if not semicolon:
        found = kind
    match = _ADDRESS.search(found.strip().strip("<>").strip())
    return match.group(0).lower() if match and _well_formed(match.group(0)) else ""


def _well_formed(candidate: str) -> bool:
    """Not an address cut short or masked: "david...@gmail.com", ".x@y", "x.@y"."""
    local = candidate.rpartition("@")[0]
    return ".." not in local and not local.startswith(".") and not local.endswith(".")


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
    value = one_line(value)
    value = re.sub(r"^[A-Za-z][\w-]*\s*;\s*", "", value)
    start = _SMTP_AND_STATUS.match(value)
    if start:
        repeated = re.compile(
            r"\s" + start.group(1) + r"[ -]" + re.escape(start.group(2)) + r"(?:\s+|$)"
        )
        value = value[: start.end()] + repeated.sub(" ", value[start.end() :])
        value = value[: start.end()].replace("-", " ", 1) + value[start.end() :]
    value = one_line(value)
    return value if len(value) <= 500 else value[:499] + "…"


def _from_delivery_status(
    message: Message, report: Message, raw: bytes
) -> tuple[Bounce, str] | None:
    blocks = _field_blocks(message_part_text(report))
    recipients = [
        block
        for block in blocks
        if "final-recipient" in block or "original-recipient" in block or "action" in block
    ]
    chosen, action = _first_failed(recipients)
    if chosen is None:
        return None
    recipient = _typed_address(chosen.get("original-recipient", "")) or _typed_address(
        chosen.get("final-recipient", "")
    )
    reason = f"delivery-status report: {action}"
    if not recipient:
        permanent, temporary = _flufl_failures(raw)
        found = permanent or temporary
        if found:
            recipient = found[0]
            reason += ", recipient by flufl.bounce"
    diagnostic_field = chosen.get("diagnostic-code", "")
    status = _pick_status(chosen.get("status", ""), diagnostic_field)
    human = human_text(message)[:BOUNCE_READS]
    if not status:
        status = _status_from(human) or ("4.0.0" if action == "delayed" else "5.0.0")
    diagnostic = _diagnostic(diagnostic_field) if diagnostic_field else _human_line(human, status)
    bounce = _bounce(
        recipient=recipient,
        status=status,
        diagnostic=diagnostic,
        delayed=action == "delayed",
        original=_original_message_id(message),
    )
    return bounce, f"{reason} {status}"


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
    *, recipient: str, status: str, diagnostic: str, delayed: bool, original: str | None
) -> Bounce:
    status_class = status.split(".")
    return Bounce(
        recipient=recipient,
        status=status,
        diagnostic=diagnostic,
        hard=status.startswith("5") and not delayed,
        policy=len(status_class) == 3 and status_class[1] == "7",
        original_message_id=original,
    )


def _human_line(text: str, status: str, recipient: str = "") -> str:
    """The line of the notification with the status (else the recipient), else its first."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for wanted in (status, recipient):
        for line in lines:
            if wanted and wanted in line.lower():
                return _diagnostic(line)
    return _diagnostic(lines[0]) if lines else ""


# --- the returned message -----------------------------------------------------------------


def _returned_headers(message: Message) -> list[Message]:
    """The header blocks of the returned message: message/rfc822 or text/rfc822-headers."""
    found = []
    for part in parts(message):
        content_type = part.get_content_type()
        if content_type in _RETURNED_MESSAGE_TYPES:
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                found.append(payload[0])
        elif content_type in _RETURNED_HEADER_TYPES:
            found.append(HeaderParser(policy=default_policy).parsestr(text_of(part)))
    return found


def _original_message_id(message: Message) -> str | None:
    """Message-ID of the returned message: message/rfc822, text/rfc822-headers, or inline."""
    for headers in _returned_headers(message):
        found = message_id(headers)
        if found:
            return found
    inline = re.search(r"^message-id:\s*(<[^<>\s]{1,250}>)", human_text(message), re.I | re.M)
    return inline.group(1) if inline else None


# --- everything else ----------------------------------------------------------------------


def _is_daemon(message: Message) -> bool:
    value = header(message, "From")
    sender = address(value)
    local = sender.partition("@")[0] if sender else value.strip().lower()
    return local in _DAEMONS or bool(_DAEMON_NAMES.search(value))


def _signals(message: Message, text: str) -> list[str]:
    """What makes a message look like a bounce, short of a delivery report."""
    signals = []
    if _is_daemon(message):
        signals.append("mailer-daemon sender")
    if _BOUNCE_SUBJECT.search(header(message, "Subject")):
        signals.append("bounce subject")
    if _BOUNCE_BODY.search(text[:4000]):
        signals.append("bounce text")
    return signals


def _from_bounce_text(message: Message, raw: bytes, *, report: bool) -> tuple[Bounce, str] | None:
    """A bounce that no RFC 3464 report says plainly: flufl.bounce's formats, then the text
    itself (never for a `report`, whose fields said that nothing failed)."""
    text = human_text(message)[:BOUNCE_READS]
    signals = ["delivery report"] if report else []
    signals += _signals(message, text)
    if not signals:
        return None
    copy = _COPY_MARKER.search(text)
    notice = text[: copy.start()] if copy else text
    subject = header(message, "Subject")
    delayed = bool(_DELAYED_SUBJECT.search(subject) or _DELAYED_TEXT.search(notice))
    reason = f"non-standard bounce ({', '.join(signals)})"

    permanent, temporary = _flufl_failures(raw)
    if permanent or temporary:
        recipient = (permanent or temporary)[0]
        delayed = not permanent
        reason += ", recipient by flufl.bounce"
    elif not report and ("mailer-daemon sender" in signals or len(signals) >= 2):
        # A daemon's sender, or a bounce subject backed by a bounce text, decides; a subject
        # alone ("Re: Undelivered ...") may be a person's.
        recipient = _text_recipient(message, notice)
    else:
        return None

    status = _status_from(notice)
    if permanent and not status.startswith("5"):
        status = "5.0.0"
    elif temporary and not permanent and not status.startswith("4"):
        status = "4.0.0"
    elif not status:
        status = "4.0.0" if delayed else "5.0.0"
    delayed = delayed or status.startswith("4")
    bounce = _bounce(
        recipient=recipient,
        status=status,
        diagnostic=_human_line(notice, status, recipient),
        delayed=delayed,
        original=_original_message_id(message),
    )
    reason += f": {status}"
    if not recipient:
        reason += ", recipient not found"
    return bounce, reason


def _text_recipient(message: Message, notice: str) -> str:
    """The failed address in a notice: after a known phrase, else the first foreign one."""
    for pattern in _TEXT_RECIPIENT:
        found = pattern.search(notice)
        if found and _well_formed(found.group(1)):
            return found.group(1).lower()
    exclude = {address(header(message, "From")), address(header(message, "To"))}
    for found in _ADDRESS.finditer(notice):
        candidate = found.group(0).lower()
        local = candidate.partition("@")[0]
        if candidate in exclude or local in _DAEMONS or "+b-" in local:
            continue
        if not _well_formed(candidate):
            continue
        return candidate
    return ""


def _flufl_failures(raw: bytes) -> tuple[list[str], list[str]]:
    """(permanent, temporary) failed recipients as flufl.bounce's detectors read them."""
    try:
        # compat32, as flufl.bounce reads messages (its detectors expect plain strings).
        message = message_from_bytes(raw[:BOUNCE_READS])
        permanent_found, temporary_found = (set(found) for found in reversed(all_failures(message)))
    except Exception:  # a detector that trips over hostile input leaves the others' reading
        return [], []
    return _usable(permanent_found), _usable(temporary_found)


def _usable(found: Iterable[bytes | str]) -> list[str]:
    addresses = set()
    for value in found:
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        match = _ADDRESS.fullmatch(text.strip().strip("<>").strip())
        if match and _well_formed(match.group(0)):
            addresses.add(match.group(0).lower())
    return sorted(addresses)
