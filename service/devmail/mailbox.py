"""Reading the catcher's stored mail for /dev/mail."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

_NAME = re.compile(r"^[0-9]+-[0-9a-f]{8}\.eml$")
_LINK = re.compile(r"https?://[^\s<>\"]+")


@dataclass(frozen=True)
class CaughtMail:
    name: str
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def to(self) -> str:
        return str(self.message.get("To", ""))

    @property
    def date(self) -> str:
        return str(self.message.get("Date", ""))

    @property
    def links(self) -> list[str]:
        return list(dict.fromkeys(_LINK.findall(self.part("plain"))))

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        return body.get_content() if body is not None else ""


def read(path: Path) -> CaughtMail:
    with path.open("rb") as handle:
        message = email.message_from_binary_file(handle, policy=email.policy.default)
    return CaughtMail(path.name, message)


def newest_first(directory: Path, limit: int = 200) -> list[CaughtMail]:
    if not directory.is_dir():
        return []
    names = sorted((p for p in directory.iterdir() if _NAME.match(p.name)), reverse=True)
    return [read(p) for p in names[:limit]]


def find(directory: Path, name: str) -> CaughtMail | None:
    if not _NAME.match(name) or not (directory / name).is_file():
        return None
    return read(directory / name)
