"""Reading a received message safely: headers, addresses, Message-IDs, parts and their text.

Whatever arrives is hostile until read: a header value is read only up to LONGEST_HEADER
characters (the email package's parser of structured headers is slow on megabytes), References
is read in one linear pass and capped, and no control character (NUL, ESC, ...) survives into
a value that leaves this package, since the database and terminals downstream choke on them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import quopri
import re
from collections import deque
from collections.abc import Iterator
from email.message import Message
from email.utils import getaddresses

from emails.inbound.html_text import html_to_text
from emails.text import has_control_characters, printable

LONGEST_HEADER = 8_000
MAX_REFERENCES = 50
MAX_IN_REPLY_TO = 5

# A Message-ID: no spaces, no controls, and no longer than the outbox keeps one.
MSGID = re.compile(r"<[^<>\s\x00-\x1f\x7f]{1,250}>")


# Zero-width spaces and joiners: Khmer writers use them as word breaks.
ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")


def unzero(text: str) -> str:
    """`text` without zero-width characters."""
    return ZERO_WIDTH.sub("", text)


def has_control(text: str) -> bool:
    """Whether a header value holds a control character, a tab or a line break."""
    return has_control_characters(text) or "\t" in text


def one_line(value: str) -> str:
    return " ".join(printable(value).split())


# --- headers ------------------------------------------------------------------------------


def raw_headers(message: Message, name: str) -> Iterator[str]:
    """The raw values of header `name`, in order, undecoded and unabridged."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            yield str(value)


def headers(message: Message, name: str) -> list[str]:
    """Every value of header `name`, decoded (RFC 2047), each read up to LONGEST_HEADER."""
    wanted = name.lower()
    found = []
    for key, value in message.raw_items():
        if key.lower() == wanted:
            found.append(_decoded(message, key, value))
    return found


def header(message: Message, name: str) -> str:
    """The first value of header `name`, decoded; "" when absent."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return _decoded(message, key, value)
    return ""


def _decoded(message: Message, name: str, value: object) -> str:
    raw = value[:LONGEST_HEADER] if isinstance(value, str) else value
    try:
        return str(message.policy.header_fetch_parse(name, raw))  # type: ignore[arg-type]
    except Exception:  # a header the policy cannot parse is read as it is
        return str(raw)[:LONGEST_HEADER]


def address(value: str) -> str:
    """The first address in a header value, lowercased; "" when none is usable."""
    try:
        pairs = getaddresses([value])
    except Exception:
        pairs = []
    for _name, found in pairs:
        found = found.strip().lower()
        if found and not has_control(found):
            return found
    return ""


def message_id(message: Message) -> str | None:
    value = header(message, "Message-ID").strip()
    found = MSGID.search(value)
    if found:
        return found.group(0)
    return value if value and not has_control(value) else None


def sender(message: Message) -> str | None:
    return address(header(message, "From")) or None


def _ids(message: Message, name: str) -> Iterator[str]:
    """The Message-IDs of every value of header `name`; a bare id ("a@b") is wrapped in <>."""
    for value in raw_headers(message, name):
        matched = False
        for found in MSGID.finditer(value):
            matched = True
            yield found.group(0)
        if not matched:
            bare = value.strip()
            plausible = "@" in bare and len(bare) <= 248 and not any(c.isspace() for c in bare)
            if plausible and MSGID.fullmatch(f"<{bare}>"):
                yield f"<{bare}>"


def references(message: Message) -> tuple[str, ...]:
    """What a message answers: In-Reply-To, then References' first (the root of the thread)
    and its most recent ids, newest first; without repeats, at most MAX_REFERENCES.

    One pass over the raw values, keeping only the last ids seen: a reply names what it
    answers at the ends of the chain, and 70,000 ids in between cost no more than reading them.
    """
    found: dict[str, None] = {}
    for reference in itertools.islice(_ids(message, "In-Reply-To"), MAX_IN_REPLY_TO):
        found.setdefault(reference)
    root = None
    recent: deque[str] = deque(maxlen=MAX_REFERENCES)
    for reference in _ids(message, "References"):
        root = root or reference
        recent.append(reference)
    for reference in itertools.chain([root] if root else [], reversed(recent)):
        if len(found) >= MAX_REFERENCES:
            break
        found.setdefault(reference)
    return tuple(found)


# --- parts --------------------------------------------------------------------------------


def parts(message: Message, *, into_messages: bool = False) -> Iterator[Message]:
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
            yield from parts(part, into_messages=into_messages)


def is_attachment(part: Message) -> bool:
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


def text_of(part: Message) -> str:
    """A leaf part's content as text, whatever its charset claims."""
    data = _decoded_bytes(part)
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8"):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def message_part_text(part: Message) -> str:
    """The text of a message/* part that the parser split into header blocks."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return text_of(part)
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
    encoding = header(part, "Content-Transfer-Encoding").strip().lower()
    if encoding == "base64":
        with contextlib.suppress(binascii.Error, ValueError):
            text = base64.b64decode("".join(text.split()), validate=False).decode(
                "utf-8", "replace"
            )
    elif encoding == "quoted-printable":
        text = quopri.decodestring(text.encode("utf-8", "replace")).decode("utf-8", "replace")
    return text


def body_text(message: Message) -> str:
    """The first text/plain part that is not an attachment; else the first HTML one as text."""
    html = None
    for part in parts(message):
        if part.is_multipart() or is_attachment(part):
            continue
        content_type = part.get_content_type()
        if content_type == "text/plain":
            return text_of(part)
        if content_type == "text/html" and html is None:
            html = part
    if html is not None:
        return html_to_text(text_of(html))
    return ""


def human_text(message: Message) -> str:
    """The first text/plain (else HTML) part anywhere: a report's readable notification."""
    for part in parts(message):
        if not part.is_multipart() and part.get_content_type() == "text/plain":
            return text_of(part)
    for part in parts(message):
        if not part.is_multipart() and part.get_content_type() == "text/html":
            return html_to_text(text_of(part))
    return ""
