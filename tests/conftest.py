"""Shared fixtures: a real SMTP server, SQLite and PostgreSQL, the app, a settable clock."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from emails.transport import Transport
from scheduler import jobs
from service import create_app
from service.clock import set_clock
from service.db import get_database
from service.migrations import upgrade
from service.models import Base
from service.outbox import OutboxSender
from tests.mail import SmtpRecorder

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium (running as root, offline) tries to reach Google and fails.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BASE_URL = "http://wg.test"
COORDINATORS = ("coordinator@wg.test", "secretariat@wg.test")
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _postgres_url() -> str | None:
    """WG_TEST_DATABASE_URL, or the local server when one answers on 127.0.0.1:5432."""
    configured = os.environ.get("WG_TEST_DATABASE_URL")
    if configured:
        return configured
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return DEFAULT_PG_URL
    except OSError:
        return None


POSTGRES_URL = _postgres_url()
DATABASES = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A migrated, empty database of each kind, made once per test session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'wg.sqlite3'}"
        yield url
        return
    schema = f"wg_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


_migrated: set[str] = set()


class Clock:
    """A clock the test moves by hand; every part of the app reads it."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 12, 1, 2, 0, tzinfo=UTC))


@pytest.fixture
def smtp_server() -> Iterator[SmtpRecorder]:
    with SmtpRecorder() as server:
        yield server


def app_config(database_url: str, smtp_port: int, instance: Path, **extra: str) -> dict[str, str]:
    return {
        "WG_DATABASE_URL": database_url,
        "WG_INSTANCE_PATH": str(instance),
        "WG_SECRET_KEY": "test-secret-key",
        "WG_BASE_URL": BASE_URL,
        "WG_SMTP_HOST": "127.0.0.1",
        "WG_SMTP_PORT": str(smtp_port),
        "WG_SMTP_TIMEOUT": "5",
        "WG_MAIL_FROM": "Working Group <noreply@wg.test>",
        "WG_COORDINATOR_EMAILS": ",".join(COORDINATORS),
        "WG_JOIN_RATE_LIMIT": "1000 per hour",
        # Late, so that only the digest's own tests see a digest among the mail they count.
        "WG_DIGEST_TIME": "23:30",
        **extra,
    }


@pytest.fixture
def app_settings() -> dict[str, str]:
    """Extra WG_* settings a test module may override before `app` is made."""
    return {}


@pytest.fixture
def app(
    database_url: str,
    smtp_server: SmtpRecorder,
    clock: Clock,
    tmp_path: Path,
    app_settings: dict[str, str],
) -> Iterator[Flask]:
    app = create_app(
        app_config(database_url, smtp_server.port, tmp_path / "instance", **app_settings)
    )
    app.config["TESTING"] = True
    set_clock(app, clock)
    engine = get_database(app).engine
    if database_url not in _migrated:
        upgrade(engine)
        _migrated.add(database_url)
    yield app
    _empty_tables(engine)
    engine.dispose()


def _empty_tables(engine) -> None:  # type: ignore[no-untyped-def]
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A session for looking at (or preparing) stored state.

    It runs in autocommit mode, so every query sees what the app committed so far and the
    test never holds SQLite's write lock while the app works.
    """
    engine = get_database(app).engine.execution_options(isolation_level="AUTOCOMMIT")
    session = Session(engine, expire_on_commit=False)
    yield session
    session.close()


@pytest.fixture
def deliver(app: Flask, clock: Clock) -> Iterator[Callable[[], jobs.TickReport]]:
    """Run one scheduler pass at the clock's time, sending through the test SMTP server."""
    from service.config import settings

    transport = Transport(settings(app).smtp())
    sender = OutboxSender(app, transport, now=clock)

    def run() -> jobs.TickReport:
        return jobs.tick(app, sender, clock())

    yield run
    transport.close()


@pytest.fixture
def coordinators() -> tuple[str, ...]:
    return COORDINATORS


@pytest.fixture
def make_member(db: Session, clock: Clock):
    """Add an active member organisation with one contact; returns the contact."""
    from service.models import (
        Contact,
        ContactStatus,
        Language,
        Organisation,
        OrganisationKind,
        OrganisationStatus,
    )

    def make(
        email: str,
        *,
        name: str = "Member",
        language: str = "en",
        organisation: str = "Riverbank Survivors Network",
        status: ContactStatus = ContactStatus.ACTIVE,
    ) -> Contact:
        from sqlalchemy import select

        org = db.scalars(select(Organisation).where(Organisation.name == organisation)).first()
        if org is None:
            org = Organisation(
                name=organisation,
                kind=OrganisationKind.ORGANISATION,
                status=OrganisationStatus.ACTIVE,
                created_at=clock(),
            )
            db.add(org)
            db.flush()
        contact = Contact(
            organisation_id=org.id,
            name=name,
            email=email,
            language=Language(language),
            status=status,
            created_at=clock(),
        )
        db.add(contact)
        db.commit()
        return contact

    return make


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium (Debian's) for the whole session."""
    if not CHROMIUM.exists():
        message = f"Chromium not found at {CHROMIUM}: the real-browser tests need it"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is an error, not a skip)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
