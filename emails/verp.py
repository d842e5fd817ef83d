"""The return path: an envelope sender per message, so that a bounce names what it answers.

Every message leaves with MAIL FROM `local+b-NUMBER-MAC@domain`, a subaddress of a mailbox the
service reads (VERP). NUMBER is the outbox row; MAC is an HMAC of it under the service's secret,
so a stranger cannot make a report that passes for one about a message we sent. Pure code: the
secret is passed in, nothing here knows the database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from email.utils import getaddresses, parseaddr

from emails.addresses import split_mailbox

# "b-" marks the tag as ours among whatever other subaddresses the mailbox receives.
TAG_PREFIX = "b-"
_MAC_CHARS = 16  # 64 bits of HMAC-SHA256, in lower-case hex: survives case-folding MTAs
_TAG = re.compile(r"\+b-([0-9]{1,18})-([0-9a-f]{16})@", re.IGNORECASE)


def _mac(number: int, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"return-path:{number}".encode(), hashlib.sha256)
    return digest.hexdigest()[:_MAC_CHARS]


def return_path(base: str, number: int, secret: str) -> str:
    """The envelope sender for message `number`: `base` with `+b-NUMBER-MAC` in its local part.

    `base` is a bare address or `Name <address>`; a subaddress it already has is kept before
    ours (`bounces+x@d` gives `bounces+x+b-...@d`).
    """
    address = split_mailbox(base)[1]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an address: {base!r}")
    return f"{local}+{TAG_PREFIX}{number}-{_mac(number, secret)}@{domain}"


def message_number(address: str, secret: str) -> int | None:
    """The message number of a return path we made with `secret`; None for any other address."""
    address = parseaddr(address or "")[1] or (address or "").strip().strip("<>")
    found = _TAG.search(address)
    if found is None:
        return None
    number, mac = int(found.group(1)), found.group(2).lower()
    return number if hmac.compare_digest(mac, _mac(number, secret)) else None


def numbers_in(header_values: list[str], secret: str) -> list[int]:
    """Every genuine message number among the addresses of some header values, in order."""
    found: list[int] = []
    try:
        pairs = getaddresses(header_values)
    except Exception:  # a hostile header must not stop the reading of the rest
        pairs = []
    for _name, address in pairs:
        number = message_number(address, secret)
        if number is not None and number not in found:
            found.append(number)
    return found
