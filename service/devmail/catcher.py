"""The embedded mail catcher of `wg run`: a local SMTP server that keeps mail as files."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class MaildropHandler:
    """Stores each message as <ns>-<id>.eml, written whole before it becomes visible."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        partial = self.directory / f".{name}.part"
        data = envelope.original_content or b""
        partial.write_bytes(data)
        os.replace(partial, self.directory / name)
        return "250 Message accepted for delivery"


def start_catcher(directory: Path, port: int, host: str = "127.0.0.1") -> Controller:
    """Start the catcher on host:port; the caller stops it with `.stop()`."""
    controller = Controller(MaildropHandler(directory), hostname=host, port=port)
    controller.start()
    return controller
