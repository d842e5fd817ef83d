"""Link secrets: random, stored only as a hash, scoped to one purpose and one record."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from service.models import Token, TokenPurpose

# 16 random bytes: 22 URL-safe characters, short enough for List-Unsubscribe to stay unfolded.
TOKEN_BYTES = 16
MAX_TOKEN_LENGTH = 64
TOKENS = cast(Table, Token.__table__)


def digest_of(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def issue(
    db: Session,
    purpose: TokenPurpose,
    subject_id: int,
    *,
    now: datetime,
    expires_at: datetime | None = None,
    holder: str = "",
) -> str:
    """Store a new token's hash and return the raw token, which only the link carries."""
    return issue_many(db, purpose, [(subject_id, holder)], now=now, expires_at=expires_at)[0]


def issued(db: Session, purpose: TokenPurpose, subject_id: int) -> int:
    """How many links of `purpose` were ever made for `subject_id`: the n of "the n-th link",
    which keys its message, so that a resent link is a new message and a repeated call is not."""
    return (
        db.scalar(
            select(func.count())
            .select_from(Token)
            .where(Token.purpose == purpose, Token.subject_id == subject_id)
        )
        or 0
    )


def issue_many(
    db: Session,
    purpose: TokenPurpose,
    subjects: list[tuple[int, str]],
    *,
    now: datetime,
    expires_at: datetime | None = None,
) -> list[str]:
    """One token per (subject_id, holder), stored in one bulk insert; the raw tokens in order."""
    raws = [secrets.token_urlsafe(TOKEN_BYTES) for _ in subjects]
    if subjects:
        db.execute(
            insert(TOKENS),  # Core, not the ORM's bulk insert: a send makes thousands
            [
                dict(
                    digest=digest_of(raw),
                    purpose=purpose,
                    subject_id=subject_id,
                    holder=holder,
                    created_at=now,
                    expires_at=expires_at,
                    used_at=None,
                )
                for raw, (subject_id, holder) in zip(raws, subjects, strict=True)
            ],
        )
    return raws


@dataclass(frozen=True)
class Lookup:
    """What a presented token turned out to be."""

    token: Token | None
    expired: bool = False

    @property
    def valid(self) -> bool:
        return self.token is not None and not self.expired and self.token.used_at is None

    @property
    def used(self) -> bool:
        return self.token is not None and self.token.used_at is not None


def find(db: Session, purpose: TokenPurpose, raw: str, *, now: datetime) -> Lookup:
    """The token for `raw` if it exists for `purpose`; malformed input is simply not found."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH or not raw.isascii():
        return Lookup(None)
    digest = digest_of(raw)
    token = db.scalar(select(Token).where(Token.digest == digest))
    # The lookup is by an index on the hash; compare again in constant time so the
    # answer does not depend on how much of a guessed hash matched.
    if token is None or token.purpose != purpose or not hmac.compare_digest(token.digest, digest):
        return Lookup(None)
    expired = token.expires_at is not None and token.expires_at <= now
    return Lookup(token, expired=expired)


def spend(db: Session, token: Token, *, now: datetime) -> bool:
    """Use a link once: a conditional update, so that of two presses at once only one uses it."""
    spent = db.execute(
        update(Token)
        .where(Token.id == token.id, Token.used_at.is_(None))
        .values(used_at=now)
        .returning(Token.id)
        .execution_options(synchronize_session=False)
    ).first()
    db.refresh(token)
    return spent is not None
