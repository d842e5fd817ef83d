"""DKIM signing (RFC 6376) with dkimpy, for relays that do not sign the mail they pass on."""

from __future__ import annotations

# What a receiver must be able to trust: who it is from, what it is, and the one-click
# unsubscribe pair, which Gmail honours only when the signature covers both.
SIGNED_HEADERS = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Reply-To",
    b"MIME-Version",
    b"Content-Type",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"Auto-Submitted",
)


class DkimSigner:
    """Signs finished messages for one domain with one key (relaxed/relaxed, rsa-sha256)."""

    def __init__(self, selector: str, domain: str, private_key_pem: bytes) -> None:
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self.private_key = private_key_pem

    def sign(self, message: bytes) -> bytes:
        """`message` with a DKIM-Signature header in front."""
        # Imported here: dkimpy and dnspython are a tenth of a second of every `wg` command's
        # start-up, and most set-ups leave signing to their relay.
        import dkim

        present = {line.split(b":", 1)[0].strip().lower() for line in _header_lines(message)}
        signature = dkim.sign(
            message,
            self.selector,
            self.domain,
            self.private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[h for h in SIGNED_HEADERS if h.lower() in present],
        )
        return bytes(signature) + message


def _header_lines(message: bytes) -> list[bytes]:
    head = message.split(b"\r\n\r\n", 1)[0]
    return [line for line in head.split(b"\r\n") if line and not line[:1].isspace()]
