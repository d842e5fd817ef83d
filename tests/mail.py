"""A real SMTP server for tests (aiosmtpd on a free loopback port) and what it received."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller

LINK = re.compile(r"https?://[^\s<>\"']+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ReceivedMail:
    """One message as it arrived: envelope, raw bytes, and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[assignment]

    def __getitem__(self, header: str) -> str:
        return str(self.message[header]) if self.message[header] is not None else ""

    @property
    def subject(self) -> str:
        return self["Subject"]

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        # A base64 body keeps the CRLFs it was encoded with; read it as plain lines.
        return part.get_content().replace("\r\n", "\n") if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""

    @property
    def links(self) -> list[str]:
        """Every distinct link in the text and HTML parts, as paths for the test client."""
        found = LINK.findall(self.text) + LINK.findall(self.html)
        paths = []
        for url in dict.fromkeys(found):
            parts = urlsplit(url.replace("&amp;", "&"))
            paths.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        return list(dict.fromkeys(paths))

    def link(self, prefix: str) -> str:
        """The one path starting with `prefix` (query left off); fails on none or several."""
        matching = list(
            dict.fromkeys(path.split("?")[0] for path in self.links if path.startswith(prefix))
        )
        assert len(matching) == 1, f"expected one {prefix} link, found {matching}"
        return matching[0]


class _Recorder:
    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.lock = threading.Lock()
        self.rcpt_replies: dict[str, list[str]] = {}

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:  # type: ignore[no-untyped-def]
        with self.lock:
            replies = self.rcpt_replies.get(address)
            reply = (replies.pop(0) if len(replies) > 1 else replies[0]) if replies else "250 OK"
        if not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        mail = ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        with self.lock:
            self.received.append(mail)
        return "250 OK"


class SmtpRecorder:
    """An aiosmtpd server that keeps every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self._handler = _Recorder()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpRecorder:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._handler.lock:
            return list(self._handler.received)

    def messages_to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def single_message_to(self, address: str) -> ReceivedMail:
        found = self.messages_to(address)
        assert len(found) == 1, f"expected one message to {address}, got {len(found)}"
        return found[0]

    def refuse(self, address: str, *replies: str) -> None:
        """Answer RCPT TO `address` with `replies` in turn; the last one is repeated.

        `refuse(a, "451 4.7.1 try later", "250 OK")` refuses once, then accepts.
        """
        with self._handler.lock:
            self._handler.rcpt_replies[address] = list(replies)

    def clear(self) -> None:
        with self._handler.lock:
            self._handler.received.clear()
