"""Rate-limit counters in the service's own database, so every web worker shares one count.

Flask-Limiter's `memory://` counts per process: four gunicorn workers would allow four times
the limit. Redis shares the counts, but is one more thing to run; the database is already
shared by every worker on every host. This is a `limits` storage for its fixed-window
strategy (Flask-Limiter's default), selected by WG_RATELIMIT_STORAGE=database.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from limits.storage import Storage
from sqlalchemy import Engine, Table, case, delete, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from service.db import READ_ONLY, dialect_insert
from service.models import RateLimitCounter

SCHEME = "wg-database"


def _now() -> datetime:
    return datetime.fromtimestamp(time.time(), UTC)


class DatabaseStorage(Storage):
    """Fixed-window counters, one row per key, upserted in one statement per hit."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012  (limits' own declaration is not a ClassVar)

    def __init__(
        self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.engine: Engine = options["engine"]
        # Reads begin deferred: the limiter reads the counts again after the view, while the
        # request's own session may still hold SQLite's write lock (BEGIN IMMEDIATE would wait
        # for it for the whole busy timeout).
        self.reader: Engine = self.engine.execution_options(**{READ_ONLY: True})

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = _now()
        ends = now + timedelta(seconds=expiry)
        table = cast(Table, RateLimitCounter.__table__)
        insert = dialect_insert(self.engine.dialect.name)
        new_count = insert(table).values(key=key, count=amount, expires_at=ends)
        stale = table.c.expires_at <= now
        statement = new_count.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "count": case((stale, amount), else_=table.c.count + amount),
                "expires_at": case((stale, ends), else_=table.c.expires_at),
            },
        ).returning(table.c.count)
        with self.engine.begin() as connection:
            return int(connection.execute(statement).scalar_one())

    def get(self, key: str) -> int:
        with self.reader.connect() as connection:
            count = connection.execute(
                select(RateLimitCounter.count).where(
                    RateLimitCounter.key == key, RateLimitCounter.expires_at > _now()
                )
            ).scalar()
        return int(count or 0)

    def get_expiry(self, key: str) -> float:
        with self.reader.connect() as connection:
            ends = connection.execute(
                select(RateLimitCounter.expires_at).where(RateLimitCounter.key == key)
            ).scalar()
        return (ends or _now()).timestamp()

    def check(self) -> bool:
        try:
            with self.reader.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def reset(self) -> int | None:
        with self.engine.begin() as connection:
            count = connection.execute(select(func.count()).select_from(RateLimitCounter)).scalar()
            connection.execute(delete(RateLimitCounter))
        return int(count or 0)

    def clear(self, key: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key))


def forget_expired(engine: Engine, now: datetime) -> int:
    """Delete the counters whose window has ended (the scheduler calls this now and then)."""
    with engine.begin() as connection:
        result = connection.execute(
            delete(RateLimitCounter).where(RateLimitCounter.expires_at <= now)
        )
    return result.rowcount or 0
