"""What the receiving server found out about the sender: Authentication-Results (RFC 8601).

Only the topmost header counts: servers add theirs on top, so the first one is the one our
own server wrote, and anything below it may have been written by the sender.
"""

from __future__ import annotations

import re
from email.message import Message

from emails.inbound.parsing import raw_headers

_COMMENT = re.compile(r"\([^()]*\)")
_DMARC = re.compile(r"(?:^|;)\s*dmarc\s*=\s*([A-Za-z]+)", re.IGNORECASE)


def dmarc_result(message: Message) -> str:
    """The DMARC result ("pass", "fail", "none", ...) of the topmost Authentication-Results;
    "" when that header is missing or says nothing of DMARC."""
    topmost = next(raw_headers(message, "Authentication-Results"), "")
    text = " ".join(topmost[:8_000].split())
    for _ in range(3):  # comments may nest a little: "(p=reject (strict))"
        text = _COMMENT.sub(" ", text)
    found = _DMARC.search(text)
    return found.group(1).lower() if found else ""
