"""Only one scheduler leads on PostgreSQL; a second waits and takes over."""

from __future__ import annotations

import threading

import pytest

from scheduler.leader import Leadership
from service.db import get_database


def test_second_scheduler_waits_until_the_first_lets_go(app):
    engine = get_database(app).engine
    if engine.dialect.name != "postgresql":
        pytest.skip("advisory locks exist on PostgreSQL; SQLite runs one machine")
    first, second = Leadership(engine), Leadership(engine)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        first.release()
        assert second.wait(threading.Event(), every_seconds=0.05)
    finally:
        first.release()
        second.release()


def test_sqlite_scheduler_always_leads(app):
    engine = get_database(app).engine
    if engine.dialect.name != "sqlite":
        pytest.skip("only SQLite leads without a lock")
    assert Leadership(engine).try_acquire()
