"""One scheduler at a time on PostgreSQL: an advisory lock held for the process's life.

Correctness never depends on it (every job is idempotent); it only keeps a second
`wg scheduler` from doing the same work twice. The second one waits and takes over when
the first one's connection goes away.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)

# Any constant shared by every scheduler of this service: "wg-sched" as eight bytes.
LOCK_KEY = int.from_bytes(b"wg-sched", "big") & 0x7FFF_FFFF_FFFF_FFFF


class Leadership:
    def __init__(self, engine: Engine, key: int = LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        """True when this process leads (always on SQLite, where one machine runs everything)."""
        if self.engine.dialect.name != "postgresql":
            return True
        if self._connection is None:
            self._connection = self.engine.connect()
        held = self._connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
        ).scalar()
        self._connection.commit()
        return bool(held)

    def wait(self, stop: threading.Event, every_seconds: float = 30) -> bool:
        """Block until leading or `stop` is set; True when leading."""
        announced = False
        while not stop.is_set():
            if self.try_acquire():
                return True
            if not announced:
                log.info("another scheduler holds the lock; waiting to take over")
                announced = True
            stop.wait(every_seconds)
        return False

    def release(self) -> None:
        if self._connection is None:
            return
        # Closing only returns the connection to the pool, where its session (and the lock)
        # would live on: unlock first, and drop the connection for good.
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock_all()"))
            self._connection.commit()
        finally:
            self._connection.invalidate()
            self._connection.close()
            self._connection = None
