"""The header fields that carry a display name (From, To, Reply-To, List-Id), written here.

The email package of Python 3.11 drops the quotes of a display name it has to fold, so the
name `Sokha Chan <boss@partner.example>, Programme Officer` came out as two addresses. The
grammar of these fields is small (RFC 5322 3.4, RFC 2047 5), so they are written by hand:
a name of plain words as it is, other printable ASCII as one quoted string folded at its
spaces, anything else as UTF-8 encoded-words. Every line fits in 78 characters, except an
address that is longer on its own, which stays whole (the hard limit is 998).
"""

from __future__ import annotations

import base64
import string
from email.headerregistry import Address
from email.utils import unquote
from functools import lru_cache


class HeaderInjection(ValueError):
    """A header value carried a line break: refused rather than folded into a new header."""


MAX_LINE = 78
# Base64 of 42 bytes makes a 68-character encoded-word, which fits after "Reply-To: ".
_WORD_BYTES = 42
_MAX_PIECE = 66  # a longer word or quoted piece would not fit a line: it is encoded instead
_ATOM = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_PRINTABLE_ASCII = frozenset(chr(code) for code in range(32, 127))


def check_header(value: str) -> str:
    """`value` unchanged, or HeaderInjection when it holds a line break."""
    if "\r" in value or "\n" in value:
        raise HeaderInjection(f"line break in header value {value[:40]!r}")
    return value


def split_mailbox(value: str) -> tuple[str, str]:
    """(name, address) of `Name <address>` or of a bare address.

    The name is everything before the last `<`, so a configured name keeps its commas and
    brackets even unquoted (where `email.utils.parseaddr` would return another address).
    """
    value = value.strip()
    if not (value.endswith(">") and "<" in value):
        return "", value
    name, _, address = value[:-1].rpartition("<")
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = unquote(name)
    return name, address.strip()


def _addr_spec(address: str) -> str:
    """The address as it stands between angle brackets, its local part quoted if it must be."""
    if not address.isascii():
        raise ValueError(f"address {address[:60]!r} is not ASCII (it would need SMTPUTF8)")
    username, at, domain = address.rpartition("@")
    if not at:
        return address
    return Address(username=username, domain=domain).addr_spec


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 'B' encoded-words of UTF-8, each whole characters and at most 68 long."""
    chunks: list[bytes] = [b""]
    for char in text:
        data = char.encode("utf-8")
        if len(chunks[-1]) + len(data) > _WORD_BYTES:
            chunks.append(b"")
        chunks[-1] += data
    return [f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=" for chunk in chunks]


def _phrase(name: str) -> list[str]:
    """The display name as the tokens between which a line may be folded."""
    words = name.split()
    if not words:
        return []
    if "=?" not in name and max(map(len, words)) <= _MAX_PIECE - 2:
        if all(_ATOM.issuperset(word) for word in words):
            return words
        if all(_PRINTABLE_ASCII.issuperset(word) for word in words):
            # One quoted string; folding at its spaces keeps them (RFC 5322 3.2.4).
            pieces = [word.replace("\\", "\\\\").replace('"', '\\"') for word in words]
            pieces[0] = '"' + pieces[0]
            pieces[-1] += '"'
            if max(map(len, pieces)) <= _MAX_PIECE:
                return pieces
    # Anything else, and text that looks like an encoded-word, is encoded (whole characters
    # per word: RFC 2047 readers join adjacent encoded-words without the space between).
    return _encoded_words(" ".join(words))


def _fold(field: str, tokens: list[str]) -> str:
    lines = [f"{field}:"]
    for token in tokens:
        if len(lines[-1]) + 1 + len(token) > MAX_LINE and len(lines[-1]) > len(field) + 1:
            lines.append(" " + token)
        else:
            lines[-1] += " " + token
    return "\r\n".join(lines) + "\r\n"


@lru_cache(maxsize=4096)
def mailbox_header(field: str, name: str, address: str) -> str:
    """`Field: name <address>` and CRLF, folded; only the address when the name is empty.

    Whitespace in the name is collapsed to single spaces; a line break in either value
    raises HeaderInjection.
    """
    check_header(name)
    tokens = _phrase(name)
    spec = _addr_spec(check_header(address).strip())
    return _fold(field, [*tokens, f"<{spec}>"] if tokens else [spec])


@lru_cache(maxsize=64)
def list_id_header(value: str) -> str:
    """`List-Id: phrase <list.id>` and CRLF (RFC 2919), from `Name <list.id>` or a bare id."""
    name, list_id = split_mailbox(check_header(value))
    return _fold("List-Id", [*_phrase(name), f"<{_addr_spec(list_id)}>"])


def header_value(header: str) -> str:
    """The value of a header written above, as `EmailMessage` stores it (no name, no CRLF)."""
    return header.partition(": ")[2].removesuffix("\r\n")
