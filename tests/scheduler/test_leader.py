"""Only one scheduler leads on PostgreSQL; a second waits and takes over."""

from __future__ import annotations

import random
import threading

import pytest

from scheduler.leader import Leadership
from service.db import make_engine
from tests.conftest import POSTGRES_URL


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs PostgreSQL (WG_TEST_DATABASE_URL)")
def test_second_scheduler_waits_until_the_first_lets_go():
    engine = make_engine(POSTGRES_URL)
    key = random.randrange(1, 2**62)  # not the service's own key: other runs may share the server
    first, second = Leadership(engine, key), Leadership(engine, key)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        first.release()
        assert second.wait(threading.Event(), every_seconds=0.05)
    finally:
        first.release()
        second.release()
        engine.dispose()


def test_sqlite_scheduler_always_leads(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'wg.sqlite3'}")
    assert Leadership(engine).try_acquire()
    engine.dispose()
